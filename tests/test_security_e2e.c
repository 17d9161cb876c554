// nas-test: label=e2e timeout=120
/*
 * test_security_e2e.c - CurveZMQ with real processes (docs/SECURITY.md):
 * keys made by `nasctl keygen`, a nas-master with a keypair and an
 * authorized directory, and nas-worker / nasctl / raw ZeroMQ clients that
 * do or do not hold the right keys.
 *
 * What is proved: an authorized worker finishes a campaign; a worker with
 * an unknown key, a worker that does not know the master's real public key
 * and a plaintext client get nothing (no task, no status, the campaign's
 * state unchanged), and the master logs the unknown key by fingerprint;
 * the refused worker says so on its stderr within seconds, naming its key,
 * the ZAP status and the fix, and the one with the wrong master key names
 * that file (the socket monitor, common/zmon.h), instead of only "master
 * silent"; SIGHUP admits a key added to the directory, and the worker
 * that was refused joins without a restart; nasctl status works with a
 * key and fails with a clear message without one; without keys the master
 * refuses to listen off the loopback unless --insecure, which it then
 * shows in its status document.
 *
 * Evaluation is synthetic (a few ms per task) so the suite stays short.
 */
#include "common/alloc.h"
#include "common/keys.h"
#include "common/wire.h"
#include "tests/e2e_util.h"

#include <limits.h>
#include <sys/stat.h>
#include <zmq.h>

/* The shared e2e layout plus the master's authorized-keys directory. */
typedef struct sec_env {
    e2e_env b;
    char auth[PATH_MAX];
} sec_env;

static void env_init(sec_env *e, int slot) {
    e2e_env_init(&e->b, slot);
    nas_path_join(e->auth, sizeof e->auth, e->b.dir, "authorized");
    ck_assert_int_eq(mkdir(e->auth, 0755), 0);
}

/* Path of key BASE (no extension) in the test directory. */
static void key_base(const sec_env *e, const char *name, char *out, size_t cap) {
    nas_path_join(out, cap, e->b.dir, name);
}

/* `nasctl keygen DIR/NAME`; with `authorize` the public half is copied
 * into the authorized directory (what an operator does with scp). */
static void keygen(const sec_env *e, const char *name, int authorize) {
    char base[PATH_MAX], cmd[3 * PATH_MAX], out[1024];
    key_base(e, name, base, sizeof base);
    snprintf(cmd, sizeof cmd, "%s keygen %s", nas_bin("nasctl"), base);
    ck_assert_msg(nas_run_cmd(cmd, out, sizeof out) == 0, "keygen %s: %s", name, out);
    if (authorize) {
        snprintf(cmd, sizeof cmd, "cp %s.key %s/%s.key", base, e->auth, name);
        ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    }
}

/* The fingerprint the master logs for key NAME. */
static void fingerprint(const sec_env *e, const char *name, char fp[NAS_KEY_FP_LEN]) {
    char path[PATH_MAX + 8], pub[NAS_KEY_Z85_LEN + 1], err[NAS_ERR_LEN];
    char base[PATH_MAX];
    key_base(e, name, base, sizeof base);
    snprintf(path, sizeof path, "%s.key", base);
    ck_assert_int_eq(nas_keys_load_public(path, pub, err), NAS_OK);
    nas_keys_fingerprint(pub, fp);
}

/* A worker with keypair `key` that trusts `master_key` as the master's
 * public key (both names of keys in the test directory). */
static pid_t start_worker(const sec_env *e, const char *name, const char *key,
                          const char *master_key) {
    char log[PATH_MAX], kb[PATH_MAX], mk[PATH_MAX];
    e2e_log_path(&e->b, name, log, sizeof log);
    key_base(e, key, kb, sizeof kb);
    key_base(e, master_key, mk, sizeof mk);
    strncat(mk, ".key", sizeof mk - strlen(mk) - 1);
    const char *extra[] = {"--key", kb, "--master-key", mk, "--log-level", "info", NULL};
    return e2e_start_worker(log, NULL, e->b.ctl, name, "2", extra);
}

