/*
 * nas-worker - joins a nas-master and evaluates the architectures it is sent.
 *
 * Parses options, sets up the evaluator (loading a benchmark table once
 * when asked) and turns SIGTERM/SIGINT into stop requests for the agent:
 * the first becomes a give-back and a clean exit 0, a second an immediate
 * exit (status 143).
 *
 * Signals are caught with a handler rather than blocked for a signalfd:
 * OpenBLAS starts its thread pool from a library constructor, before
 * main() could block anything, so a blocked signal would be delivered to
 * one of its threads and kill the process with the default action.
 */
#include "common/blas.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sysmem.h"
#include "worker/agent.h"
#include "worker/evaluate.h"
#include "worker/health.h"
#include "worker/ps_client.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* The agent the signal handler stops, and a stop that arrived before the
 * agent existed.  The one piece of process state a handler needs. */
static nas_agent *volatile g_agent;
static volatile sig_atomic_t g_early_stop;

static void on_signal(int sig) {
    (void)sig;
    nas_agent *a = g_agent;
    if (a)
        nas_agent_request_stop(a); /* async-signal-safe: writes one byte to a pipe */
    else
        g_early_stop = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: nas-worker --master tcp://HOST:PORT [options]\n"
            "\n"
            "Joins a nas-master and evaluates the architectures it is sent.\n"
            "\n"
            "options:\n"
            "  --master ENDPOINT       master control endpoint (required)\n"
            "  --threads N             cores announced to the master (default 1); a task's\n"
            "                          fidelity sets the threads its training uses\n"
            "  --name NAME             worker name (default HOST:PID)\n"
            "  --key BASE              this worker's CurveZMQ keypair (BASE.key_secret, BASE.key)\n"
            "  --master-key PATH       the master's public key file (with --key)\n"
            "  --log-level L           debug, info, warn, error, off (default info)\n"
            "  --table PATH            benchmark CSV for tabular tasks (loaded once)\n"
            "  --table-key COL         architecture column (default arch)\n"
            "  --table-acc COL         accuracy column (default val_acc)\n"
            "  --acc-scale X           multiply table accuracies (0.01 for percent)\n"
            "  --data-dir DIR          where this host keeps the data sets: looked in when\n"
            "                          they are not in the campaign's data.dir\n"
            "  --weights ENDPOINT      master's weight store (listen.weights), overriding the\n"
            "                          endpoint the master announces when the worker registers\n"
            "  --heartbeat-ms N        heartbeat interval (default 1000)\n"
            "  --liveness N            silent intervals before reconnecting (default 5)\n"
            "  --reconnect-min-ms N    first reconnect delay (default 1000)\n"
            "  --reconnect-max-ms N    longest reconnect delay (default 32000)\n"
            "  --synthetic-epoch-ms N  simulated epoch time of synthetic tasks (default 0)\n"
            "  --stay                  when the campaign is done, wait for the next one\n"
            "                          (a service) instead of exiting 0\n"
            "  --health-file PATH      rewrite PATH about once per heartbeat while the worker\n"
            "                          runs (liveness probe; started by systemd with\n"
            "                          Type=notify it also sends READY=1 and WATCHDOG=1)\n"
            "  --check PATH            probe: exit 0 when the health file PATH was written\n"
            "                          within --max-age-ms, 1 otherwise; prints its line\n"
            "  --max-age-ms N          the age --check accepts (default 30000)\n"
            "  --help                  this text\n"
            "  --version               the version\n"
            "\n"
            "Options may be written --opt VALUE or --opt=VALUE.\n"
            "The worker exits 0 when the master says the campaign is done (unless --stay),\n"
            "and 1 when its own environment cannot evaluate tasks (data missing or\n"
            "unreadable, out of memory): it gives the task back uncounted and says why;\n"
            "also 1 when a newer process registers under its --name on this host.\n"
            "SIGTERM gives the current task back and exits 0; a second SIGTERM exits at once.\n"
            "A master that refuses this worker's key, or a --master-key that is not the\n"
            "master's, is reported as such on stderr; the worker keeps retrying, so a key\n"
            "authorized later (SIGHUP to the master) is admitted without a restart.\n"
            "A net larger than the memory the worker may take (the machine's, its cgroup's,\n"
            "its rlimits, or NAS_MEM_LIMIT=SIZE such as 6G from the environment) fails its\n"
            "task with the sizes before any of it is allocated; the worker stays.\n");
}

