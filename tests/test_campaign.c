// nas-test: label=e2e timeout=120
/*
 * test_campaign.c - the campaign in-process: a real libuv loop, real
 * sockets and a real SQLite file, with real worker agents on threads
 * (synthetic evaluation).  What a process-level test cannot reach:
 *  - a store that fails mid-campaign stops the campaign cleanly (error
 *    reported, handles closed, database consistent), and a new campaign on
 *    the same file resumes and finishes with every task recorded once;
 *  - the status document has the fields nasctl prints.
 */
#include "common/alloc.h"
#include "common/json.h"
#include "common/keys.h"
#include "master/campaign_internal.h"
#include "master/status.h"
#include "tests/e2e_util.h"
#include "worker/agent.h"

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

/* Fails the store after the campaign has recorded `after` results. */
typedef struct injector {
    uv_timer_t timer;
    nas_campaign *c;
    int after, injected;
} injector;

static void inject(uv_timer_t *h) {
    injector *in = h->data;
    if (in->injected || in->c->n_done < in->after) return;
    nas_store_fail_after(in->c->store, 1);
    in->injected = 1;
    uv_close((uv_handle_t *)h, NULL);
}

static void load_config(const char *path, nas_config *cfg) {
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_config_load(path, cfg, err) == NAS_OK, "%s", err);
}

START_TEST(test_campaign_store_failure_stops_cleanly_then_resumes) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX], ep[64];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    int port = e2e_port(0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    e2e_write_campaign(cfgp, "inproc", 12, port, "127.0.0.1", db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    nas_config cfg;
    load_config(cfgp, &cfg);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    opt.eval_mode = NAS_EVAL_SYNTHETIC;
    opt.resume_grace_ms = 2000;
    char err[NAS_ERR_LEN];

    /* Run 1: the store fails after 4 results. */
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nas_campaign *c = NULL;
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    ck_assert_int_eq(nas_campaign_start(c, err), NAS_OK);
    injector in = {.c = c, .after = 4};
    uv_timer_init(&loop, &in.timer);
    in.timer.data = &in;
    uv_timer_start(&in.timer, inject, 5, 5);
    e2e_agent a;
    e2e_agent_start(&a, ep, "inproc-a", 10);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns: the campaign closed */
    ck_assert_int_lt(nas_campaign_status(c, err), 0);
    ck_assert(!nas_campaign_done(c));
    nas_campaign_destroy(&c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);

    /* The file is consistent and holds at most what was acknowledged. */
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, db, err), NAS_OK);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &k, err), NAS_OK);
    ck_assert_int_ge(k.done, 4);
    ck_assert_int_lt(k.done, 12);
    nas_store_close(&st);

    /* Run 2: a new campaign on the same file finishes the budget; the agent
     * (which may hold a refused result) reconnects by itself. */
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    ck_assert_int_eq(nas_campaign_start(c, err), NAS_OK);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_msg(nas_campaign_status(c, err) == NAS_OK, "%s", err);
    ck_assert(nas_campaign_done(c));
    char *json = nas_campaign_status_json(c);
    nas_json *doc = NULL;
    ck_assert_int_eq(nas_json_parse(json, strlen(json), 0, &doc, err), NAS_OK);
    ck_assert_str_eq(nas_json_get(doc, "phase")->str, "done");
    ck_assert(nas_json_get(doc, "done")->number == 12);
    ck_assert_ptr_nonnull(nas_json_get(nas_json_get(doc, "best"), "arch"));
    ck_assert_ptr_nonnull(nas_json_get(nas_json_get(doc, "dispatcher"), "workers"));
    nas_json_free(&doc);
    nas_free(json);
    nas_campaign_destroy(&c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    e2e_agent_stop(&a);
    e2e_check_exactly_once(db, 12);
    nas_config_fini(&cfg);
    nas_tmpdir_rm(dir);
}
END_TEST

/* A campaign whose port is taken fails to start with a message naming the
 * endpoint, and still closes every handle. */
START_TEST(test_campaign_bind_failure_names_endpoint) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    e2e_write_campaign(cfgp, "bindfail", 4, e2e_port(1), "10.255.255.1", db, "");
    nas_config cfg;
    load_config(cfgp, &cfg);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nas_campaign *c = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    /* Off the loopback without --insecure: refused by the loopback rule. */
    ck_assert_int_lt(nas_campaign_start(c, err), 0);
    ck_assert_msg(strstr(err, "10.255.255.1") != NULL, "%s", err);
    nas_campaign_abort(c);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    nas_campaign_destroy(&c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    nas_config_fini(&cfg);
    nas_tmpdir_rm(dir);
}
END_TEST

