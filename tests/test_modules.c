/*
 * test_modules.c - the reference backends as modules (impls/internal/reference.h, impls/modules.c).
 *
 *  - GLib, libuv and libgomp are not in the process until a pool of their backend is created; the
 *    registry answers name, description and capabilities without loading anything; a pool then works.
 *  - Where the loader looks, and what it says when it fails: each failure is checked in a fresh copy of
 *    this program (a module loads once per process) with POOLBENCH_MODULE_DIR pointing at an empty
 *    directory or at tests/fake-modules/ (three modules broken on purpose, fixtures/modules/).
 *  - A real module refuses a library of another ABI or other struct sizes (its entry called directly).
 * Run order matters: the first test needs a process that has loaded no module yet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poolbench.h"
#include "reference.h"

static int t_square(const void *in, size_t len, pb_output *out) {
    int64_t x;
    if (len != sizeof x) return pb_output_error(out, "expected 8 bytes");
    memcpy(&x, in, sizeof x);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("mod.square", t_square)

static const char *const reference[] = {"glib", "libuv", "openmp"};
static const char *const library_of[] = {"libglib-2.0.so", "libuv.so", "libgomp.so"};

/* 1 when /proc/self/maps names a file whose path contains needle. */
static int mapped(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static int built(const char *name) { return pb_backend_caps(name) >= 0; }

static void test_libraries_load_on_first_use(void **state) {
    for (int i = 0; i < 3; i++) {
        if (!built(reference[i])) {
            printf("# %s: not built (%s)\n", reference[i], pb_backend_not_built_reason(reference[i]));
            continue;
        }
        assert_non_null(pb_backend_description(reference[i]));
        assert_int_equal(pb_backend_caps(reference[i]), PB_CAP_ASYNC);
        assert_false(mapped(library_of[i]));
        char module[64];
        snprintf(module, sizeof module, "libpoolbench-%s.so", reference[i]);
        assert_false(mapped(module));
    }
    for (int i = 0; i < 3; i++) {
        if (!built(reference[i])) continue;
        pb_options o;
        pb_options_init(&o);
        o.workers = 2;
        pb_pool *p;
        int rc = pb_pool_create(&p, reference[i], &o);
        if (rc < 0) fail_msg("%s: %s: %s", reference[i], pb_strerror(rc), pb_last_error());
        int64_t xs[16];
        pb_item items[16];
        pb_result res[16];
        memset(res, 0, sizeof res);
        for (int k = 0; k < 16; k++) {
            xs[k] = k;
            items[k] = (pb_item){&xs[k], sizeof xs[k]};
        }
        assert_int_equal(pb_map(p, "mod.square", items, 16, 0, res), 0);
        for (int k = 0; k < 16; k++) {
            int64_t v;
            assert_int_equal(res[k].status, PB_STATUS_OK);
            memcpy(&v, pb_result_data(&res[k]), sizeof v);
            assert_true(v == (int64_t)k * k);
        }
        pb_results_clear(res, 16);
        assert_string_equal(pb_pool_backend(p), reference[i]);
        pb_pool_destroy(p);
        char module[64];
        snprintf(module, sizeof module, "libpoolbench-%s.so", reference[i]);
        assert_true(mapped(module));
        assert_true(mapped(library_of[i]));
    }
}

/* Runs this program again as `--create NAME` with POOLBENCH_MODULE_DIR=dir; its one line of output
 * ("rc=N msg=...") goes to out. */
static void create_in_child(const char *dir, const char *name, char *out, size_t outlen) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char cmd[2 * PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "POOLBENCH_MODULE_DIR='%s' '%s' --create %s", dir, exe, name);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (!fgets(out, (int)outlen, p)) out[0] = '\0';
    assert_int_equal(pclose(p), 0);
}

static void test_missing_module_says_where(void **state) {
    if (!built("glib")) skip();
    char dir[] = "/tmp/poolbench-modules.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[4096];
    create_in_child(dir, "glib", out, sizeof out);
    rmdir(dir);
    char want[128];
    snprintf(want, sizeof want, "rc=%d ", PB_ENOBACKEND);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "backend 'glib' is a module that could not be loaded"));
    char path[128];
    snprintf(path, sizeof path, "%s/libpoolbench-glib.so: cannot open shared object file", dir);
    assert_non_null(strstr(out, path));
    assert_null(strstr(out, "set POOLBENCH_MODULE_DIR")); /* it was set: the only place looked in */
}

static void fake_dir(char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    snprintf(out, len, "%s/fake-modules", dirname(exe));
}

static void test_broken_modules_are_refused(void **state) {
    static const struct {
        const char *name, *says;
    } cases[] = {
        {"glib", "libpoolbench-glib.so: fake module: refuses ABI 1"},
        {"libuv", "libpoolbench-libuv.so: it has no pb__reference_module"},
        {"openmp", "libpoolbench-openmp.so: it holds backend 'glib', not 'openmp'"},
    };
    char dir[PATH_MAX];
    fake_dir(dir, sizeof dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!built(cases[i].name)) continue;
        char out[4096];
        create_in_child(dir, cases[i].name, out, sizeof out);
        char want[128];
        snprintf(want, sizeof want, "rc=%d ", PB_ENOBACKEND);
        if (!strstr(out, want) || !strstr(out, cases[i].says))
            fail_msg("%s: expected '%s', got '%s'", cases[i].name, cases[i].says, out);
    }
}

static int ok_set_error(int err, const char *message) { return err; }

/* The real glib module's entry, handed a library of another ABI, then of other struct sizes. */
static void test_module_refuses_other_abi(void **state) {
    if (!built("glib")) skip();
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/../modules/libpoolbench-glib.so", dirname(exe));
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) fail_msg("dlopen %s: %s", path, dlerror());
    pb__ref_module_entry entry;
    *(void **)&entry = dlsym(h, PB_REF_MODULE_ENTRY);
    assert_non_null(entry);
    pb__ref_host host = {.abi = PB_REF_MODULE_ABI + 998,
                         .sizes = {sizeof(pb_backend), sizeof(pb__job), sizeof(pb_result), sizeof(pb_options)},
                         .set_error = ok_set_error};
    char err[256] = "";
    assert_null(entry(&host, err, sizeof err));
    char want[64];
    snprintf(want, sizeof want, "module ABI %u, the library's %u", PB_REF_MODULE_ABI, PB_REF_MODULE_ABI + 998);
    assert_non_null(strstr(err, want));
    host.abi = PB_REF_MODULE_ABI;
    host.sizes[2] += 8; /* a pb_result of another shape */
    err[0] = '\0';
    assert_null(entry(&host, err, sizeof err));
    assert_non_null(strstr(err, "built against other structures than the library"));
    dlclose(h);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--create") == 0) { /* the child of create_in_child */
        pb_options o;
        pb_options_init(&o);
        o.workers = 1;
        pb_pool *p = NULL;
        int rc = pb_pool_create(&p, argv[2], &o);
        printf("rc=%d msg=%s\n", rc, rc < 0 ? pb_last_error() : "");
        if (p) pb_pool_destroy(p);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libraries_load_on_first_use), /* first: no module loaded yet */
        cmocka_unit_test(test_missing_module_says_where),
        cmocka_unit_test(test_broken_modules_are_refused),
        cmocka_unit_test(test_module_refuses_other_abi),
    };
    return cmocka_run_group_tests_name("modules", tests, NULL, NULL);
}