/* Endpoints that never leave the machine need no encryption. */
static int is_loopback(const char *ep) {
    static const char *const local[] = {"tcp://127.", "tcp://localhost:", "tcp://[::1]", "ipc://",
                                        "inproc://"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(ep, local[i], strlen(local[i])) == 0) return 1;
    return 0;
}

/* Parse a positive integer option value; names the option on error. */
static int parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "nas-worker: %s needs an integer in [%ld, %ld], got '%s'\n", opt, lo, hi,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Where the master's announcement goes: the client the task thread uses,
 * and the control endpoint whose host replaces a wildcard. */
typedef struct weights_target {
    nas_ps_client *ps;
    const char *master;
    char last[256]; /* last endpoint set, so a re-register logs nothing new */
} weights_target;

/* Agent thread: resolve and hand over; the socket moves on the task
 * thread's next pull or push. */
static void on_weights(void *ctx, const char *announced) {
    weights_target *t = ctx;
    char ep[256], err[NAS_ERR_LEN];
    if (nas_ps_endpoint_resolve(announced, t->master, ep, sizeof ep, err) < 0 ||
        nas_ps_client_set_endpoint(t->ps, ep, err) < 0) {
        nas_warn("%s; children train fresh", err);
        return;
    }
    if (strcmp(ep, t->last) != 0) nas_info("weights: the master's weight store is at %s", ep);
    snprintf(t->last, sizeof t->last, "%s", ep);
}

/* --check: the probe's answer is the exit status; the line says what the
 * worker is doing (connected, busy) for whoever reads the probe's output. */
static int check_health(const char *path, int64_t max_age_ms) {
    char line[256], err[NAS_ERR_LEN];
    int rc = nas_health_check(path, max_age_ms, nas_wall_ms(), line, sizeof line, err);
    if (rc < 0) {
        fprintf(stderr, "nas-worker: %s\n", err);
        return 1;
    }
    printf("%s\n", line);
    return 0;
}

/* Agent thread, once per heartbeat: the health file and systemd's watchdog. */
static void on_alive(void *ctx, int connected, int busy, int64_t heard_ms_ago) {
    nas_health *h = ctx;
    nas_health_state s = {.connected = connected, .busy = busy, .heard_ms_ago = heard_ms_ago};
    char err[NAS_ERR_LEN];
    int rc = nas_health_report(h, &s, nas_wall_ms(), err);
    if (rc < 0 && !h->failing) nas_warn("health: %s", err);
    h->failing = rc < 0;
}

