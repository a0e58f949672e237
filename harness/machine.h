/*
 * machine.h - are two runs from the same machine? A comparison across machines measures the machines,
 * not the code: a CI runner whose fork is 3x slower than the baseline's makes every fork case a
 * "regression". compare says so plainly, and refuses to fail on such a comparison unless told
 * --allow-other-machine.
 *
 * The machine key (runs.machine: --machine, $POOLBENCH_MACHINE, or derived from host, CPU, cores, memory
 * and kernel) decides first when both runs have one: two keys that differ are two machines; one key names
 * one machine (an explicit key may name a pool of interchangeable runners), so its static facts are not
 * compared again, but its floors still are. A key equal to the run's host name is what the schema-3
 * migration gave runs stored before keys existed: no evidence either way, like a missing key. Without
 * usable keys, two runs are from different machines when any known fact differs: host name, CPU model,
 * online cores, kernel. In both cases, also when a floor probe both measured (fork, spawn, pipe round trip, condvar handoff, pipe
 * bandwidth; not the nanosleep overshoot, which follows the load) differs by more than
 * PBH_MACHINE_FLOOR_RATIO either way (docs/verdicts.md has the measured spread). Heavy load on one machine
 * can move floors that far too, which the message says. A fact one side does not know (an import) is not
 * a difference. The two runs of an interleaved pair are one machine by construction (cli_compare.c).
 */
#ifndef POOLBENCH_HARNESS_MACHINE_H
#define POOLBENCH_HARNESS_MACHINE_H

#include <stddef.h>

#include "model.h"

/* Largest ratio between the same floor in two runs of one machine before it counts as another machine. */
#define PBH_MACHINE_FLOOR_RATIO 2.0

/* 1 when a and b come from different machines, with every difference described in why ("machine 'a' vs 'b';
 * host 'a' vs 'b';
 * floor fork_exit_wait 0.47 ms vs 1.52 ms (3.2x)"); 0 when nothing known differs (why = ""). */
int pbh_machine_differs(const pbh_run *a, const pbh_run *b, char *why, size_t len);

#endif
