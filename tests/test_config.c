/*
 * test_config.c - campaign files: defaults, a table of broken files each
 * with the exact message it must produce (file:line: key.path: problem),
 * the typed values of a full file, both shipped examples, units, and the
 * identity hash the store uses to refuse a different config.
 */
#include "master/config.h"
#include "master/config_internal.h"
#include "master/store.h"

#include "common/alloc.h"
#include "common/err.h"
#include "tests/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *text, nas_config *cfg, char *err) {
    return nas_config_parse(text, strlen(text), "bad.yaml", cfg, err);
}

// ---- broken files ------------------------------------------------------------------------------

static const struct {
    const char *yaml;
    const char *message; /* must appear in err */
} bad_files[] = {
    {"fidelity:\n  epochs: -3\n", "bad.yaml:2: fidelity.epochs: must be >= 1, got -3"},
    {"fidelity:\n  epoch: 3\n", "bad.yaml:2: fidelity.epoch: unknown key; did you mean 'epochs'?"},
    {"fidelity:\n  epochs: three\n",
     "bad.yaml:2: fidelity.epochs: expected an integer, got 'three'"},
    {"seed: \"7\"\n", "bad.yaml:1: seed: expected an integer, got the string '7'"},
    {"strategy:\n  population: 4\n  sample: 5\n",
     "bad.yaml:3: strategy.sample: must be <= strategy.population (4), got 5"},
    {"budgett:\n  evaluations: 3\n", "bad.yaml:1: budgett: unknown key; did you mean 'budget'?"},
    {"data:\n  set: imagenet\n",
     "bad.yaml:2: data.set: 'imagenet' is not allowed; expected one of: fashion-mnist mnist "
     "cifar10"},
    {"space:\n  kind: cels\n",
     "bad.yaml:2: space.kind: 'cels' is not allowed; did you mean 'cell'?"},
    {"space:\n  kind: nb201\n  ops: [nor_conv_3x3, sep3x3]\n",
     "bad.yaml:3: space.ops: 'sep3x3' is not an op of the nb201 space"},
    {"space:\n  ops: [zero]\n", "bad.yaml:2: space.ops: needs at least one op other than zero"},
    {"space:\n  blocks: 9\n", "bad.yaml:2: space.blocks: must be <= 8, got 9"},
    {"strategy: evolution\n", "bad.yaml:1: strategy: expected a mapping of keys, got a scalar"},
    {"space:\n  ops: sep3x3\n",
     "bad.yaml:2: space.ops: expected a list such as [a, b], got a scalar"},
    {"seed: 1\nname: x\nseed: 2\n", "bad.yaml:3: seed: duplicate key (first set at line 1)"},
    {"fidelity:\n  epochs: [1, 2\n", "YAML syntax error"},
    {"strategy:\n  p_identity: 1.5\n", "bad.yaml:2: strategy.p_identity: must be <= 1, got 1.5"},
    {"budget:\n  wall_time: ten minutes\n",
     "bad.yaml:2: budget.wall_time: expected a duration such as 90s, 10m or 2h, got 'ten minutes'"},
    {"weights:\n  memory_budget: lots\n",
     "bad.yaml:2: weights.memory_budget: expected a size such as 256MB, got 'lots'"},
    {"budget:\n  evaluations: 30\nfinal:\n  top_k: 50\n",
     "bad.yaml:4: final.top_k: must be <= budget.evaluations (30), got 50"},
    {"fidelity:\n  resolution: 32\n",
     "bad.yaml:2: fidelity.resolution: must be <= 28, the side of fashion-mnist images, got 32"},
    {"fidelity:\n  train_subset: 58000\n  val_size: 5000\n",
     "bad.yaml:2: fidelity.train_subset: train_subset + val_size = 63000 exceeds the 60000 "
     "training images of fashion-mnist"},
    {"evaluation:\n  mode: table\n",
     "bad.yaml:2: evaluation.table: is required when evaluation.mode is table"},
    {"listen:\n  control: 5555\n",
     "bad.yaml:2: listen.control: '5555' is not an endpoint such as tcp://127.0.0.1:5555"},
    {"listen:\n  weights: tcp://127.0.0.1:5555\n",
     "bad.yaml:2: listen: control, weights and status need three different endpoints"},
    {"budget:\n  evaluations: 10\n",
     "bad.yaml:2: strategy.population: must be <= budget.evaluations (10), got 20"},
    {"name: my campaign\n",
     "bad.yaml:1: name: 'my campaign' may hold only letters, digits, '.', '_' and '-'"},
    {"- a\n- b\n", "bad.yaml:1: (top level): expected a mapping of keys, got a list"},
    {"seed: 1\n---\nseed: 2\n", "bad.yaml:3: a campaign file holds one YAML document"},
    {"fidelity:\n  nesterov: maybe\n",
     "bad.yaml:2: fidelity.nesterov: expected true or false, got 'maybe'"},
    {"strategy:\n  seeds: [a, b, c, d, e, f, g, h, i]\n",
     "bad.yaml:2: strategy.seeds: at most 8 seeds"},
    {"fidelity:\n  time_limit: -5s\n", "bad.yaml:2: fidelity.time_limit: must be >= 0, got -5s"},
    {"fidelity:\n  lr: .nan\n", "bad.yaml:2: fidelity.lr: expected a number, got '.nan'"},
    {"fidelity:\n  epochs:\n", "bad.yaml:2: fidelity.epochs: expected an integer, got ''"},
    {"final:\n  top_k: 2\n  fidelity:\n    epochs: 0\n",
     "bad.yaml:4: final.fidelity.epochs: must be >= 1, got 0"},
    {"fidelity:\n  val_size: 0\n",
     "bad.yaml:2: fidelity.val_size: must be >= 1 when evaluation.mode is train"},
    {"space:\n  blocks: 3\nstrategy:\n  name: pnas\n  max_blocks: 5\n",
     "bad.yaml:5: strategy.max_blocks: must be <= space.blocks (3), got 5"},
    {"fidelity:\n  batch: {size: 3}\n",
     "bad.yaml:2: fidelity.batch: expected an integer, got a mapping"},
    {"strategy:\n  name: bayes\n", "bad.yaml:2: strategy.name: 'bayes' is not allowed"},
    {"data:\n  set: cifar10\nfidelity:\n  train_subset: 46000\n",
     "exceeds the 50000 training images of cifar10"},
    {"workers:\n  heartbeat_ms: 5\n", "bad.yaml:2: workers.heartbeat_ms: must be >= 10, got 5"},
    {"seed: -1\n", "bad.yaml:1: seed: must be >= 0, got -1"},
    /* Far from every key: no guess, the list of keys instead. */
    {"data:\n  xy: 1\n", "bad.yaml:2: data.xy: unknown key; expected one of: set dir"},
    {"space:\n  ops: [sep3x4]\n",
     "bad.yaml:2: space.ops: 'sep3x4' is not an op of the cell space; did you mean 'sep3x3'?"},
    {"space:\n  kind: nb201\nstrategy:\n  max_blocks: 3\n",
     "bad.yaml:4: strategy.max_blocks: must be <= 2 for the nb201 space (2), got 3"},
    {"space:\n  kind: mbconv\n  ops: [mbconv, sep3x3]\n",
     "bad.yaml:3: space.ops: 'sep3x3' is not an op of the mbconv space"},
    {"space:\n  kind: mbconv\n  blocks: 8\n",
     "bad.yaml:3: space.blocks: the mbconv space has at most 7 stages, got 8"},
    {"space:\n  kind: mbconv\nstrategy:\n  name: pnas\n",
     "bad.yaml:4: strategy.name: pnas needs a space with levels (cell or nb201), not mbconv; use "
     "random or evolution"},
    {"strategy:\n  ensemble: 0\n  lstm: false\n",
     "bad.yaml:2: strategy.ensemble: the predictor needs a model: ensemble >= 1 or lstm: true"},
    {"strategy:\n  objective:\n    weight: 0.5\n",
     "bad.yaml:3: strategy.objective.weight: must be <= 0, got 0.5"},
    {"strategy:\n  population: 5000\n",
     "bad.yaml:2: strategy.population: must be <= 4096, got 5000"},
    /* The final stage's recipe. */
    {"final:\n  seeds: 0\n", "bad.yaml:2: final.seeds: must be >= 1, got 0"},
    {"final:\n  seeds: 33\n", "bad.yaml:2: final.seeds: must be <= 32, got 33"},
    {"final:\n  target_param: 100000\n",
     "bad.yaml:2: final.target_param: unknown key; did you mean 'target_params'?"},
    {"final:\n  target_macs: -5\n", "bad.yaml:2: final.target_macs: must be >= 0, got -5"},
    {"final:\n  target_params: lots\n",
     "bad.yaml:2: final.target_params: expected an integer, got 'lots'"},
    {"final:\n  top_k: 1\n  fidelity:\n    cutout: -1\n",
     "bad.yaml:4: final.fidelity.cutout: must be >= 0, got -1"},
    {"final:\n  top_k: 1\n  fidelity:\n    cutout: 29\n",
     "bad.yaml:4: final.fidelity.cutout: must be <= 28, the side of the images it trains on, "
     "got 29"},
    {"fidelity:\n  cutout: 16\n",
     "bad.yaml:2: fidelity.cutout: must be <= 14, the side of the images it trains on, got 16"},
    {"fidelity:\n  aux_weight: 20\n", "bad.yaml:2: fidelity.aux_weight: must be <= 10, got 20"},
    {"final:\n  fidelity:\n    aux_wieght: 0.4\n",
     "bad.yaml:3: final.fidelity.aux_wieght: unknown key; did you mean 'aux_weight'?"},
};