int main(int argc, char **argv) {
    nas_log_set_prog("nas-worker");
    /* May restart the binary on other BLAS kernels; fails on wrong ones. */
    if (nas_blas_prepare(argv) < 0) return 1;
    nas_agent_config acfg;
    nas_agent_config_default(&acfg);
    nas_evaluator_config ecfg;
    nas_evaluator_config_default(&ecfg);
    const char *weights_ep = NULL; /* --weights: the bulk socket; NULL = the master announces it */
    const char *key_base = NULL, *master_key = NULL;
    nas_health health = {0};
    const char *check_path = NULL;
    int64_t max_age_ms = 30000;
    /* Every option but --help, --version and --stay takes a value; the
     * table's order is the switch's. */
    enum { O_MASTER = 256, O_NAME, O_KEY, O_MKEY, O_TABLE, O_TKEY, O_TACC, O_WEIGHTS, O_DATA,
           O_SCALE, O_LOG, O_THREADS, O_HB, O_LIVE, O_RMIN, O_RMAX, O_SYN, O_STAY, O_HEALTH,
           O_CHECK, O_MAXAGE };
    static const struct option lo[] = {
        {"master", required_argument, NULL, O_MASTER},
        {"name", required_argument, NULL, O_NAME},
        {"key", required_argument, NULL, O_KEY},
        {"master-key", required_argument, NULL, O_MKEY},
        {"table", required_argument, NULL, O_TABLE},
        {"table-key", required_argument, NULL, O_TKEY},
        {"table-acc", required_argument, NULL, O_TACC},
        {"weights", required_argument, NULL, O_WEIGHTS},
        {"data-dir", required_argument, NULL, O_DATA},
        {"acc-scale", required_argument, NULL, O_SCALE},
        {"log-level", required_argument, NULL, O_LOG},
        {"threads", required_argument, NULL, O_THREADS},
        {"heartbeat-ms", required_argument, NULL, O_HB},
        {"liveness", required_argument, NULL, O_LIVE},
        {"reconnect-min-ms", required_argument, NULL, O_RMIN},
        {"reconnect-max-ms", required_argument, NULL, O_RMAX},
        {"synthetic-epoch-ms", required_argument, NULL, O_SYN},
        {"stay", no_argument, NULL, O_STAY},
        {"health-file", required_argument, NULL, O_HEALTH},
        {"check", required_argument, NULL, O_CHECK},
        {"max-age-ms", required_argument, NULL, O_MAXAGE},
        {"help", no_argument, NULL, NAS_CLI_HELP},
        {"version", no_argument, NULL, NAS_CLI_VERSION},
        {NULL, 0, NULL, 0},
    };
    int ch, cli_status;
    while ((ch = nas_cli_next(argc, argv, lo, "nas-worker", usage, &cli_status)) != -1) {
        const char *v = optarg;
        long n = 0;
        switch (ch) {
        case NAS_CLI_EXIT:
            return cli_status;
        case O_MASTER: acfg.endpoint = v; break;
        case O_NAME: acfg.name = v; break;
        case O_KEY: key_base = v; break;
        case O_MKEY: master_key = v; break;
        case O_TABLE: ecfg.table_path = v; break;
        case O_TKEY: ecfg.key_col = v; break;
        case O_TACC: ecfg.acc_col = v; break;
        case O_WEIGHTS: weights_ep = v; break;
        case O_DATA: ecfg.data_dir = v; break;
        case O_STAY: acfg.stay = 1; break;
        case O_HEALTH: health.path = v; break;
        case O_CHECK: check_path = v; break;
        case O_MAXAGE:
            if (parse_int("--max-age-ms", v, 1, 86400000, &n) < 0) return 2;
            max_age_ms = n;
            break;
        case O_SCALE: {
            char *end;
            ecfg.acc_scale = strtod(v, &end);
            if (*end || !(ecfg.acc_scale > 0)) {
                fprintf(stderr, "nas-worker: --acc-scale needs a number > 0, got '%s'\n", v);
                return 2;
            }
            break;
        }
        case O_LOG: {
            enum nas_log_level l;
            if (nas_log_parse_level(v, &l) < 0) {
                fprintf(stderr, "nas-worker: --log-level: unknown level '%s'\n", v);
                return 2;
            }
            nas_log_set_level(l);
            break;
        }
        case O_THREADS:
            if (parse_int("--threads", v, 1, 256, &n) < 0) return 2;
            acfg.threads = (int)n;
            break;
        case O_HB:
            if (parse_int("--heartbeat-ms", v, 1, 3600000, &n) < 0) return 2;
            acfg.heartbeat_ms = n;
            break;
        case O_LIVE:
            if (parse_int("--liveness", v, 1, 1000, &n) < 0) return 2;
            acfg.liveness = (int)n;
            break;
        case O_RMIN:
            if (parse_int("--reconnect-min-ms", v, 1, 3600000, &n) < 0) return 2;
            acfg.reconnect_min_ms = n;
            break;
        case O_RMAX:
            if (parse_int("--reconnect-max-ms", v, 1, 3600000, &n) < 0) return 2;
            acfg.reconnect_max_ms = n;
            break;
        case O_SYN:
            if (parse_int("--synthetic-epoch-ms", v, 0, 3600000, &n) < 0) return 2;
            ecfg.synthetic_epoch_ms = (int)n;
            break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nas-worker: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 2;
    }
    if (check_path) return check_health(check_path, max_age_ms);
    if (!acfg.endpoint) {
        fprintf(stderr, "nas-worker: --master ENDPOINT is required (try --help)\n");
        return 2;
    }
    /* ZeroMQ would refuse "127.0.0.1:5555" with a bare "Invalid argument". */
    if (!strstr(acfg.endpoint, "://")) {
        fprintf(stderr,
                "nas-worker: --master %s lacks a transport: write tcp://%s (the master's "
                "listen.control)\n",
                acfg.endpoint, acfg.endpoint);
        return 2;
    }
    if (acfg.reconnect_max_ms < acfg.reconnect_min_ms)
        acfg.reconnect_max_ms = acfg.reconnect_min_ms;

    /* CurveZMQ: both files or neither (docs/SECURITY.md). */
    nas_keypair keys;
    memset(&keys, 0, sizeof keys);
    char server_key[NAS_KEY_Z85_LEN + 1];
    char kerr[NAS_ERR_LEN];
    char key_file[PATH_MAX + 8];
    if (!key_base != !master_key) {
        fprintf(stderr, "nas-worker: --key and --master-key go together (try --help)\n");
        return 2;
    }
    if (key_base) {
        if (nas_keys_load_pair(key_base, &keys, kerr) < 0 ||
            nas_keys_load_public(master_key, server_key, kerr) < 0) {
            explicit_bzero(&keys, sizeof keys);
            fprintf(stderr, "nas-worker: %s\n", kerr);
            return 1;
        }
        acfg.curve_keys = &keys;
        acfg.curve_server_key = server_key;
        /* Named in the diagnosis of a refused handshake: the file the
         * operator must copy into the master's authorized directory. */
        snprintf(key_file, sizeof key_file, "%s.key", key_base);
        acfg.curve_key_file = key_file;
        acfg.curve_server_key_file = master_key;
    } else if (!is_loopback(acfg.endpoint)) {
        nas_warn("connecting to %s without CurveZMQ: traffic can be read and forged on the "
                 "network (use --key and --master-key)",
                 acfg.endpoint);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        fprintf(stderr, "nas-worker: sigaction: %s\n", strerror(errno));
        return 1;
    }

    char err[NAS_ERR_LEN] = "";
    /* A memory limit that is not a size would fail every task: refuse to start instead. */
    nas_sysmem mem;
    if (nas_sysmem_read(&mem, err) < 0) {
        fprintf(stderr, "nas-worker: %s\n", err);
        return 2;
    }
    nas_evaluator *ev = NULL;
    nas_agent *agent = NULL;
    int status = 1;
    /* The parameter server client gets its own context: it lives on the
     * task thread and shares nothing with the agent's control socket. */
    void *wctx = NULL;
    nas_ps_client *ps = NULL;
    weights_target wt = {.master = acfg.endpoint};
    {
        /* Without --weights the client waits for the endpoint the master
         * announces in its answer to Register. */
        wctx = zmq_ctx_new();
        int prc = !wctx ? NAS_ENOMEM
                  : key_base ? nas_ps_client_create_curve(&ps, wctx, weights_ep, 0, &keys,
                                                          server_key, err)
                             : nas_ps_client_create(&ps, wctx, weights_ep, 0, err);
        if (prc < 0) {
            fprintf(stderr, "nas-worker: --weights %s: %s\n",
                    weights_ep ? weights_ep : "(announced)", wctx ? err : "zmq_ctx_new failed");
            goto done;
        }
        ecfg.ps = ps;
        wt.ps = ps;
        if (!weights_ep) {
            acfg.on_weights = on_weights;
            acfg.weights_ctx = &wt;
        }
    }
    if (health.path || getenv("NOTIFY_SOCKET")) {
        acfg.on_alive = on_alive;
        acfg.alive_ctx = &health;
    }
    if (nas_evaluator_create(&ev, &ecfg, err) < 0) {
        fprintf(stderr, "nas-worker: %s\n", err);
        goto done;
    }
    acfg.eval = ev;
    if (nas_agent_create(&agent, &acfg, err) < 0) {
        fprintf(stderr, "nas-worker: %s\n", err);
        goto done;
    }
    g_agent = agent;
    if (g_early_stop) nas_agent_request_stop(agent);
    int rc = nas_agent_run(agent, err);
    if (rc == NAS_ECANCELED) {
        /* Second signal: do not wait for the task thread. */
        _exit(143);
    }
    if (rc < 0) fprintf(stderr, "nas-worker: %s\n", err);
    /* A worker stopped while the master still refuses it says why once
     * more, so the last line of its log names the fix.  A stop is still a
     * clean exit (0): the operator asked for it. */
    const char *why = nas_agent_handshake_problem(agent);
    if (why[0]) fprintf(stderr, "nas-worker: stopped without being admitted: %s\n", why);
    status = rc < 0 ? 1 : 0;
done:
    g_agent = NULL;
    nas_agent_destroy(&agent);
    nas_evaluator_destroy(&ev);
    nas_ps_client_destroy(&ps);
    if (wctx) zmq_ctx_term(wctx);
    explicit_bzero(&keys, sizeof keys);
    return status;
}
