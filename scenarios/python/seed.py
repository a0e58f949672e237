#!/usr/bin/env python3
"""seed.py - the seed's Python program, parameterized like poolbench's scenarios: a peer under hyperfine.

The blog post's program is multiprocessing.Pool(8).map(f, [1, 2, 3, 4]) where f sleeps 2 s and returns
x*x. This runs exactly that by default, with the same knobs as the C scenarios so that the two can be
timed side by side, and on Python's other standard pools as peers too (--pool):

  --pool pool              (default) multiprocessing.Pool(workers).map: the blog's program
  --pool process-executor  concurrent.futures.ProcessPoolExecutor(workers).map, given the chunksize
                           Pool.map would pick (ceil(items / (4 * workers))): its default of 1 sends
                           every item in its own message, which the docs warn against for long inputs
  --pool thread-pool       multiprocessing.pool.ThreadPool(workers).map: threads, so the GIL serializes
                           x*x, but sleeps overlap

  --mode sleep   (default) the `sleep` scenario: items tasks, each sleeps --ms then returns x*x
  --mode tiny    the `square` scenario: items tiny x*x tasks (pure dispatch cost), Pool.map's own
                 automatic chunksize; --items defaults to 1,000,000 in this mode

Inputs are 1..items (the seed's [1, 2, 3, 4]). The results are printed (the list in sleep mode, a count
and a sum in tiny mode, where a million numbers would drown the terminal) and verified against x*x; a wrong
or missing result exits 1. Bad arguments exit 2 (argparse's convention, and poolbench's).
Runs on any python3 (3.6+), standard library only.
"""
import argparse
import concurrent.futures
import multiprocessing
import multiprocessing.pool
import sys
import time


def sleep_square(arg):
    x, ms = arg
    time.sleep(ms / 1000.0)
    return x * x


def square(x):
    return x * x


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer >= 1, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be an integer >= 1, got %r" % text)
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number >= 0, got %r" % text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number >= 0, got %r" % text)
    return value


def run_map(kind, workers, fn, inputs):
    """fn over inputs on the chosen standard-library pool, as a list in input order."""
    if kind == "process-executor":
        chunksize = max(1, -(-len(inputs) // (4 * workers)))  # Pool.map's automatic chunksize
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as ex:
            return list(ex.map(fn, inputs, chunksize=chunksize))
    make = multiprocessing.pool.ThreadPool if kind == "thread-pool" else multiprocessing.Pool
    with make(workers) as pool:
        return pool.map(fn, inputs)


def main(argv=None):
    ap = argparse.ArgumentParser(description="The seed's multiprocessing.Pool program (poolbench peer).")
    ap.add_argument("--mode", choices=("sleep", "tiny"), default="sleep",
                    help="sleep: the seed (default); tiny: x*x tasks, the cost of dispatch")
    ap.add_argument("--items", type=positive_int, default=None,
                    help="number of tasks (default 4 for sleep, 1000000 for tiny)")
    ap.add_argument("--ms", type=non_negative_float, default=2000.0,
                    help="milliseconds each sleep task sleeps (default 2000; ignored by tiny)")
    ap.add_argument("--workers", type=positive_int, default=8, help="pool processes (default 8, as the seed)")
    ap.add_argument("--pool", choices=("pool", "process-executor", "thread-pool"), default="pool",
                    help="pool: multiprocessing.Pool (default); process-executor: "
                         "concurrent.futures.ProcessPoolExecutor; thread-pool: multiprocessing.pool.ThreadPool")
    ap.add_argument("--quiet", action="store_true", help="print only the verdict line")
    args = ap.parse_args(argv)
    items = args.items if args.items is not None else (4 if args.mode == "sleep" else 1000000)
    xs = range(1, items + 1)

    t0 = time.monotonic()
    if args.mode == "sleep":
        results = run_map(args.pool, args.workers, sleep_square, [(x, args.ms) for x in xs])
    else:
        results = run_map(args.pool, args.workers, square, list(xs))
    wall = time.monotonic() - t0

    bad = [i for i, (x, r) in enumerate(zip(xs, results)) if r != x * x]
    if len(results) != items:
        bad.append(len(results))
    if not args.quiet:
        if args.mode == "sleep":
            print(" ".join(str(r) for r in results))
        else:
            print("%d results, sum %d" % (len(results), sum(results)))
    print("pool=%s mode=%s items=%d workers=%d wall=%.3fs %s" % (args.pool, args.mode, items, args.workers, wall,
          "ok" if not bad else "WRONG at item %d" % bad[0]))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