/* The campaign's key options: mismatched or unusable ones are refused by
 * nas_campaign_create before anything starts; with keys the status
 * document says CurveZMQ and counts the authorized keys; SIGHUP's reload
 * picks up a new key and keeps the old set when the directory is damaged;
 * without keys there is nothing to reload. */
START_TEST(test_campaign_keys_status_and_reload) {
    const char *dir = nas_tmpdir_make();
    char cfgp[PATH_MAX], db[PATH_MAX], auth[PATH_MAX], base[PATH_MAX], ops[PATH_MAX];
    char path[PATH_MAX + 16], err[NAS_ERR_LEN];
    nas_path_join(cfgp, sizeof cfgp, dir, "c.yaml");
    nas_path_join(db, sizeof db, dir, "c.db");
    nas_path_join(auth, sizeof auth, dir, "auth");
    nas_path_join(base, sizeof base, dir, "master");
    ck_assert_int_eq(mkdir(auth, 0755), 0);
    nas_path_join(ops, sizeof ops, auth, "ops");
    ck_assert_int_eq(nas_keys_generate_files(base, 0, NULL, err), NAS_OK);
    ck_assert_int_eq(nas_keys_generate_files(ops, 0, NULL, err), NAS_OK);
    snprintf(path, sizeof path, "%s.key_secret", ops);
    ck_assert_int_eq(unlink(path), 0); /* only the public half belongs there */
    e2e_write_campaign(cfgp, "keys", 4, e2e_port(2), "127.0.0.1", db, "");
    nas_config cfg;
    load_config(cfgp, &cfg);
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nas_campaign *c = NULL;

    opt.key_base = base;
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_EINVAL);
    ck_assert_msg(strstr(err, "--authorized"), "%s", err);
    opt.authorized = "/nonexistent/authorized";
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_ENOTFOUND);
    ck_assert_msg(strstr(err, "/nonexistent/authorized"), "%s", err);
    opt.authorized = auth;
    opt.key_base = ops; /* a public key without its secret */
    ck_assert_int_lt(nas_campaign_create(&c, &cfg, &opt, &loop, err), 0);
    ck_assert_msg(strstr(err, "ops.key_secret"), "%s", err);
    ck_assert_ptr_null(c);

    opt.key_base = base;
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    ck_assert_int_eq(nas_campaign_start(c, err), NAS_OK);
    char *json = nas_campaign_status_json(c);
    nas_json *doc = NULL;
    ck_assert_int_eq(nas_json_parse(json, strlen(json), 0, &doc, err), NAS_OK);
    const nas_json *sec = nas_json_get(doc, "security");
    ck_assert_int_eq(nas_json_get(doc, "insecure")->boolean, 0);
    ck_assert_int_eq(nas_json_get(sec, "curve")->boolean, 1);
    ck_assert(nas_json_get(sec, "authorized_keys")->number == 1);
    nas_json_free(&doc);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(nas_status_print(json, f, err), NAS_OK);
    fclose(f);
    ck_assert_msg(strstr(text, "security      CurveZMQ, 1 authorized key(s)"), "%s", text);
    free(text);
    nas_free(json);

    char w2[PATH_MAX];
    nas_path_join(w2, sizeof w2, auth, "w2");
    ck_assert_int_eq(nas_keys_generate_files(w2, 0, NULL, err), NAS_OK);
    snprintf(path, sizeof path, "%s.key_secret", w2);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(nas_campaign_reload_auth(c, err), 2);
    nas_path_join(path, sizeof path, auth, "bad.key");
    ck_assert_int_eq(nas_write_file(path, "not a key\n", 10, 0), 0);
    ck_assert_int_lt(nas_campaign_reload_auth(c, err), 0);
    ck_assert_msg(strstr(err, "bad.key"), "%s", err);
    ck_assert_int_eq(nas_auth_key_count(c->auth), 2); /* the old set stays */

    nas_campaign_abort(c);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    nas_campaign_destroy(&c);

    /* Without keys: nothing to reload, and the status says loopback only. */
    nas_campaign_options_default(&opt);
    ck_assert_int_eq(nas_campaign_create(&c, &cfg, &opt, &loop, err), NAS_OK);
    ck_assert_int_eq(nas_campaign_reload_auth(c, err), NAS_ESTATE);
    json = nas_campaign_status_json(c);
    ck_assert_ptr_nonnull(strstr(json, "\"insecure\":false"));
    ck_assert_ptr_nonnull(strstr(json, "\"loopback_only\":true"));
    nas_free(json);
    nas_campaign_destroy(&c);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    nas_config_fini(&cfg);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("campaign");
    TCase *tc = tcase_create("inproc");
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_campaign_store_failure_stops_cleanly_then_resumes);
    tcase_add_test(tc, test_campaign_bind_failure_names_endpoint);
    tcase_add_test(tc, test_campaign_keys_status_and_reload);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