/* nas-master with the keypair "master" and the authorized directory. */
static pid_t start_secure_master(const sec_env *e) {
    char kb[PATH_MAX];
    key_base(e, "master", kb, sizeof kb);
    const char *extra[] = {"--synthetic", "--key",       kb,     "--authorized",
                           e->auth,       "--log-level", "info", NULL};
    return e2e_start_master(e->b.mlog, NULL, e->b.cfg, extra);
}

/* Path of the log of worker NAME (start_worker's naming). */
static void worker_log(const sec_env *e, const char *name, char *out, size_t cap) {
    e2e_log_path(&e->b, name, out, cap);
}

/* The line a worker with key NAME logs when the master refuses it. */
static void refusal_line(const sec_env *e, const char *name, char *out, size_t cap) {
    char fp[NAS_KEY_FP_LEN], base[PATH_MAX];
    fingerprint(e, name, fp);
    key_base(e, name, base, sizeof base);
    snprintf(out, cap,
             "master %s refused this worker's key %s (ZAP status 400): add the public key in "
             "%s.key to the master's --authorized directory",
             e->b.ctl, fp, base);
}

/* `nasctl status` against the test master; `key` NULL for none.  Returns
 * the exit status, the output in out. */
static int nasctl_status(const sec_env *e, const char *key, const char *master_key, char *out,
                         size_t cap) {
    char cmd[4 * PATH_MAX], kb[PATH_MAX], mk[PATH_MAX], keys[3 * PATH_MAX] = "";
    if (key) {
        key_base(e, key, kb, sizeof kb);
        key_base(e, master_key, mk, sizeof mk);
        snprintf(keys, sizeof keys, "--key %s --master-key %s.key", kb, mk);
    }
    snprintf(cmd, sizeof cmd, "%s status --master %s --json --timeout-ms 3000 %s",
             nas_bin("nasctl"), e->b.sts, keys);
    return nas_run_cmd(cmd, out, cap);
}

/* A plaintext ZeroMQ DEALER (no CURVE) sends a valid message to a CURVE
 * endpoint and must get nothing back within `wait_ms`. */
static int plaintext_gets_reply(const char *ep, int type, int wait_ms) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    char err[NAS_ERR_LEN];
    nas_wire_msg m;
    nas_wire_msg_init(&m, type);
    if (type == NAS_MSG_REGISTER) {
        snprintf(m.u.reg.name, sizeof m.u.reg.name, "plain");
        snprintf(m.u.reg.host, sizeof m.u.reg.host, "localhost");
        m.u.reg.cores = 1;
    }
    /* Queued until a connection exists, which it never does for us. */
    nas_wire_send(s, NULL, 0, &m, NULL, 0, 1, err);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int got = zmq_poll(&it, 1, wait_ms) > 0;
    zmq_close(s);
    zmq_ctx_term(ctx);
    return got;
}

/* keygen writes a pair with the right modes, refuses to overwrite and
 * says how; --force replaces the key. */
START_TEST(test_keygen_files) {
    sec_env e;
    env_init(&e, 0);
    keygen(&e, "k", 0);
    char base[PATH_MAX], path[PATH_MAX + 16], cmd[3 * PATH_MAX], out[1024];
    key_base(&e, "k", base, sizeof base);
    struct stat st;
    snprintf(path, sizeof path, "%s.key", base);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    char before[NAS_KEY_Z85_LEN + 1], after[NAS_KEY_Z85_LEN + 1], err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_keys_load_public(path, before, err), NAS_OK);
    snprintf(path, sizeof path, "%s.key_secret", base);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    snprintf(cmd, sizeof cmd, "%s keygen %s", nas_bin("nasctl"), base);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "exists") && strstr(out, "--force"), "message: %s", out);
    snprintf(path, sizeof path, "%s.key", base);
    ck_assert_int_eq(nas_keys_load_public(path, after, err), NAS_OK);
    ck_assert_str_eq(before, after);

    snprintf(cmd, sizeof cmd, "%s keygen %s --force", nas_bin("nasctl"), base);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_int_eq(nas_keys_load_public(path, after, err), NAS_OK);
    ck_assert_str_ne(before, after);
    nas_keypair kp;
    ck_assert_int_eq(nas_keys_load_pair(base, &kp, err), NAS_OK);

    snprintf(cmd, sizeof cmd, "%s keygen", nas_bin("nasctl"));
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "NAME"));
    nas_tmpdir_rm(e.b.dir);
}
END_TEST

