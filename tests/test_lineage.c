/*
 * test_lineage.c - a child's lineage: nas_genome_lineage names each
 * morphism (and plain move) evolution made on a chain, matched by layer id,
 * and `nasctl history` shows it for children stored with their parent (table
 * line, JSON "parent" and "lineage"), and nothing for the
 * first generation.
 */
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "master/store.h"
#include "tests/harness.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

START_TEST(test_lineage_names_every_move) {
    nas_rng rng;
    nas_rng_init(&rng, 5, 5);
    static const char *const want[] = {
        [NAS_MUTATION_OP] = "op: L",
        [NAS_MUTATION_WIDTH] = "width: L",
        [NAS_MUTATION_SKIP] = "skip",
        [NAS_MUTATION_INSERT] = "insert: ",
        [NAS_MUTATION_REMOVE] = "remove: L",
        [NAS_MUTATION_WIDEN] = "morph widen: L",
        [NAS_MUTATION_DEEPEN] = "morph deepen: identity conv3x3 L",
        [NAS_MUTATION_ADD_SKIP] = "morph skip: ",
    };
    int seen[16] = {0};
    for (int i = 0; i < 2000; i++) {
        nas_space sp = {
            .kind = NAS_SPACE_CHAIN, .depth_min = 1, .depth_max = 10, .morphisms = i % 2};
        nas_genome p, c;
        nas_mutation m;
        ck_assert_int_eq(nas_genome_sample(&sp, &rng, &p), NAS_OK);
        if (nas_genome_mutate(&p, &sp, 0.0f, &rng, &c, &m) != NAS_OK) continue;
        char buf[256], pt[NAS_GENOME_TEXT_MAX], ct[NAS_GENOME_TEXT_MAX];
        ck_assert_int_gt(nas_genome_lineage(&p, &c, buf, sizeof buf), 0);
        nas_genome_format(&p, pt, sizeof pt);
        nas_genome_format(&c, ct, sizeof ct);
        /* A plain width change may land on the widened width: then it is one. */
        int ok = strstr(buf, want[m.kind]) != NULL ||
                 (m.kind == NAS_MUTATION_WIDTH && strstr(buf, "morph widen: L")) ||
                 (m.kind == NAS_MUTATION_INSERT && strstr(buf, "morph deepen: "));
        ck_assert_msg(ok, "%s -> %s: kind %d described as '%s'", pt, ct, m.kind, buf);
        ck_assert_msg(strchr(buf, ';') == NULL, "one move, one change: '%s'", buf);
        seen[m.kind]++;
    }
    for (int k = NAS_MUTATION_OP; k <= NAS_MUTATION_ADD_SKIP; k++)
        if (k != NAS_MUTATION_HIDDEN) ck_assert_msg(seen[k] > 50, "kind %d: %d", k, seen[k]);
    /* Exact words for one morphism of each kind. */
    static const struct {
        const char *parent, *child, *want;
    } cases[] = {
        {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/24,sep3x3/32", "morph widen: L0 16 -> 24"},
        {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/16,conv3x3/16@2,sep3x3/32@1",
         "morph deepen: identity conv3x3 L2 after L0"},
        {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/16,sep3x3/32+0", "morph skip: stem -> L1"},
        {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/16,max3x3@1", "op: L1 sep3x3 -> max3x3"},
        {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/16,sep3x3/32", "same layers"},
        {"c=sep3x3:0+id:1", "c=sep3x3:0+max3x3:1", "mutation"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nas_genome p, c;
        char buf[256], err[NAS_ERR_LEN];
        ck_assert_int_eq(nas_genome_parse(cases[i].parent, strlen(cases[i].parent), &p, err), 0);
        ck_assert_int_eq(nas_genome_parse(cases[i].child, strlen(cases[i].child), &c, err), 0);
        ck_assert_int_gt(nas_genome_lineage(&p, &c, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, cases[i].want);
    }
}
END_TEST

/* A parent and its widened child, stored as evolution stores them. */
START_TEST(test_lineage_in_history) {
    const char *dir = nas_tmpdir_make();
    char db[PATH_MAX], err[NAS_ERR_LEN];
    nas_path_join(db, sizeof db, dir, "l.db");
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db, err), NAS_OK);
    nas_store_campaign camp = {.name = "lin",
                               .text = "name: lin\n",
                               .canonical = "name: lin\nstrategy.name: evolution\n",
                               .hash = 7,
                               .seed = 1};
    int created = 0;
    ck_assert_int_eq(nas_store_campaign_bind(st, &camp, 1000, &created, err), NAS_OK);
    const char *texts[2] = {"chain=conv3x3/16,sep3x3/32", "chain=conv3x3/24,sep3x3/32"};
    uint64_t hashes[2];
    for (int i = 0; i < 2; i++) {
        nas_genome g;
        ck_assert_int_eq(nas_genome_parse(texts[i], strlen(texts[i]), &g, err), NAS_OK);
        hashes[i] = nas_genome_hash(&g);
        nas_store_new_task t = {.arch_hash = hashes[i],
                                .arch_text = texts[i],
                                .params = 100,
                                .macs = 1000,
                                .stage = NAS_STORE_STAGE_SEARCH,
                                .has_parent = i == 1,
                                .parent_hash = i == 1 ? hashes[0] : 0,
                                .fidelity = nas_fidelity_default()};
        int64_t id;
        ck_assert_int_eq(nas_store_task_add(st, &t, NULL, 0, 2000 + i, &id, err), NAS_OK);
        ck_assert_int_eq(nas_store_task_lease(st, id, 1, "w1", "h1", "", 99999, 3000 + i, err),
                         NAS_OK);
        nas_store_result r = {.accuracy = 0.5 + 0.1 * i,
                              .loss = 0.3,
                              .test_accuracy = NAN,
                              .params = 100,
                              .macs = 1000,
                              .seconds = 1,
                              .worker = "w1"};
        ck_assert_int_ge(nas_store_put_result(st, id, 1, &r, NULL, 0, 4000 + i, err), 0);
    }
    nas_store_close(&st);

    char cmd[PATH_MAX + 128], out[16384], want[128];
    snprintf(cmd, sizeof cmd, "%s history --db %s", nas_bin("nasctl"), db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    snprintf(want, sizeof want, "from %016" PRIx64 ": morph widen: L0 16 -> 24", hashes[0]);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    const char *first = strstr(out, "  from ");
    ck_assert_ptr_null(strstr(first + 1, "  from ")); /* the first generation has none */

    snprintf(cmd, sizeof cmd, "%s history --db %s --json", nas_bin("nasctl"), db);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    nas_json *doc = NULL;
    ck_assert_msg(nas_json_parse(out, strlen(out), 0, &doc, err) == NAS_OK, "%s: %s", out, err);
    ck_assert_int_eq(doc->len, 2);
    ck_assert_int_eq(nas_json_get(&doc->items[0], "parent")->type, NAS_JSON_NULL);
    ck_assert_int_eq(nas_json_get(&doc->items[0], "lineage")->type, NAS_JSON_NULL);
    const nas_json *pj = nas_json_get(&doc->items[1], "parent");
    ck_assert(pj->type == NAS_JSON_NUMBER);
    ck_assert_str_eq(nas_json_get(&doc->items[1], "lineage")->str, "morph widen: L0 16 -> 24");
    nas_json_free(&doc);

    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("lineage");
    TCase *tc = tcase_create("lineage");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lineage_names_every_move);
    tcase_add_test(tc, test_lineage_in_history);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
