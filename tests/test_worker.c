/*
 * test_worker.c - the real nas-worker binary against a scripted master:
 * SIGTERM gives the running task back and exits 0; tabular tasks are
 * answered from a CSV (unknown architectures fail saying so); bad tables
 * and missing options fail with clear messages.
 */
// nas-test: label=slow timeout=120
#include "common/clock.h"
#include "common/err.h"
#include "tests/e2e_util.h"
#include "tests/harness.h"
#include "master/dispatcher.h"
#include "tests/test_agent_broker.h"

#include "common/genome.h"

#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HB   50
#define CELL "n=sep3x3:1+max3x3:0,sep5x5:2+id:0 r=avg3x3:0+sep3x3:1"
#define NB201                                                                                      \
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"

/* Start nas-worker with extra arguments (NULL-terminated); its output goes
 * to log_path. */
static pid_t spawn_worker(const char *endpoint, const char *log_path, const char **extra) {
    const char *argv[32];
    int n = 0;
    argv[n++] = nas_bin("nas-worker");
    argv[n++] = "--master";
    argv[n++] = endpoint;
    argv[n++] = "--name";
    argv[n++] = "bw";
    argv[n++] = "--heartbeat-ms";
    argv[n++] = "50";
    argv[n++] = "--reconnect-min-ms";
    argv[n++] = "50";
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait up to ms for the child; returns its exit status, or -1 (and kills it). */
static int wait_exit(pid_t pid, int ms) {
    int st = 0;
    for (int waited = 0; waited < ms; waited += 10) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nas_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

START_TEST(test_worker_sigterm_gives_task_back_and_exits_zero) {
    const char *dir = nas_tmpdir_make();
    char log[4096];
    nas_path_join(log, sizeof log, dir, "worker.log");
    broker b;
    broker_open(&b, HB);
    const char *extra[] = {"--synthetic-epoch-ms", "50", NULL};
    pid_t pid = spawn_worker(b.endpoint, log, extra);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_REGISTER, 10000), 1);
    ck_assert_str_eq(b.pkt.msg.u.reg.name, "bw");
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_READY, 15000), 1);
    broker_task(&b, 77, 1000, NAS_EVAL_SYNTHETIC, CELL);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_PROGRESS, 15000), 1);
    int64_t t0 = nas_now_ms();
    kill(pid, SIGTERM);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_FAILURE, 15000), 1);
    ck_assert_uint_eq(b.pkt.msg.u.failure.task_id, 77);
    ck_assert_int_eq(b.pkt.msg.u.failure.give_back, 1);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_DISCONNECT, 15000), 1);
    ck_assert_int_eq(wait_exit(pid, 5000), 0);
    ck_assert_int_lt(nas_now_ms() - t0, 10000); /* the task would run 50 s */
    broker_close(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_worker_second_sigterm_exits_at_once) {
    /* Two signals back to back: the worker leaves promptly either way,
     * with 0 if the first one's clean stop won the race, 143 otherwise. */
    const char *dir = nas_tmpdir_make();
    char log[4096];
    nas_path_join(log, sizeof log, dir, "worker.log");
    broker b;
    broker_open(&b, HB);
    const char *extra[] = {"--synthetic-epoch-ms", "50", NULL};
    pid_t pid = spawn_worker(b.endpoint, log, extra);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_READY, 10000), 1);
    broker_task(&b, 78, 1000, NAS_EVAL_SYNTHETIC, CELL);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_PROGRESS, 15000), 1);
    kill(pid, SIGTERM);
    kill(pid, SIGTERM);
    int st = wait_exit(pid, 3000);
    ck_assert_msg(st == 0 || st == 143, "exit status %d", st);
    broker_close(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_worker_tabular_tasks_from_csv) {
    const char *dir = nas_tmpdir_make();
    char log[4096], csv[4096];
    nas_path_join(log, sizeof log, dir, "worker.log");
    nas_path_join(csv, sizeof csv, dir, "bench.csv");
    const char *text = "arch,val_acc,test_acc,params\n"
                       "\"" CELL "\",0.9125,0.9,12345\n" NB201 ",0.5,0.49,777\n";
    ck_assert_int_eq(nas_write_file(csv, text, strlen(text), 0), 0);
    broker b;
    broker_open(&b, HB);
    const char *extra[] = {"--table", csv, NULL};
    pid_t pid = spawn_worker(b.endpoint, log, extra);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_READY, 10000), 1);
    broker_task(&b, 1, 3, NAS_EVAL_TABULAR, CELL);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_double_eq(b.pkt.msg.u.result.val_acc, 0.9125);
    ck_assert_int_eq(b.pkt.msg.u.result.params, 12345);
    ck_assert_int_eq(b.pkt.msg.u.result.has_test, 0); /* fidelity did not ask */
    ck_assert_str_eq(b.pkt.msg.u.result.worker, "bw");
    broker_task(&b, 2, 3, NAS_EVAL_TABULAR, NB201);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 15000), 1);
    ck_assert_double_eq(b.pkt.msg.u.result.val_acc, 0.5);
    broker_task(&b, 3, 3, NAS_EVAL_TABULAR, "n=id:0+id:1 r=id:0+id:1");
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_FAILURE, 15000), 1);
    ck_assert_int_eq(b.pkt.msg.u.failure.code, NAS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(b.pkt.msg.u.failure.reason, "not in the table"));
    /* A training task without data: a clear failure, and the worker goes on. */
    broker_task(&b, 4, 3, NAS_EVAL_TRAIN, CELL);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_FAILURE, 15000), 1);
    ck_assert_int_eq(b.pkt.msg.u.failure.code, NAS_EINVAL);
    ck_assert_ptr_nonnull(strstr(b.pkt.msg.u.failure.reason, "data set"));
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid, 5000), 0);
    broker_close(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_worker_bad_table_and_options_fail_clearly) {
    const char *dir = nas_tmpdir_make();
    char csv[4096], cmd[8192], out[8192];
    nas_path_join(csv, sizeof csv, dir, "bad.csv");
    const char *text = "arch,val_acc\na,0.5\nb,0.6,extra\n";
    ck_assert_int_eq(nas_write_file(csv, text, strlen(text), 0), 0);
    snprintf(cmd, sizeof cmd, "%s --master tcp://127.0.0.1:9 --table %s", nas_bin("nas-worker"),
             csv);
    ck_assert_int_ne(nas_run_cmd(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "bad.csv:3") != NULL, "output: %s", out);
    snprintf(cmd, sizeof cmd, "%s --threads 2", nas_bin("nas-worker"));
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--master"));
    snprintf(cmd, sizeof cmd, "%s --master tcp://x:1 --threads many", nas_bin("nas-worker"));
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--threads"));
    snprintf(cmd, sizeof cmd, "%s --master nonsense://x", nas_bin("nas-worker"));
    ck_assert_int_eq(nas_run_cmd(cmd, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "nonsense://x"));
    nas_tmpdir_rm(dir);
}
END_TEST