/* Scenarios 1-5 of the issue on one secured master bound to 0.0.0.0
 * (allowed, because it has keys): outsiders first, while the campaign
 * must not move; then the authorized worker finishes it. */
START_TEST(test_secured_campaign) {
    sec_env e;
    env_init(&e, 1);
    keygen(&e, "master", 0);
    keygen(&e, "w1", 1);
    keygen(&e, "w2", 1);
    keygen(&e, "ops", 1);
    keygen(&e, "rogue", 0);    /* a worker nobody authorized */
    keygen(&e, "impostor", 0); /* a key that is not the master's */
    e2e_write_campaign(e.b.cfg, "sec", 6, e.b.port, "0.0.0.0", e.b.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    pid_t m = start_secure_master(&e);
    ck_assert(e2e_wait_in_file(e.b.mlog, "listening for weights", 20000));
    ck_assert_int_eq(e2e_count_in_file(e.b.mlog, "CurveZMQ"), 4); /* key line + 3 sockets */

    /* (2) unknown key, (3) authorized key but the wrong master key. */
    int64_t t_start = nas_now_ms();
    pid_t rogue = start_worker(&e, "rogue", "rogue", "master");
    pid_t w2 = start_worker(&e, "w2", "w2", "impostor");

    /* (4) plaintext clients get nothing from the CURVE sockets. */
    ck_assert_int_eq(plaintext_gets_reply(e.b.ctl, NAS_MSG_REGISTER, 500), 0);
    ck_assert_int_eq(plaintext_gets_reply(e.b.sts, NAS_MSG_STATUS_REQUEST, 500), 0);

    /* (5) nasctl: without a key, a prompt and clear failure; with the
     * operator's key, the document, which shows CURVE and no worker. */
    char out[16384];
    int64_t t0 = nas_now_ms();
    ck_assert_int_eq(nasctl_status(&e, NULL, NULL, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "CurveZMQ") && strstr(out, "--key"), "message: %s", out);
    ck_assert_int_lt(nas_now_ms() - t0, 2500); /* seen on the handshake, not the timeout */
    ck_assert_int_eq(nasctl_status(&e, "rogue", "master", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "refused nasctl's key") && strstr(out, "authorized"), "message: %s",
                  out);
    ck_assert_int_eq(nasctl_status(&e, "ops", "impostor", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "impostor.key"), "message: %s", out);

    char fp[NAS_KEY_FP_LEN], needle[64];
    fingerprint(&e, "rogue", fp);
    snprintf(needle, sizeof needle, "auth: rejected %s", fp);
    ck_assert_msg(e2e_wait_in_file(e.b.mlog, needle, 10000), "no rejection of %s logged", fp);
    /* Each outsider is told why within seconds, by its own stderr; the
     * refusal once, not once per retry (libzmq retries every 100 ms). */
    char rlog[PATH_MAX], w2log[PATH_MAX], line[2 * PATH_MAX];
    worker_log(&e, "rogue", rlog, sizeof rlog);
    worker_log(&e, "w2", w2log, sizeof w2log);
    refusal_line(&e, "rogue", line, sizeof line);
    ck_assert_msg(e2e_wait_in_file(rlog, line, 5000), "rogue was not told: %s", line);
    ck_assert_int_lt(nas_now_ms() - t_start, 10000);
    snprintf(line, sizeof line, "CURVE handshake with master %s failed", e.b.ctl);
    ck_assert_msg(e2e_wait_in_file(w2log, line, 5000), "w2 was not told about its master key");
    char mkpath[PATH_MAX + 8];
    key_base(&e, "impostor", mkpath, sizeof mkpath);
    strncat(mkpath, ".key (--master-key) the master's public key",
            sizeof mkpath - strlen(mkpath) - 1);
    ck_assert_int_ge(e2e_count_in_file(w2log, mkpath), 1);
    ck_assert_int_eq(e2e_count_in_file(w2log, "refused this worker's key"), 0);
    /* Give the outsiders time to retry: nobody is registered, nothing
     * leased or done, and the worker with the wrong master key never even
     * reached the ZAP handler. */
    nas_sleep_ms(800);
    ck_assert_int_eq(e2e_count_in_file(rlog, "refused this worker's key"), 1);
    ck_assert_int_eq(e2e_count_in_file(rlog, "master silent"), 0);
    ck_assert_int_eq(nasctl_status(&e, "ops", "master", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"curve\":true") && strstr(out, "\"insecure\":false"), "%s", out);
    ck_assert_msg(strstr(out, "\"workers\":[]"), "an outsider registered: %s", out);
    ck_assert_ptr_nonnull(strstr(out, "\"done\":0"));
    char cmd[4 * PATH_MAX], kb[PATH_MAX], mk[PATH_MAX];
    key_base(&e, "ops", kb, sizeof kb);
    key_base(&e, "master", mk, sizeof mk);
    snprintf(cmd, sizeof cmd, "%s status --master %s --key %s --master-key %s.key",
             nas_bin("nasctl"), e.b.sts, kb, mk);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "security      CurveZMQ, 3 authorized key(s)"), "%s", out);
    nas_store_counts s;
    e2e_counts(e.b.db, &s, NULL);
    ck_assert_int_eq(s.done + s.leased, 0);
    fingerprint(&e, "w2", fp);
    snprintf(needle, sizeof needle, "rejected %s", fp);
    ck_assert_int_eq(e2e_count_in_file(e.b.mlog, needle), 0);
    e2e_kill(w2, SIGTERM);

    /* (1) the authorized worker gets the tasks and the campaign ends. */
    pid_t w1 = start_worker(&e, "w1", "w1", "master");
    int m_rc = e2e_wait(m, 30000);
    e2e_kill(w1, SIGTERM);
    e2e_kill(rogue, SIGTERM);
    ck_assert_int_eq(m_rc, 0);
    e2e_check_exactly_once(e.b.db, 6);
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    ck_assert_int_eq(nas_store_open_ro(&st, e.b.db, err), NAS_OK);
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(r[i].worker, "w1");
    nas_store_records_free(r, n);
    nas_store_worker_info *wi = NULL;
    n = nas_store_worker_list(st, &wi, err);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(wi[i].name, "w1");
    nas_free(wi);
    nas_store_close(&st);
    ck_assert_int_eq(e2e_count_in_file(rlog, "agent: task "), 0);
    /* Stopped while refused: the last word repeats the cause. */
    ck_assert_int_eq(e2e_count_in_file(rlog, "stopped without being admitted: master"), 1);
    nas_tmpdir_rm(e.b.dir);
}
END_TEST