START_TEST(test_config_bad_files) {
    char err[NAS_ERR_LEN];
    nas_config cfg = nas_config_default();
    const char *yaml = bad_files[_i].yaml;
    err[0] = '\0';
    int rc = parse(yaml, &cfg, err);
    ck_assert_msg(rc == NAS_ECONFIG, "case %d: rc %d for:\n%s", _i, rc, yaml);
    ck_assert_msg(strstr(err, bad_files[_i].message) != NULL, "case %d:\n  want: %s\n  got:  %s",
                  _i, bad_files[_i].message, err);
    /* A failed parse owns nothing. */
    ck_assert_ptr_null(cfg.text);
    ck_assert_ptr_null(cfg.canonical);
}
END_TEST

// ---- good files --------------------------------------------------------------------------------

START_TEST(test_config_defaults) {
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    ck_assert_msg(parse("", &cfg, err) == NAS_OK, "%s", err);
    nas_config d = nas_config_default();
    ck_assert_str_eq(cfg.name, "nasd");
    ck_assert(cfg.seed == 1);
    ck_assert_str_eq(cfg.data.set, "fashion-mnist");
    ck_assert_str_eq(cfg.strategy.name, "evolution");
    ck_assert_int_eq(cfg.strategy.space.kind, NAS_SPACE_CELL);
    ck_assert_int_eq(cfg.strategy.space.n_blocks, 5);
    /* Every cell op but zero. */
    ck_assert_uint_eq(cfg.strategy.space.op_mask, 0x3ff);
    ck_assert_int_eq(cfg.strategy.population, 20);
    ck_assert_int_eq(cfg.strategy.sample, 5);
    ck_assert_int_eq(cfg.strategy.max_blocks, 5);
    ck_assert_int_eq(cfg.strategy.budget, 100);
    ck_assert_int_eq(cfg.strategy.ensemble, 5);
    ck_assert_int_eq(cfg.strategy.use_lstm, 1);
    ck_assert_float_eq(cfg.strategy.mo_weight, -0.07f);
    ck_assert_int_eq(cfg.fidelity.epochs, d.fidelity.epochs);
    ck_assert_int_eq(cfg.final.top_k, 0);
    ck_assert_int_eq(cfg.final.fidelity.test, 1);
    ck_assert_str_eq(cfg.listen.control, "tcp://127.0.0.1:5555");
    ck_assert_int_eq(cfg.workers.max_attempts, 3);
    ck_assert_int_eq(cfg.workers.lease_grace_ms, 30000);
    ck_assert_int_eq(cfg.weights.inherit, 1);
    ck_assert_int_eq(cfg.weights.memory_budget, 256 << 20);
    ck_assert_int_eq(cfg.evaluation.mode, NAS_CONFIG_EVAL_TRAIN);
    ck_assert_str_eq(cfg.store, "nasd.db");
    ck_assert_str_eq(cfg.data.dir, "/usr/share/datasets/fashion-mnist");
    ck_assert_str_eq(cfg.source, "bad.yaml");
    ck_assert_ptr_nonnull(strstr(cfg.canonical, "fidelity.epochs: 2\n"));
    ck_assert_ptr_nonnull(strstr(cfg.canonical,
                                 "space.ops: [id, avg3x3, max3x3, sep3x3, sep5x5, sep7x7, "
                                 "dil3x3, conv1x7_7x1, conv3x3, conv1x1]\n"));
    /* Keys outside the identity are not in the canonical text. */
    ck_assert_ptr_null(strstr(cfg.canonical, "listen"));
    ck_assert_ptr_null(strstr(cfg.canonical, "store"));
    ck_assert_ptr_null(strstr(cfg.canonical, "memory_budget"));
    nas_config_fini(&cfg);
    nas_config_fini(&cfg); /* twice is fine */
    nas_config_fini(&d);
}
END_TEST