START_TEST(test_worker_trains_a_task_with_the_engine) {
    const char *dir = nas_tmpdir_make();
    char log[4096];
    nas_path_join(log, sizeof log, dir, "worker.log");
    e2e_write_noisy_idx(dir, "train", 240, 1);
    broker b;
    broker_open(&b, HB);
    const char *extra[] = {"--data-dir", dir, NULL};
    pid_t pid = spawn_worker(b.endpoint, log, extra);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_READY, 10000), 1);
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    nas_wire_task *t = &m.u.task;
    t->task_id = 90, t->attempt = 1, t->mode = NAS_EVAL_TRAIN;
    strcpy(t->genome, "small14");
    strcpy(t->dataset, "mnist");
    t->fidelity = nas_fidelity_default();
    t->fidelity.epochs = 3, t->fidelity.batch = 16, t->fidelity.val_size = 40;
    t->fidelity.train_subset = 0, t->fidelity.lr = 0.2f;
    broker_send(&b, &m);
    memset(b.counts, 0, sizeof b.counts);
    ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 60000), 1);
    const nas_wire_result *r = &b.pkt.msg.u.result;
    ck_assert_uint_eq(r->task_id, 90);
    ck_assert_int_eq(r->n_curve, 3);
    ck_assert_int_eq(b.counts[NAS_MSG_PROGRESS], 3);
    ck_assert_msg(r->val_acc > 0.2, "val_acc %g", r->val_acc); /* 10 classes: chance is 0.1 */
    ck_assert_int_gt(r->params, 0);
    ck_assert_int_gt(r->macs, 0);
    ck_assert(r->seconds > 0);
    nas_wire_msg ack;
    nas_wire_msg_init(&ack, NAS_MSG_ACK);
    ack.u.ack = (nas_wire_ack){90, 1, 0};
    broker_send(&b, &ack);
    /* A genome, built by the builder at the fidelity's F and N; the data
     * set is prepared already (same recipe but resolution): a second one. */
    nas_wire_msg_init(&m, NAS_MSG_TASK);
    t->task_id = 91, t->attempt = 1, t->mode = NAS_EVAL_TRAIN;
    strcpy(t->genome, "n=sep3x3:0+max3x3:1 r=avg3x3:0+conv3x3:1");
    strcpy(t->dataset, "mnist");
    t->fidelity = nas_fidelity_default();
    t->fidelity.epochs = 2, t->fidelity.batch = 16, t->fidelity.val_size = 40;
    t->fidelity.train_subset = 0, t->fidelity.lr = 0.1f, t->fidelity.resolution = 14;
    t->fidelity.channels = 4, t->fidelity.cells = 1;
    /* The campaign's data.dir is not on this host: --data-dir is. */
    snprintf(t->data_dir, sizeof t->data_dir, "%s/not-here", dir);
    broker_send(&b, &m);
    do { /* an unacknowledged 90 may still come round once */
        ck_assert_int_eq(broker_wait(&b, NAS_MSG_RESULT, 60000), 1);
        r = &b.pkt.msg.u.result;
    } while (r->task_id == 90);
    ck_assert_uint_eq(r->task_id, 91);
    ck_assert_int_eq(r->n_curve, 2);
    ck_assert(r->val_acc >= 0 && r->val_acc <= 1);
    /* The trained network is the genome's: same size as counted without building. */
    nas_genome g;
    nas_cost cost;
    char err[NAS_ERR_LEN];
    ck_assert_int_eq(nas_genome_parse(t->genome, strlen(t->genome), &g, err), NAS_OK);
    ck_assert_int_eq(nas_genome_cost(&g, &t->fidelity, 1, 14, 10, &cost, err), NAS_OK);
    ck_assert_int_eq(r->params, cost.params);
    ck_assert_int_eq(r->macs, cost.macs);
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid, 10000), 0);
    broker_close(&b);
    nas_tmpdir_rm(dir);
}
END_TEST

