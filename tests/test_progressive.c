/*
 * test_progressive.c - progressive resizing (EfficientNetV2) as a fidelity
 * option: the training images' side grows linearly from
 * fidelity.progressive_start to the net's side over the epochs, the weights
 * and momentum carry across the nets of each side so the run learns, the
 * run is deterministic, and what cannot work (parameters that depend on the
 * side, a start not below the side, no builder) is refused by name.
 */
#include "common/alloc.h"
#include "common/builder.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/net.h"
#include "common/trainer.h"
#include "master/config.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>

#define SIDE 12

/* Two classes a small conv net tells apart at any side: a bright left or
 * right half, with deterministic noise. */
static void make_set(nas_dataset *ds, int n, uint64_t seed) {
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_alloc(ds, n, 1, SIDE, SIDE, 2, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, seed, 1);
    for (int i = 0; i < n; i++) {
        int cls = (int)nas_rng_below(&rng, 2);
        ds->labels[i] = (uint8_t)cls;
        float *img = nas_dataset_image(ds, i);
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                img[y * SIDE + x] = ((x < SIDE / 2) == (cls == 0) ? 1.0f : -1.0f) +
                                    0.5f * (nas_rng_uniform(&rng) - 0.5f);
    }
}

typedef struct sides {
    int side[8], acc_n;
    float acc[8];
    nas_net *net;       /* the main net */
    float *init;        /* its parameters before training */
    size_t n, moved[8]; /* how many differ from init after each epoch */
} sides;

static int record(void *user, const nas_train_epoch *e) {
    sides *s = user;
    s->side[e->epoch] = e->side;
    s->acc[s->acc_n++] = e->val_acc;
    const float *p = nas_net_params_data(s->net, NULL, NULL);
    for (size_t i = 0; i < s->n; i++)
        s->moved[e->epoch] += p[i] != s->init[i];
    return 0;
}

static const char *const ARCH = "chain=conv3x3/32,max3x3,sep3x3/32+1";

/* Train ARCH at SIDE with progressive resizing from `start`; returns the trainer's code. */
static int train(int start, sides *s, nas_train_result *res, char *err) {
    nas_dataset tr, val;
    make_set(&tr, 256, 1);
    make_set(&val, 64, 2);
    nas_builder_arch arch = {ARCH, nas_fidelity_default(), 2};
    arch.fid.channels = 4;
    nas_net *net = NULL;
    int logits = 0;
    ck_assert_int_eq(nas_net_create(&net, 1, SIDE, SIDE, err), NAS_OK);
    ck_assert_int_eq(nas_builder_arch_cb(&arch, net, &logits, err), NAS_OK);
    ck_assert_int_eq(nas_net_compile(net, logits, 32, err), NAS_OK);
    nas_rng rng;
    nas_rng_init(&rng, 1, 1);
    nas_net_init_params(net, &rng);
    size_t n_all;
    const float *p = nas_net_params_data(net, NULL, &n_all);
    s->net = net;
    s->n = n_all;
    s->init = nas_malloc(sizeof(float) * n_all);
    memcpy(s->init, p, sizeof(float) * n_all);
    nas_train_config tc = nas_train_config_default();
    tc.init_params = 0;
    tc.fid = arch.fid;
    tc.fid.epochs = 4;
    tc.fid.batch = 32;
    tc.fid.lr = 0.05f;
    tc.fid.progressive_start = start;
    tc.train = &tr;
    tc.val = &val;
    tc.on_epoch = record;
    tc.user = s;
    tc.build = nas_builder_arch_cb;
    tc.build_user = &arch;
    int rc = nas_trainer_run(net, &tc, res, err);
    nas_free(s->init);
    nas_net_destroy(&net);
    nas_dataset_fini(&tr);
    nas_dataset_fini(&val);
    return rc;
}

