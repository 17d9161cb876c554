/*
 * test_trainer.c - the training loop on a small synthetic, learnable data
 * set: it learns, it is bit-for-bit deterministic, and cancellation, time
 * limit, divergence and bad data end the run with the right code.
 */
#include <math.h>
#include <string.h>

#include "common/refnets.h"
#include "common/trainer.h"
#include "tests/harness.h"

enum { SIDE = 8, CLASSES = 3 };

// Class k is a bright 3x3 patch at one of three places, plus uniform noise.
static void make_set(nas_dataset *ds, int n, uint64_t seed) {
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_alloc(ds, n, 1, SIDE, SIDE, CLASSES, err), 0);
    nas_rng r;
    nas_rng_init(&r, seed, 0);
    for (int i = 0; i < n; i++) {
        int k = (int)nas_rng_below(&r, CLASSES);
        float *img = nas_dataset_image(ds, i);
        for (int p = 0; p < SIDE * SIDE; p++) img[p] = 0.3f * nas_rng_uniform(&r);
        int oy = k == 0 ? 1 : 4, ox = k == 2 ? 1 : 4;
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++) img[(oy + y) * SIDE + ox + x] += 1.0f;
        ds->labels[i] = (uint8_t)k;
    }
}

static nas_net *make_net(int batch) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    int out;
    ck_assert_int_eq(nas_net_create(&net, 1, SIDE, SIDE, err), 0);
    ck_assert_int_eq(nas_refnet_build(net, "small", CLASSES, &out, err), 0);
    ck_assert_int_eq(nas_net_compile(net, out, batch, err), 0);
    return net;
}

static nas_train_config base_config(const nas_dataset *tr, const nas_dataset *va) {
    nas_train_config c = nas_train_config_default();
    c.fid.epochs = 3;
    c.fid.batch = 16;
    c.fid.lr = 0.05f;
    c.fid.warmup_epochs = 0.5f;
    c.fid.seed = 11;
    c.train = tr;
    c.val = va;
    return c;
}

typedef struct cb_state {
    int calls;
    int cancel_after;
    float last_val_acc;
} cb_state;

static int on_epoch(void *user, const nas_train_epoch *e) {
    cb_state *s = user;
    s->calls++;
    s->last_val_acc = e->val_acc;
    ck_assert_int_eq(e->epoch, s->calls - 1);
    ck_assert(isfinite(e->train_loss) && e->lr >= 0);
    return s->cancel_after && s->calls >= s->cancel_after;
}

START_TEST(test_trainer_learns_and_is_deterministic) {
    nas_dataset tr, va, te;
    make_set(&tr, 240, 1), make_set(&va, 60, 2), make_set(&te, 60, 3);
    nas_train_result r1, r2;
    char err[NAS_ERR_LEN];
    for (int rep = 0; rep < 2; rep++) {
        nas_net *net = make_net(16);
        nas_train_config c = base_config(&tr, &va);
        c.test = &te;
        c.fid.test = 1;
        c.fid.augment = 1;
        c.fid.drop_path = 0.1f;
        cb_state st = {0};
        c.on_epoch = on_epoch, c.user = &st;
        ck_assert_int_eq(nas_trainer_run(net, &c, rep ? &r2 : &r1, err), NAS_OK);
        ck_assert_int_eq(st.calls, 3);
        ck_assert_float_eq(st.last_val_acc, (rep ? r2 : r1).val_acc);
        nas_net_destroy(&net);
    }
    ck_assert_msg(r1.val_acc >= 0.9f, "val acc %f", (double)r1.val_acc);
    ck_assert(r1.test_acc >= 0.85f);
    ck_assert(r1.train_loss_curve[2] < r1.train_loss_curve[0]);
    ck_assert_int_eq(r1.epochs_done, 3);
    ck_assert(r1.images_per_s > 0 && r1.seconds > 0);
    ck_assert_int_eq((int)r1.params, 24058 - 650 + 64 * 3 + 3);
    // Same seed, same thread count: identical numbers, bit for bit.
    ck_assert(memcmp(r1.train_loss_curve, r2.train_loss_curve, 3 * sizeof(float)) == 0);
    ck_assert(memcmp(r1.val_acc_curve, r2.val_acc_curve, 3 * sizeof(float)) == 0);
    ck_assert(memcmp(&r1.test_loss, &r2.test_loss, sizeof(float)) == 0);
    nas_train_result_fini(&r1), nas_train_result_fini(&r2);
    nas_dataset_fini(&tr), nas_dataset_fini(&va), nas_dataset_fini(&te);
}
END_TEST