/* SIGHUP re-reads the authorized directory: a worker whose key is added
 * while it retries gets in and finishes the campaign. */
START_TEST(test_sighup_admits_new_key) {
    sec_env e;
    env_init(&e, 2);
    keygen(&e, "master", 0);
    keygen(&e, "late", 0);
    e2e_write_campaign(e.b.cfg, "hup", 4, e.b.port, "127.0.0.1", e.b.db,
                       "workers:\n  heartbeat_ms: 100\n  liveness: 3\n");
    pid_t m = start_secure_master(&e);
    ck_assert(e2e_wait_in_file(e.b.mlog, "listening for weights", 20000));
    pid_t w = start_worker(&e, "late", "late", "master");
    char fp[NAS_KEY_FP_LEN], needle[64];
    fingerprint(&e, "late", fp);
    snprintf(needle, sizeof needle, "rejected %s", fp);
    ck_assert(e2e_wait_in_file(e.b.mlog, needle, 10000));
    char wlog[PATH_MAX], line[2 * PATH_MAX];
    worker_log(&e, "late", wlog, sizeof wlog);
    refusal_line(&e, "late", line, sizeof line);
    ck_assert_msg(e2e_wait_in_file(wlog, line, 5000), "the worker was not told: %s", line);
    nas_store_counts s;
    e2e_counts(e.b.db, &s, NULL);
    ck_assert_int_eq(s.done + s.leased, 0);

    char cmd[3 * PATH_MAX], base[PATH_MAX];
    key_base(&e, "late", base, sizeof base);
    snprintf(cmd, sizeof cmd, "cp %s.key %s/late.key", base, e.auth);
    ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    kill(m, SIGHUP);
    int m_rc = e2e_wait(m, 30000);
    e2e_kill(w, SIGTERM);
    ck_assert_int_eq(m_rc, 0);
    ck_assert_int_eq(e2e_count_in_file(e.b.mlog, "1 authorized key(s) in force after reload"), 1);
    e2e_check_exactly_once(e.b.db, 4);
    /* The same process got in: it says so, registered, and ran tasks. */
    snprintf(line, sizeof line, "master %s admitted this worker after", e.b.ctl);
    ck_assert_int_eq(e2e_count_in_file(wlog, line), 1);
    ck_assert_int_ge(e2e_count_in_file(wlog, "agent: task "), 1);
    ck_assert_int_eq(e2e_count_in_file(wlog, "stopped without being admitted"), 0);
    nas_tmpdir_rm(e.b.dir);
}
END_TEST