START_TEST(test_progressive_sides_grow_and_it_learns) {
    char err[NAS_ERR_LEN] = "";
    sides a = {0}, b = {0};
    nas_train_result ra, rb;
    ck_assert_msg(train(6, &a, &ra, err) == NAS_OK, "%s", err);
    static const int want[4] = {6, 8, 10, 12}; /* linear from 6 to the net's 12 */
    for (int e = 0; e < 4; e++)
        ck_assert_int_eq(a.side[e], want[e]);
    /* Epoch 0 trained a 6 px net only: the main net holds its weights (most
     * tensors moved; which running statistics stay put is the data's business). */
    ck_assert_msg(a.moved[0] > a.n / 2, "%zu of %zu moved", a.moved[0], a.n);
    /* Learning carries across the sides: the task is learnt by the end. */
    ck_assert_msg(ra.val_acc > 0.9f, "val acc %g", (double)ra.val_acc);
    /* Deterministic: a second run gives the same numbers. */
    ck_assert_msg(train(6, &b, &rb, err) == NAS_OK, "%s", err);
    for (int e = 0; e < 4; e++)
        ck_assert_float_eq(a.acc[e], b.acc[e]);
    nas_train_result_fini(&ra);
    nas_train_result_fini(&rb);
    /* Off: every epoch at the net's side. */
    sides c = {0};
    nas_train_result rc;
    ck_assert_msg(train(0, &c, &rc, err) == NAS_OK, "%s", err);
    for (int e = 0; e < 4; e++)
        ck_assert_int_eq(c.side[e], SIDE);
    nas_train_result_fini(&rc);
}
END_TEST

/* A net whose classifier reads every pixel: its weights depend on the side. */
static int flat_net(void *user, nas_net *net, int *logits, char *err) {
    (void)user;
    (void)err;
    int x = nas_net_input(net);
    x = nas_net_relu(net, nas_net_conv(net, "c", x, 2, 3, 3, 1, 1, 1, 1, 0));
    *logits = nas_net_linear(net, "fc", x, 2);
    return *logits < 0 ? *logits : NAS_OK;
}

START_TEST(test_progressive_refuses_what_cannot_work) {
    char err[NAS_ERR_LEN] = "";
    nas_dataset tr;
    make_set(&tr, 64, 1);
    nas_net *net = NULL;
    int logits = 0;
    ck_assert_int_eq(nas_net_create(&net, 1, SIDE, SIDE, err), NAS_OK);
    ck_assert_int_eq(flat_net(NULL, net, &logits, err), NAS_OK);
    ck_assert_int_eq(nas_net_compile(net, logits, 32, err), NAS_OK);
    nas_train_config tc = nas_train_config_default();
    tc.fid.epochs = 2;
    tc.fid.batch = 32;
    tc.fid.progressive_start = 8;
    tc.train = &tr;
    nas_train_result res;
    /* No builder for the smaller nets. */
    ck_assert_int_eq(nas_trainer_run(net, &tc, &res, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "and a builder for the smaller nets"));
    nas_train_result_fini(&res);
    tc.build = flat_net;
    ck_assert_int_eq(nas_trainer_run(net, &tc, &res, err), NAS_EINVAL);
    ck_assert_msg(strstr(err, "parameters that do not depend on the input side, but fc/weight "
                              "differs at 8 px") != NULL,
                  "%s", err);
    nas_train_result_fini(&res);
    tc.fid.progressive_start = SIDE; /* must start below the side it grows to */
    ck_assert_int_eq(nas_trainer_run(net, &tc, &res, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "progressive_start = 12 needs square images larger"));
    nas_train_result_fini(&res);
    nas_net_destroy(&net);
    nas_dataset_fini(&tr);
}
END_TEST

/* The campaign key: parsed into the fidelity, refused outside 4..side-1. */
START_TEST(test_progressive_config) {
    nas_config cfg;
    char err[NAS_ERR_LEN] = "";
    const char *ok = "fidelity:\n  resolution: 28\n  progressive_start: 14\n";
    ck_assert_msg(nas_config_parse(ok, strlen(ok), "c.yaml", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.fidelity.progressive_start, 14);
    nas_config_fini(&cfg);
    const char *bad = "fidelity:\n  resolution: 14\n  progressive_start: 14\n";
    ck_assert_int_ne(nas_config_parse(bad, strlen(bad), "c.yaml", &cfg, err), NAS_OK);
    ck_assert_msg(strstr(err, "c.yaml:3: fidelity.progressive_start: must be 0 (off) or 4..13, "
                              "below the side it grows to (14), got 14") != NULL,
                  "%s", err);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("progressive");
    TCase *tc = tcase_create("progressive");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_progressive_sides_grow_and_it_learns);
    tcase_add_test(tc, test_progressive_refuses_what_cannot_work);
    tcase_add_test(tc, test_progressive_config);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