START_TEST(test_trainer_stops) {
    nas_dataset tr, va;
    make_set(&tr, 64, 1), make_set(&va, 16, 2);
    nas_net *net = make_net(16);
    nas_train_result r;
    char err[NAS_ERR_LEN];

    // The cancel flag is checked before the first batch.
    nas_train_config c = base_config(&tr, &va);
    atomic_int flag = 1;
    c.cancel = &flag;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_ECANCELED);
    ck_assert_int_eq(r.epochs_done, 0);
    nas_train_result_fini(&r);

    // A callback returning nonzero stops after that epoch, which the result keeps.
    c = base_config(&tr, &va);
    cb_state st = {.cancel_after = 1};
    c.on_epoch = on_epoch, c.user = &st;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_ECANCELED);
    ck_assert_int_eq(r.epochs_done, 1);
    ck_assert(isfinite(r.val_acc));
    nas_train_result_fini(&r);

    c = base_config(&tr, &va);
    c.fid.time_limit_s = 1e-9;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(err, "time limit"));
    nas_train_result_fini(&r);

    // A NaN weight makes the first loss NaN: reported with epoch and step.
    c = base_config(&tr, &va);
    c.init_params = 0;
    nas_net_param(net, 0)->data[0] = NAN;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_EDIVERGED);
    ck_assert_ptr_nonnull(strstr(err, "diverged at epoch 0, step 0"));
    nas_train_result_fini(&r);
    nas_net_destroy(&net);
    nas_dataset_fini(&tr), nas_dataset_fini(&va);
}
END_TEST

START_TEST(test_trainer_rejects_bad_input) {
    nas_dataset tr, odd;
    make_set(&tr, 32, 1);
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_dataset_alloc(&odd, 8, 1, SIDE + 1, SIDE, CLASSES, err), 0);
    nas_net *net = make_net(16);
    nas_train_result r;
    nas_train_config c = base_config(&odd, NULL);
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "network expects 1x8x8"));
    c = base_config(&tr, NULL);
    tr.labels[5] = 7;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "label 7"));
    tr.labels[5] = 0;
    c.fid.batch = 32; /* larger than the compiled batch */
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_EINVAL);
    c.fid.batch = 16;
    c.fid.epochs = 0;
    ck_assert_int_eq(nas_trainer_run(net, &c, &r, err), NAS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "epochs"));
    nas_net_destroy(&net);
    nas_dataset_fini(&tr), nas_dataset_fini(&odd);
}
END_TEST

START_TEST(test_trainer_two_threads) {
    // Two threads learn as well and reproduce themselves bit for bit.
    nas_dataset tr, va;
    make_set(&tr, 160, 1), make_set(&va, 40, 2);
    nas_train_result r[2];
    char err[NAS_ERR_LEN];
    for (int rep = 0; rep < 2; rep++) {
        nas_net *net = make_net(16);
        nas_train_config c = base_config(&tr, &va);
        c.fid.threads = 2;
        ck_assert_int_eq(nas_trainer_run(net, &c, &r[rep], err), NAS_OK);
        nas_net_destroy(&net);
    }
    ck_assert(r[0].val_acc >= 0.85f);
    ck_assert(memcmp(r[0].train_loss_curve, r[1].train_loss_curve, 3 * sizeof(float)) == 0);
    ck_assert(memcmp(&r[0].val_loss, &r[1].val_loss, sizeof(float)) == 0);
    nas_train_result_fini(&r[0]), nas_train_result_fini(&r[1]);
    nas_dataset_fini(&tr), nas_dataset_fini(&va);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_trainer_learns_and_is_deterministic);
    tcase_add_test(tc, test_trainer_stops);
    tcase_add_test(tc, test_trainer_rejects_bad_input);
    tcase_add_test(tc, test_trainer_two_threads);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