/* (6) Without keys the master refuses an address other machines can
 * reach, naming it and the way out; with --insecure it starts, warns, and
 * says so in the status document.  Bad key options fail before anything
 * is bound. */
START_TEST(test_bind_rule) {
    sec_env e;
    env_init(&e, 3);
    const char *host = _i == 0 ? "0.0.0.0" : "*";
    e2e_write_campaign(e.b.cfg, "bind", 4, e.b.port, host, e.b.db, "");
    char cmd[4 * PATH_MAX], out[16384], ep[64];
    snprintf(ep, sizeof ep, "tcp://%s:%d", host, e.b.port);
    snprintf(cmd, sizeof cmd, "%s %s --synthetic", nas_bin("nas-master"), e.b.cfg);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, ep) && strstr(out, "--insecure"), "message: %s", out);

    /* Keys that cannot be used stop the master before it listens. */
    char kb[PATH_MAX];
    key_base(&e, "master", kb, sizeof kb);
    snprintf(cmd, sizeof cmd, "%s %s --synthetic --key %s", nas_bin("nas-master"), e.b.cfg, kb);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--authorized"));
    snprintf(cmd, sizeof cmd, "%s %s --synthetic --key %s --authorized %s", nas_bin("nas-master"),
             e.b.cfg, kb, e.auth);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "master.key_secret"), "message: %s", out);
    keygen(&e, "master", 0);
    snprintf(cmd, sizeof cmd, "%s %s --synthetic --key %s --authorized %s/none",
             nas_bin("nas-master"), e.b.cfg, kb, e.b.dir);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "authorized-keys directory") && strstr(out, "/none"), "%s", out);
    snprintf(cmd, sizeof cmd, "chmod 644 %s.key_secret", kb);
    ck_assert_int_eq(nas_run_cmd(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "%s %s --synthetic --key %s --authorized %s", nas_bin("nas-master"),
             e.b.cfg, kb, e.auth);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "chmod 600"), "message: %s", out);

    /* --insecure: it listens, warns, and nasctl shows it. */
    const char *insecure[] = {"--synthetic", "--insecure", NULL};
    pid_t m = e2e_start_master(e.b.mlog, NULL, e.b.cfg, insecure);
    ck_assert(e2e_wait_in_file(e.b.mlog, "listening for weights", 20000));
    ck_assert_int_ge(e2e_count_in_file(e.b.mlog, "without CURVE keys (--insecure)"), 3);
    ck_assert_int_eq(nasctl_status(&e, NULL, NULL, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"insecure\":true"), "status: %s", out);
    /* A client with keys against a master without them is told so. */
    keygen(&e, "ops", 0);
    ck_assert_int_eq(nasctl_status(&e, "ops", "master", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "CurveZMQ") || strstr(out, "--key"), "message: %s", out);
    snprintf(cmd, sizeof cmd, "%s status --master %s", nas_bin("nasctl"), e.b.sts);
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "INSECURE"), "status: %s", out);
    kill(m, SIGTERM);
    ck_assert_int_eq(e2e_wait(m, 10000), 0);
    nas_tmpdir_rm(e.b.dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("security_e2e");
    TCase *tc = tcase_create("curve");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, e2e_reap_setup, e2e_reap_all);
    tcase_add_test(tc, test_keygen_files);
    tcase_add_test(tc, test_secured_campaign);
    tcase_add_test(tc, test_sighup_admits_new_key);
    tcase_add_loop_test(tc, test_bind_rule, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
