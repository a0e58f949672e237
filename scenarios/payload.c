/*
 * payload.c - large inputs and outputs: what moving bytes to and from a worker costs.
 *
 * Each task gets in_kib of seeded random bytes and returns 8 + out_kib KiB: a 64-bit hash of its whole
 * input, then a pseudo-random stream seeded by that hash. So the output depends on every input byte (a
 * truncated or corrupted input changes it) and the verifier can regenerate the expected output from the
 * hash it computed at generation time, word by word, without holding a second copy of the results.
 *
 * Input: u64 out_bytes, then in_kib KiB. Output: u64 hash, then out_bytes of stream.
 *
 * Ideal model: the serial in-process calibration (hashing the input and writing the output, with no pool)
 * divided by min(workers, online CPUs); that is, moving the bytes is free. The threads backend can come
 * close since it shares memory; a process backend must copy in_kib + out_kib through pipes per item, so its
 * overhead is best read against the pipe_mib floor (seconds per MiB through a pipe between two processes).
 */
#include "scenario_impl.h"

#include <string.h>

enum { P_ITEMS, P_IN_KIB, P_OUT_KIB };

static const pb_param_def params[] = {
    {"items", PB_PARAM_INT, 16, 1, 4096, "number of tasks"},
    {"in_kib", PB_PARAM_INT, 1024, 0, 32768, "KiB of input per task"},
    {"out_kib", PB_PARAM_INT, 1024, 0, 32768, "KiB of output per task (plus an 8-byte hash)"},
};

#define MAX_TOTAL_BYTES (2ull << 30) /* inputs + outputs of one execution held in memory at once */

/* A word-at-a-time mixing hash: fast enough (well under a ms per MiB) to leave the copying dominant. */
static uint64_t hash_bytes(const unsigned char *p, size_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        h ^= pbs__get_u64(p + i);
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    for (; i < len; i++) {
        h ^= p[i];
        h *= 0x94D049BB133111EBull;
    }
    return h ^ (h >> 31);
}

static void fill_stream(unsigned char *out, size_t len, uint64_t seed) {
    uint64_t st = seed;
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        pbs__put_u64(out + i, pbs_splitmix64(&st));
    if (i < len) {
        uint64_t r = pbs_splitmix64(&st);
        memcpy(out + i, &r, len - i);
    }
}

static int payload_task(const void *in, size_t len, pb_output *out) {
    if (len < 8)
        return pb_output_error(out, "scenario.payload: input of %zu bytes, expected at least 8", len);
    uint64_t out_bytes = pbs__get_u64(in);
    if (out_bytes > 32768ull * 1024)
        return pb_output_error(out, "scenario.payload: output of %llu bytes requested",
                               (unsigned long long)out_bytes);
    uint64_t h = hash_bytes((const unsigned char *)in + 8, len - 8);
    unsigned char *o = pb_output_alloc(out, 8 + (size_t)out_bytes);
    if (!o)
        return pb_output_error(out, "scenario.payload: no output buffer of %llu bytes",
                               (unsigned long long)(8 + out_bytes));
    pbs__put_u64(o, h);
    fill_stream(o + 8, (size_t)out_bytes, h);
    return 0;
}
PB_TASK_DEFINE("scenario.payload", payload_task)

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    size_t n = (size_t)p->v[P_ITEMS], in = (size_t)p->v[P_IN_KIB] * 1024, outb = (size_t)p->v[P_OUT_KIB] * 1024;
    if ((unsigned long long)n * (in + outb + 16) > MAX_TOTAL_BYTES) {
        pbs__fail(err, errlen, "payload: items x (in_kib + out_kib) = %zu MiB is over the 2048 MiB limit",
                  n * (in + outb) >> 20);
        return PB_EINVAL;
    }
    int rc = pbs__workload_alloc(w, n, 8 + in, n * 8, seed, err, errlen);
    if (rc)
        return rc;
    uint64_t *hashes = w->expect;
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec = w->buf + i * (8 + in);
        pbs__put_u64(rec, outb);
        fill_stream(rec + 8, in, seed ^ (0xA5A5A5A5ull * (i + 1)));
        hashes[i] = hash_bytes(rec + 8, in);
    }
    return 0;
}

static int verify(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                  char *msg, size_t msglen) {
    const uint64_t *hashes = w->expect;
    size_t outb = (size_t)pbs__get_u64(w->items[0].data);
    for (size_t i = 0; i < w->n; i++) {
        if (pbs__expect_ok_len(&results[i], i, 8 + outb, msg, msglen))
            return -1;
        const unsigned char *o = pb_result_data(&results[i]);
        uint64_t h = pbs__get_u64(o);
        if (h != hashes[i])
            return pbs__fail(msg, msglen, "item %zu: input hash %016llx, expected %016llx", i,
                             (unsigned long long)h, (unsigned long long)hashes[i]);
        uint64_t st = h;
        size_t j = 0;
        for (; j + 8 <= outb; j += 8)
            if (pbs__get_u64(o + 8 + j) != pbs_splitmix64(&st))
                return pbs__fail(msg, msglen, "item %zu: output differs at byte %zu", i, 8 + j);
        if (j < outb) {
            uint64_t r = pbs_splitmix64(&st);
            if (memcmp(o + 8 + j, &r, outb - j) != 0)
                return pbs__fail(msg, msglen, "item %zu: output differs at byte %zu", i, 8 + j);
        }
    }
    return 0;
}

/* Every worker is started in create (PB_START_EAGER), not on demand inside the measured map: this scenario
 * measures moving bytes, and an on-demand pool of 2 would start its second worker (a spawn and an exec,
 * ~5-10 ms on the reference VM) inside the map it times. Starting workers is what `startup` measures, on
 * demand and eagerly; create's time is still stored with every sample here (startup_s). */
static void configure(const pb_scenario *s, const pb_params *p, pb_options *o) { o->start = PB_START_EAGER; }

static double ideal(const pb_scenario *s, const pb_params *p, int workers) {
    double serial = pbs__calibrate(s, p);
    return serial < 0 ? 0 : serial / pbs__effective_workers(workers);
}

const pb_scenario pbs__payload = {
    .name = "payload",
    .description = "large inputs and outputs (in_kib, out_kib per task): IPC bandwidth (ideal: transfer is free)",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.payload",
    .needs = 0,
    .floor = "pipe_mib",
    .measures = "map",
    .execute = pb_scenario_map_execute,
    .configure = configure,
    .ideal = ideal,
    .generate = generate,
    .verify = verify,
};
