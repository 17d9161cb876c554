/*
 * test_other_cpu.c - nas-train on CPUs older than the one the suite runs
 * on, emulated by qemu-user (`qemu-x86_64 -cpu MODEL`, whose CPUID is the
 * model's): a Nehalem (SSE4.2, no AVX) and a Haswell (AVX2 + FMA, no
 * AVX-512).  Workers run on whatever machines a user has, and every
 * kernel the engine picks by CPU features must run there and compute what
 * it computes here.
 *
 * Each emulated run trains a cell with separable convs and pooling, and
 * its loss curve must equal the native run's with the same OpenBLAS
 * kernel set and every product on OpenBLAS (NAS_GEMM=openblas on both
 * sides; the tolerance leaves room for kernels whose summation order
 * differs by ISA).  Our own GEMM kernels are left out on purpose: the
 * AVX-512 dot-product kernel sums the weight gradients in another order
 * than OpenBLAS (correct to 1e-6, tests/test_gemm.c), and this tiny run
 * (7 steps of 16 images at lr 0.1) turns such last-bit differences into
 * loss differences from 0 to 9e-4 depending on the seed, as a tie in a
 * max pool or a ReLU at zero goes one way or the other.  Only the plane
 * kernels, which compute the same bits at every ISA level, and the
 * kernel-set choice are compared here.  A last case starts a
 * Nehalem with OPENBLAS_CORETYPE=Haswell, as a host image built for newer
 * machines would: it must not die of SIGILL but replace the kernels and
 * say so.  (The engine's restart runs natively, since qemu-user does not
 * follow execve; the decision itself is what that case checks.)
 *
 * The suite skips, saying why, where qemu-x86_64 is missing (Debian's
 * qemu-user; deploy/lib.sh installs it for the tests).
 */
// nas-test: label=e2e timeout=600
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/e2e_util.h"

#define CELL "n=sep3x3:1+max3x3:0 r=avg3x3:0+id:1"

static char OUT[65536];

/* The nas-train to emulate, in `out`; NULL if there is none.  ASan's shadow
 * memory does not map under qemu-user, so a sanitized suite emulates the
 * plain build deploy/test.sh makes for it (NAS_PLAIN_BIN_DIR). */
static const char *train_bin(char *out, size_t cap) {
    const char *d = getenv("NAS_PLAIN_BIN_DIR");
    if (d && d[0]) return nas_path_join(out, cap, d, "nas-train");
#if defined(__SANITIZE_ADDRESS__)
    return NULL;
#else
    snprintf(out, cap, "%s", nas_bin("nas-train"));
    return out;
#endif
}

/* 1 if this suite can run here; otherwise it says why. */
static int can_emulate(const char *what) {
    char bin[4096], out[256];
    if (nas_run_cmd("qemu-x86_64 --version >/dev/null 2>&1", out, sizeof out) != 0) {
        printf("SKIP %s: qemu-x86_64 not found (Debian package qemu-user)\n", what);
        return 0;
    }
    if (!train_bin(bin, sizeof bin)) {
        printf("SKIP %s: this nas-train is built with AddressSanitizer, which does not run under "
               "qemu-user; set NAS_PLAIN_BIN_DIR to a plain build's bin/ (deploy/test.sh does)\n",
               what);
        return 0;
    }
    return 1;
}

/* nas-train on DIR's data with OPENBLAS_CORETYPE=core, under qemu's `cpu`
 * model (NULL: natively); stdout (the JSON) in OUT, stderr in DIR/err. */
static int train(const char *dir, const char *cpu, const char *core) {
    char qemu[64] = "", cmd[8192], bin[4096];
    ck_assert_ptr_nonnull(train_bin(bin, sizeof bin));
    if (cpu) snprintf(qemu, sizeof qemu, "qemu-x86_64 -cpu %s", cpu);
    snprintf(cmd, sizeof cmd,
             "{ NAS_GEMM=openblas OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=1 %s %s --arch '" CELL
             "' --data mnist "
             "--data-dir %s --resolution 14 --epochs 1 --batch 16 --lr 0.1 --train-subset 0 "
             "--val-size 32 --json 2>%s/err; }",
             core, qemu, bin, dir, dir);
    return nas_run_cmd(cmd, OUT, sizeof OUT);
}

/* The one epoch's training loss and the validation accuracy of the JSON in OUT. */
static void parse(double *loss, double *val_acc) {
    nas_json *j = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(OUT, strlen(OUT), 16, &j, err) == 0, "%s: %s", err, OUT);
    ck_assert_int_eq(nas_json_get_number(j, "val_acc", val_acc, err), 0);
    const nas_json *c = nas_json_get(j, "loss_curve");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq((int)c->len, 1);
    *loss = c->items[0].number;
    nas_json_free(&j);
}

static const char *data_dir(void) {
    const char *dir = nas_tmpdir_make();
    e2e_write_bar_idx(dir, "train", 112);
    e2e_write_bar_idx(dir, "t10k", 16);
    return dir;
}

static void same_as_native(const char *cpu, const char *core) {
    if (!can_emulate(cpu)) return;
    const char *dir = data_dir();
    double native, emulated, acc_n, acc_e;
    ck_assert_int_eq(train(dir, NULL, core), 0);
    parse(&native, &acc_n);
    int rc = train(dir, cpu, core);
    char err[4096] = "", path[4096];
    snprintf(path, sizeof path, "cat %s/err | tail -c 2000", dir);
    nas_run_cmd(path, err, sizeof err);
    ck_assert_msg(rc == 0, "nas-train under a %s (OPENBLAS_CORETYPE=%s) exited %d: %s", cpu, core,
                  rc, err);
    parse(&emulated, &acc_e);
    ck_assert_msg(fabs(emulated - native) <= 1e-4 * fabs(native), "%s: loss %.9g, natively %.9g",
                  cpu, emulated, native);
    ck_assert_msg(fabs(acc_e - acc_n) <= 1.0 / 32 + 1e-9, "%s: val_acc %g, natively %g", cpu,
                  acc_e, acc_n);
    nas_tmpdir_rm(dir);
}

START_TEST(test_other_cpu_nehalem_trains_as_here) { same_as_native("Nehalem", "Prescott"); }
END_TEST

START_TEST(test_other_cpu_haswell_trains_as_here) { same_as_native("Haswell", "Haswell"); }
END_TEST

START_TEST(test_other_cpu_kernels_beyond_the_cpu_are_replaced) {
    if (!can_emulate("kernels beyond the CPU")) return;
    const char *dir = data_dir();
    int rc = train(dir, "Nehalem", "Haswell");
    char err[8192] = "", cmd[4096];
    snprintf(cmd, sizeof cmd, "cat %s/err", dir);
    nas_run_cmd(cmd, err, sizeof err);
    ck_assert_msg(rc == 0, "exited %d: %s", rc, err);
    ck_assert_msg(strstr(err, "which this CPU cannot run") && strstr(err, "restarting on Prescott"),
                  "%s", err);
    ck_assert_msg(strstr(err, "OPENBLAS_CORETYPE is overridden"), "%s", err);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("other_cpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 280);
    tcase_add_test(tc, test_other_cpu_nehalem_trains_as_here);
    tcase_add_test(tc, test_other_cpu_haswell_trains_as_here);
    tcase_add_test(tc, test_other_cpu_kernels_beyond_the_cpu_are_replaced);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