// ---- real processes behind a real dispatcher ----------------------------------------------

typedef struct farm {
    nas_dispatcher *d;
    void *router;
    int results;
    int seen[8];
    char ran[8][NAS_WIRE_NAME_MAX]; /* worker that delivered each task's result */
} farm;

static int farm_send(void *ctx, const uint8_t *id, size_t id_len, const nas_wire_msg *m) {
    char err[NAS_ERR_LEN];
    return nas_wire_send(((farm *)ctx)->router, id, id_len, m, NULL, 0, 1, err);
}

static int farm_result(void *ctx, const nas_wire_result *r, const char *worker) {
    farm *f = ctx;
    f->results++;
    if (r->task_id < 8) {
        f->seen[r->task_id]++;
        snprintf(f->ran[r->task_id], sizeof f->ran[0], "%s", worker);
    }
    return NAS_OK;
}

/* Serve the ROUTER for ms, or until `done` results are in. */
static void farm_serve(farm *f, int64_t ms, int done) {
    nas_wire_packet *pkt = nas_malloc(sizeof *pkt);
    for (int64_t end = nas_now_ms() + ms; nas_now_ms() < end && f->results < done;) {
        zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 10);
        char err[NAS_ERR_LEN];
        int rc;
        while ((rc = nas_wire_recv(f->router, 1, 1, pkt, err)) != NAS_EAGAIN && rc != NAS_EIO) {
            nas_dispatcher_on_packet(f->d, pkt, rc, err, nas_now_ms());
            nas_wire_packet_fini(pkt);
        }
        nas_dispatcher_tick(f->d, nas_now_ms());
    }
    nas_free(pkt);
}