START_TEST(test_config_mbconv_space) {
    nas_config cfg;
    char err[NAS_ERR_LEN];
    const char *yaml = "space: {kind: mbconv, blocks: 4, ops: [fused]}\n"
                       "strategy: {name: evolution, population: 8, sample: 3}\n";
    ck_assert_msg(parse(yaml, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.strategy.space.kind, NAS_SPACE_MBCONV);
    ck_assert_int_eq(cfg.strategy.space.n_blocks, 4);
    ck_assert_uint_eq(cfg.strategy.space.op_mask, 2u);
    nas_config_fini(&cfg);
    ck_assert_msg(parse("space: {kind: mbconv}\n", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_uint_eq(cfg.strategy.space.op_mask, 3u); /* both block kinds by default */
    nas_config_fini(&cfg);
}
END_TEST

START_TEST(test_config_typed_values) {
    const char *yaml = "name: full.run-1\n"
                       "seed: 18446744073709551615\n"
                       "data: {set: cifar10, dir: /data/c10}\n"
                       "space:\n  kind: nb201\n  ops: [none, nor_conv_3x3, skip_connect]\n"
                       "strategy:\n  name: pnas\n  beam: 8\n  ensemble: 3\n  lstm: no\n"
                       "  seeds: [nasnet_a]\n"
                       "  objective: {target_params: 1_000_000, target_macs: 50000000, "
                       "weight: -0.1}\n"
                       "budget: {evaluations: 200, wall_time: 1h30m}\n"
                       "fidelity: {epochs: 3, lr: 0.05, time_limit: 500ms, nesterov: off, "
                       "seed: 9}\n"
                       "workers: {lease_grace: 2m, liveness: 3}\n"
                       "weights: {inherit: false, memory_budget: 1GiB}\n"
                       "evaluation: {mode: table, table: nb201.csv, signal_column: val12}\n"
                       "store: /tmp/x.db\n";
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    ck_assert_msg(parse(yaml, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_str_eq(cfg.name, "full.run-1");
    ck_assert(cfg.seed == 18446744073709551615ull);
    ck_assert_str_eq(cfg.data.set, "cifar10");
    ck_assert_str_eq(cfg.data.dir, "/data/c10");
    ck_assert_int_eq(cfg.strategy.space.kind, NAS_SPACE_NB201);
    ck_assert_uint_eq(cfg.strategy.space.op_mask,
                      (1u << NAS_NB201_NONE) | (1u << NAS_NB201_CONV3X3) | (1u << NAS_NB201_SKIP));
    ck_assert_str_eq(cfg.strategy.name, "pnas");
    ck_assert_int_eq(cfg.strategy.beam, 8);
    ck_assert_int_eq(cfg.strategy.use_lstm, 0);
    ck_assert_int_eq(cfg.strategy.n_seeds, 1);
    ck_assert_str_eq(cfg.strategy.seeds[0], "nasnet_a");
    ck_assert_int_eq(cfg.strategy.target_params, 1000000);
    ck_assert_int_eq(cfg.strategy.target_macs, 50000000);
    ck_assert_float_eq(cfg.strategy.mo_weight, -0.1f);
    ck_assert_int_eq(cfg.strategy.budget, 200);
    ck_assert_double_eq(cfg.budget.wall_time_s, 5400.0);
    ck_assert_int_eq(cfg.fidelity.epochs, 3);
    ck_assert_double_eq(cfg.fidelity.time_limit_s, 0.5);
    ck_assert_int_eq(cfg.fidelity.nesterov, 0);
    ck_assert(cfg.fidelity.seed == 9);
    ck_assert_int_eq(cfg.workers.lease_grace_ms, 120000);
    ck_assert_int_eq(cfg.workers.liveness, 3);
    ck_assert_int_eq(cfg.weights.inherit, 0);
    ck_assert_int_eq(cfg.weights.memory_budget, 1ll << 30);
    ck_assert_int_eq(cfg.evaluation.mode, NAS_CONFIG_EVAL_TABLE);
    ck_assert_str_eq(cfg.evaluation.table, "nb201.csv");
    ck_assert_str_eq(cfg.evaluation.signal_column, "val12");
    ck_assert_str_eq(cfg.store, "/tmp/x.db");
    ck_assert_uint_eq(cfg.text_len, strlen(yaml));
    ck_assert_str_eq(cfg.text, yaml);
    nas_config_fini(&cfg);
}
END_TEST

START_TEST(test_config_examples_load) {
    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[4096], err[NAS_ERR_LEN] = "";
    nas_config cfg;

    snprintf(path, sizeof path, "%s/deploy/examples/quick.yaml", src);
    ck_assert_msg(nas_config_load(path, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_str_eq(cfg.name, "quick");
    ck_assert_str_eq(cfg.data.set, "fashion-mnist");
    ck_assert_int_eq(cfg.budget.evaluations, 30);
    ck_assert_double_eq(cfg.budget.wall_time_s, 480.0);
    ck_assert_int_eq(cfg.final.top_k, 2);
    ck_assert_int_eq(cfg.fidelity.resolution, 14);
    ck_assert_str_eq(cfg.source, path);
    nas_config_fini(&cfg);

    snprintf(path, sizeof path, "%s/deploy/examples/evolution.yaml", src);
    ck_assert_msg(nas_config_load(path, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_str_eq(cfg.strategy.name, "evolution");
    ck_assert_int_eq(cfg.strategy.population, 50);
    ck_assert_int_eq(cfg.strategy.sample, 10);
    ck_assert_int_eq(cfg.strategy.n_seeds, 2);
    ck_assert_int_eq(cfg.final.top_k, 5);
    ck_assert_int_eq(cfg.final.fidelity.epochs, 30);
    ck_assert_double_eq(cfg.final.fidelity.time_limit_s, 3 * 3600.0);
    ck_assert_int_eq(cfg.weights.memory_budget, 1ll << 30);
    ck_assert_int_eq(cfg.workers.lease_grace_ms, 120000);
    nas_config_fini(&cfg);

    /* The Fashion-MNIST campaigns: the final recipe is all there, and the sizes fit. */
    snprintf(path, sizeof path, "%s/deploy/examples/fmnist.yaml", src);
    ck_assert_msg(nas_config_load(path, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.final.top_k, 1);
    ck_assert_int_ge(cfg.final.seeds, 2);
    ck_assert_int_eq(cfg.final.target_params, 1000000);
    ck_assert_int_gt(cfg.final.target_macs, 0);
    const nas_fidelity *ff = &cfg.final.fidelity;
    ck_assert_int_eq(ff->resolution, 0);
    ck_assert_int_eq(ff->train_subset, 0);
    ck_assert(ff->augment && ff->test && ff->cutout > 0 && ff->aux_weight > 0.0f);
    ck_assert(ff->label_smoothing > 0.0f && ff->drop_path > 0.0f && ff->warmup_epochs > 0.0f);
    ck_assert_int_eq(cfg.fidelity.resolution, 14);
    nas_config_fini(&cfg);
    snprintf(path, sizeof path, "%s/deploy/examples/fmnist-small.yaml", src);
    ck_assert_msg(nas_config_load(path, &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.final.target_params, 100000);
    ck_assert_int_ge(cfg.final.seeds, 2);
    ck_assert(cfg.final.fidelity.cutout > 0 && cfg.final.fidelity.aux_weight > 0.0f);
    ck_assert_int_eq(cfg.strategy.target_params, 0); /* a hard limit, not the soft reward */
    nas_config_fini(&cfg);

    ck_assert_int_eq(nas_config_load("/nonexistent/campaign.yaml", &cfg, err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/campaign.yaml: cannot open"));
}
END_TEST

START_TEST(test_config_units) {
    double s = 0;
    int64_t b = 0;
    ck_assert_int_eq(nas_config_parse_duration("90", &s), NAS_OK);
    ck_assert_double_eq(s, 90);
    ck_assert_int_eq(nas_config_parse_duration("10m", &s), NAS_OK);
    ck_assert_double_eq(s, 600);
    ck_assert_int_eq(nas_config_parse_duration("2h", &s), NAS_OK);
    ck_assert_double_eq(s, 7200);
    ck_assert_int_eq(nas_config_parse_duration("1h30m15s", &s), NAS_OK);
    ck_assert_double_eq(s, 5415);
    ck_assert_int_eq(nas_config_parse_duration("250ms", &s), NAS_OK);
    ck_assert_double_eq(s, 0.25);
    ck_assert_int_eq(nas_config_parse_duration("1d", &s), NAS_OK);
    ck_assert_double_eq(s, 86400);
    ck_assert_int_eq(nas_config_parse_duration("1h30", &s), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_duration("5x", &s), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_duration("-5s", &s), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_duration("", &s), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_size("256MB", &b), NAS_OK);
    ck_assert_int_eq(b, 256ll << 20);
    ck_assert_int_eq(nas_config_parse_size("1.5KiB", &b), NAS_OK);
    ck_assert_int_eq(b, 1536);
    ck_assert_int_eq(nas_config_parse_size("4096", &b), NAS_OK);
    ck_assert_int_eq(b, 4096);
    ck_assert_int_eq(nas_config_parse_size("2T", &b), NAS_OK);
    ck_assert_int_eq(b, 2ll << 40);
    ck_assert_int_eq(nas_config_parse_size("12 MB", &b), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_size("-1", &b), NAS_EINVAL);
    ck_assert_int_eq(nas_config_parse_size("1PB", &b), NAS_EINVAL);
}
END_TEST

// ---- identity ----------------------------------------------------------------------------------

static uint64_t hash_of(const char *yaml) {
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    ck_assert_msg(nas_config_parse(yaml, strlen(yaml), "h.yaml", &cfg, err) == NAS_OK, "%s", err);
    uint64_t h = cfg.hash;
    nas_config_fini(&cfg);
    return h;
}

START_TEST(test_config_hash_identity) {
    const char *a = "name: x\nfidelity:\n  epochs: 3\n  batch: 64\n";
    uint64_t h = hash_of(a);
    /* Comments, flow style, key order and a spelled-out default: same campaign. */
    ck_assert(hash_of("# a comment\nfidelity: {batch: 64, epochs: 3}\nname: x\n") == h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\n  lr: 0.1\n") == h);
    ck_assert(hash_of("name: x\nspace:\n  ops: [conv1x1, id, avg3x3, max3x3, sep3x3, sep5x5, "
                      "sep7x7, dil3x3, conv1x7_7x1, conv3x3]\nfidelity:\n  epochs: 3\n  "
                      "batch: 64\n") == h);
    /* Where the master listens, where files lie, how much memory: same campaign. */
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nlisten:\n  control: "
                      "tcp://127.0.0.1:7000\nstore: elsewhere.db\ndata:\n  dir: /mnt\n"
                      "weights:\n  memory_budget: 2GB\nworkers:\n  liveness: 9\n") == h);
    /* A budget and a thread count say how long and how fast, not what:
     * the same campaign, extended (docs/CAMPAIGN.md, "Identity"). */
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\n  threads: 4\n"
                      "budget:\n  evaluations: 500\n  wall_time: 2h\n") == h);
    /* What is searched, and how, changes it. */
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 4\n  batch: 64\n") != h);
    ck_assert(hash_of("name: x\nseed: 2\nfidelity:\n  epochs: 3\n  batch: 64\n") != h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nweights:\n  inherit: no\n") !=
              h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nspace:\n  ops: [id, "
                      "sep3x3]\n") != h);
    /* Keys added later are in the identity only when set: a file that leaves them out (or
     * spells out their default) keeps the hash it had before they existed; setting one
     * changes it. */
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\n  cutout: 0\n"
                      "final:\n  seeds: 1\n  target_params: 0\n") == h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nfinal:\n  seeds: 3\n") != h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nfinal:\n  "
                      "target_params: 100000\n") != h);
    ck_assert(hash_of("name: x\nfidelity:\n  epochs: 3\n  batch: 64\nfinal:\n  fidelity:\n"
                      "    aux_weight: 0.4\n") != h);
}
END_TEST

/* A campaign file written before keys were added keeps the hash the nasd of
 * its day gave it, or every store made then would refuse to resume: this is
 * deploy/examples/quick.yaml as it stood at stop 22 (comments left out), and
 * 0x171f3762972ce40e is what that nasd recorded for it. */
START_TEST(test_config_hash_of_an_older_file_is_kept) {
    const char *quick =
        "name: quick\n"
        "seed: 1\n"
        "data:\n"
        "  set: fashion-mnist\n"
        "  dir: /usr/share/datasets/fashion-mnist\n"
        "space:\n"
        "  kind: cell\n"
        "  blocks: 3\n"
        "  ops: [id, avg3x3, max3x3, sep3x3, sep5x5, dil3x3, conv1x1]\n"
        "strategy:\n"
        "  name: evolution\n"
        "  population: 8\n"
        "  sample: 3\n"
        "budget:\n"
        "  evaluations: 30\n"
        "  wall_time: 8m\n"
        "fidelity:\n"
        "  resolution: 14\n"
        "  train_subset: 4000\n"
        "  val_size: 1000\n"
        "  epochs: 1\n"
        "  batch: 64\n"
        "  channels: 8\n"
        "  cells: 1\n"
        "  lr: 0.1\n"
        "  threads: 1\n"
        "final:\n"
        "  top_k: 2\n"
        "  fidelity:\n"
        "    resolution: 28\n"
        "    train_subset: 10000\n"
        "    val_size: 2000\n"
        "    epochs: 2\n"
        "    batch: 64\n"
        "    channels: 8\n"
        "    cells: 1\n"
        "    lr: 0.1\n"
        "    augment: false\n"
        "    test: true\n"
        "listen:\n"
        "  control: tcp://127.0.0.1:5555\n"
        "  weights: tcp://127.0.0.1:5556\n"
        "  status: tcp://127.0.0.1:5557\n"
        "workers:\n"
        "  heartbeat_ms: 1000\n"
        "  liveness: 5\n"
        "  max_attempts: 3\n"
        "store: quick.db\n";
    ck_assert_uint_eq(hash_of(quick), 0x171f3762972ce40eULL);
}
END_TEST

/* final.fidelity is "as fidelity but" its own defaults: what the file sets
 * under fidelity reaches the final stage unless final.fidelity sets it. */
START_TEST(test_config_final_fidelity_inherits) {
    const char *y = "fidelity:\n  lr: 0.05\n  batch: 32\n  epochs: 4\n  seed: 9\n"
                    "final:\n  top_k: 1\n  fidelity:\n    batch: 64\n";
    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    ck_assert_msg(nas_config_parse(y, strlen(y), "f.yaml", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_float_eq(cfg.final.fidelity.lr, 0.05f);
    ck_assert_int_eq(cfg.final.fidelity.seed, 9);
    ck_assert_int_eq(cfg.final.fidelity.batch, 64);  /* final.fidelity wins */
    ck_assert_int_eq(cfg.final.fidelity.epochs, 20); /* the final stage's own default */
    ck_assert_int_eq(cfg.final.fidelity.augment, 1);
    nas_config_fini(&cfg);
}
END_TEST

/* The config's identity and the store's refusal work together: resuming
 * with an edited file names the key that changed. */
START_TEST(test_config_store_refuses_edited_config) {
    char err[NAS_ERR_LEN] = "", dir[4096], db[4096];
    snprintf(dir, sizeof dir, "%s", nas_tmpdir_make());
    nas_path_join(db, sizeof db, dir, "c.db");
    const char *v1 = "name: c\nfidelity:\n  epochs: 3\n";
    const char *v2 = "name: c\nfidelity:\n  epochs: 5\n";
    nas_config a, b;
    ck_assert_int_eq(nas_config_parse(v1, strlen(v1), "c.yaml", &a, err), NAS_OK);
    ck_assert_int_eq(nas_config_parse(v2, strlen(v2), "c.yaml", &b, err), NAS_OK);
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db, err), NAS_OK);
    const char *v3 = "name: c\nfidelity:\n  epochs: 3\n  threads: 2\nbudget:\n  evaluations: 300\n";
    nas_config x;
    ck_assert_int_eq(nas_config_parse(v3, strlen(v3), "c.yaml", &x, err), NAS_OK);
    nas_store_campaign ca = {a.name, a.text, a.canonical,
                             a.hash, a.seed, nas_config_line_extensible};
    nas_store_campaign cb = {b.name, b.text, b.canonical,
                             b.hash, b.seed, nas_config_line_extensible};
    nas_store_campaign cx = {x.name, x.text, x.canonical,
                             x.hash, x.seed, nas_config_line_extensible};
    ck_assert_int_eq(nas_store_campaign_bind(st, &ca, 1, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_store_campaign_bind(st, &cb, 2, NULL, err), NAS_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "stored 'fidelity.epochs: 3', given 'fidelity.epochs: 5'"));
    ck_assert_int_eq(nas_store_campaign_bind(st, &ca, 3, NULL, err), NAS_OK);
    /* An extension is accepted and recorded: status reads the new budget. */
    ck_assert_int_eq(nas_store_campaign_bind(st, &cx, 4, NULL, err), NAS_OK);
    nas_store_campaign_info info;
    ck_assert_int_eq(nas_store_campaign_get(st, &info, err), NAS_OK);
    ck_assert_ptr_nonnull(strstr(info.canonical, "budget.evaluations: 300"));
    ck_assert_ptr_nonnull(strstr(info.canonical, "fidelity.threads: 2"));
    nas_store_campaign_info_fini(&info);
    nas_config_fini(&x);
    nas_store_close(&st);
    nas_config_fini(&a);
    nas_config_fini(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

/* Each of our allocations may fail: NAS_ENOMEM, nothing leaks. */
START_TEST(test_config_out_of_memory) {
    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[4096], err[NAS_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/deploy/examples/evolution.yaml", src);
    nas_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int failures = 0;
    for (int n = 1; n < 50; n++) {
        nas_alloc_fail_after(n);
        int rc = nas_config_load(path, &cfg, err);
        nas_alloc_fail_reset();
        if (rc == NAS_OK) break;
        failures++;
        ck_assert_int_eq(rc, NAS_ENOMEM);
        ck_assert_ptr_null(cfg.text);
    }
    ck_assert_int_ge(failures, 3); /* file buffer, canonical text, text copy */
    ck_assert_ptr_nonnull(cfg.canonical);
    nas_config_fini(&cfg);
}
END_TEST

/* Hostile bytes: deep nesting, random garbage, NULs, aliases.  Each must
 * come back as an error or a config, never a crash (ASan watches). */
START_TEST(test_config_hostile_input) {
    char err[NAS_ERR_LEN];
    nas_config cfg;
    size_t n = 200000;
    char *deep = malloc(n + 1);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', n);
    deep[n] = '\0';
    ck_assert_int_eq(nas_config_parse(deep, n, "deep.yaml", &cfg, err), NAS_ECONFIG);
    ck_assert_str_eq(err, "deep.yaml:1: brackets nested deeper than 32 levels");
    for (size_t i = 0; i < n; i += 2)
        memcpy(deep + i, "{a", 2);
    ck_assert_int_eq(nas_config_parse(deep, n, "deep.yaml", &cfg, err), NAS_ECONFIG);
    free(deep);

    uint64_t x = 88172645463325252ull; /* xorshift: reproducible garbage */
    char buf[512];
    for (int round = 0; round < 300; round++) {
        size_t len = 1 + round % (sizeof buf - 1);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* Mostly YAML punctuation and key fragments, so the parser gets
             * past the first byte and into the walker. */
            static const char alphabet[] = "fidelity:epochs{}[]-,&*!|>'\"#\n  \t0123456789.\0";
            buf[i] = (char)(round % 3 == 0 ? (int)(x & 0xff) : alphabet[x % (sizeof alphabet - 1)]);
        }
        int rc = nas_config_parse(buf, len, "fuzz.yaml", &cfg, err);
        ck_assert(rc == NAS_OK || rc == NAS_ECONFIG);
        if (rc == NAS_OK) nas_config_fini(&cfg);
    }

    /* An alias reused for both fidelities is fine; every key still checked. */
    const char *alias = "fidelity: &f {epochs: 3, batch: 32}\nfinal:\n  top_k: 1\n"
                        "  fidelity: *f\n";
    ck_assert_msg(nas_config_parse(alias, strlen(alias), "a.yaml", &cfg, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(cfg.final.fidelity.epochs, 3);
    ck_assert_int_eq(cfg.final.fidelity.batch, 32);
    nas_config_fini(&cfg);
    ck_assert_int_eq(nas_config_parse(NULL, 0, NULL, &cfg, err), NAS_OK); /* all defaults */
    ck_assert_str_eq(cfg.source, "<config>");
    ck_assert_str_eq(cfg.text, "");
    nas_config_fini(&cfg);
    ck_assert_int_eq(nas_config_parse(NULL, 5, NULL, &cfg, err), NAS_EINVAL);
    const char nul[] = "seed: 1\0name: x\n";
    ck_assert_int_eq(nas_config_parse(nul, sizeof nul - 1, "nul.yaml", &cfg, err), NAS_ECONFIG);
}
END_TEST

/* docs/CAMPAIGN.md documents every key: walk the key table and look for
 * each leaf's row in its section ("| `epochs` |" under "### `fidelity`"). */
static void check_documented(const char *doc, const nas__cfg_field *table, const char *prefix) {
    for (const nas__cfg_field *f = table; f->key; f++) {
        char path[128];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", f->key);
        if (f->type == NAS__T_MAP) {
            check_documented(doc, f->sub, path);
            continue;
        }
        /* The section is the first component; top-level leaves sit in "Top level". */
        char section[64], heading[96], rest[128];
        const char *dot = strchr(path, '.');
        if (dot) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - path), path);
            snprintf(heading, sizeof heading, "### `%s`", section);
            snprintf(rest, sizeof rest, "%s", dot + 1);
        } else {
            snprintf(heading, sizeof heading, "### Top level");
            snprintf(rest, sizeof rest, "%s", path);
        }
        const char *sec = strstr(doc, heading);
        ck_assert_msg(sec != NULL, "CAMPAIGN.md has no section %s", heading);
        const char *end = strstr(sec + 4, "\n### ");
        size_t len = end ? (size_t)(end - sec) : strlen(sec);
        /* Accept the row of the key or of an enclosing mapping
         * ("final.fidelity" documents its keys as those of "fidelity"). */
        int found = 0;
        while (!found && *rest) {
            char row[160];
            snprintf(row, sizeof row, "| `%s` |", rest);
            const char *hit = strstr(sec, row);
            found = hit && (size_t)(hit - sec) < len;
            char *last = strrchr(rest, '.');
            if (last)
                *last = '\0';
            else
                rest[0] = '\0';
        }
        ck_assert_msg(found, "docs/CAMPAIGN.md does not document %s", path);
    }
}

START_TEST(test_config_every_key_documented) {
    const char *src = getenv("NAS_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/CAMPAIGN.md", src);
    size_t n = 0;
    char *doc = nas_read_file(path, &n);
    ck_assert_ptr_nonnull(doc);
    check_documented(doc, nas__config_fields, "");
    free(doc);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_loop_test(tc, test_config_bad_files, 0, (int)NAS_ARRAY_LEN(bad_files));
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_typed_values);
    tcase_add_test(tc, test_config_mbconv_space);
    tcase_add_test(tc, test_config_examples_load);
    tcase_add_test(tc, test_config_units);
    tcase_add_test(tc, test_config_hash_identity);
    tcase_add_test(tc, test_config_hash_of_an_older_file_is_kept);
    tcase_add_test(tc, test_config_final_fidelity_inherits);
    tcase_add_test(tc, test_config_store_refuses_edited_config);
    tcase_add_test(tc, test_config_out_of_memory);
    tcase_add_test(tc, test_config_hostile_input);
    tcase_add_test(tc, test_config_every_key_documented);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