START_TEST(test_worker_killed_mid_task_its_task_finishes_elsewhere) {
    /* Two real nas-worker processes; the one running the long task is
     * killed with SIGKILL (no give-back, no goodbye).  The master notices
     * the silence, re-queues the task as attempt 2, and the survivor
     * finishes it: recorded exactly once. */
    const char *dir = nas_tmpdir_make();
    char log1[4096], log2[4096], err[NAS_ERR_LEN];
    nas_path_join(log1, sizeof log1, dir, "w1.log");
    nas_path_join(log2, sizeof log2, dir, "w2.log");
    farm f;
    memset(&f, 0, sizeof f);
    void *zctx = zmq_ctx_new();
    f.router = zmq_socket(zctx, ZMQ_ROUTER);
    ck_assert_int_eq(nas_wire_socket_setup(f.router, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(f.router, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t n = sizeof ep;
    zmq_getsockopt(f.router, ZMQ_LAST_ENDPOINT, ep, &n);
    nas_dispatcher_config cfg;
    nas_dispatcher_config_default(&cfg);
    cfg.heartbeat_ms = HB;
    nas_dispatcher_hooks h = {.ctx = &f, .send = farm_send, .on_result = farm_result};
    ck_assert_int_eq(nas_dispatcher_create(&f.d, &cfg, &h, err), NAS_OK);
    const char *extra[] = {"--synthetic-epoch-ms", "30", NULL};
    pid_t p1 = spawn_worker(ep, log1, extra);
    nas_dispatcher_counts c = {0};
    for (int i = 0; i < 500 && c.idle < 1; i++) {
        farm_serve(&f, 20, 1);
        nas_dispatcher_counts_get(f.d, &c);
    }
    ck_assert_int_eq(c.idle, 1);
    nas_wire_task t;
    memset(&t, 0, sizeof t);
    t.task_id = 1, t.attempt = 1, t.mode = NAS_EVAL_SYNTHETIC;
    strcpy(t.genome, CELL);
    t.fidelity = nas_fidelity_default();
    t.fidelity.epochs = 40; /* 1.2 s */
    ck_assert_int_eq(nas_dispatcher_push(f.d, &t, nas_now_ms(), err), NAS_OK);
    farm_serve(&f, 200, 1);
    ck_assert_int_eq(nas_dispatcher_task_state(f.d, 1, NULL), NAS_DISPATCH_TASK_LEASED);
    /* The survivor has a name of its own: a worker registering under the
     * killed one's name would be taken for it reconnecting, and its lease
     * given back uncounted (docs/PROTOCOL.md s4.4). */
    const char *extra2[] = {"--synthetic-epoch-ms", "30", "--name", "bw2", NULL};
    pid_t p2 = spawn_worker(ep, log2, extra2);
    kill(p1, SIGKILL);
    waitpid(p1, NULL, 0);
    farm_serve(&f, 20000, 1);
    ck_assert_int_eq(f.results, 1);
    ck_assert_int_eq(f.seen[1], 1);
    uint32_t attempt = 0;
    ck_assert_int_eq(nas_dispatcher_task_state(f.d, 1, &attempt), NAS_DISPATCH_TASK_DONE);
    ck_assert_uint_eq(attempt, 2);
    kill(p2, SIGTERM);
    ck_assert_int_eq(wait_exit(p2, 5000), 0);
    nas_dispatcher_destroy(&f.d);
    zmq_close(f.router);
    zmq_ctx_term(zctx);
    nas_tmpdir_rm(dir);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_worker_sigterm_gives_task_back_and_exits_zero);
    tcase_add_test(tc, test_worker_second_sigterm_exits_at_once);
    tcase_add_test(tc, test_worker_tabular_tasks_from_csv);
    tcase_add_test(tc, test_worker_bad_table_and_options_fail_clearly);
    tcase_add_test(tc, test_worker_trains_a_task_with_the_engine);
    tcase_add_test(tc, test_worker_killed_mid_task_its_task_finishes_elsewhere);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
