/*
 * nas-master - runs or resumes a NAS campaign and dispatches its work to
 * nas-worker processes (ARCHITECTURE.md, The flow, docs/USER-GUIDE.md).
 *
 * One libuv loop carries everything (master/campaign.h): the workers'
 * control socket, the read-only status endpoint, the timers, the ZAP
 * handler when CurveZMQ keys are given, SIGHUP (reload the authorized
 * keys) and SIGINT / SIGTERM.  The first signal stops gracefully (no new leases; leased tasks
 * are waited for, or cancelled with --cancel-on-stop; exit 0); a second one
 * exits at once, which is safe because every state change is one SQLite
 * transaction.  This file is the only place on the master side that exits.
 */
#include "common/cli.h"
#include "common/err.h"
#include "common/log.h"
#include "common/wire.h"
#include "master/campaign.h"
#include "master/config.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f) {
    fprintf(f, "usage: nas-master CAMPAIGN.yaml [options]\n"
               "\n"
               "Runs the campaign (or resumes it from its database) and dispatches work to\n"
               "nas-worker processes; prints the best architecture when it is done.\n"
               "\n"
               "options:\n"
               "  --db FILE            campaign database (default: the file's `store` key)\n"
               "  --log-level L        debug, info, warn, error, off (default info)\n"
               "  --wait-on-stop       on SIGINT/SIGTERM wait for leased tasks (default)\n"
               "  --cancel-on-stop     on SIGINT/SIGTERM cancel leased tasks and re-queue them\n"
               "  --resume-grace-ms N  how long tasks leased before a restart wait for their\n"
               "                       workers (default: workers.lease_grace of the file)\n"
               "  --synthetic          workers return synthetic metrics (benchmarks and tests;\n"
               "                       never a real campaign)\n"
               "  --key BASE           the master's CurveZMQ keypair (BASE.key_secret, BASE.key;\n"
               "                       make one with `nasctl keygen BASE`): every socket\n"
               "                       becomes a CurveZMQ server\n"
               "  --authorized DIR     public keys (*.key) of the workers and operators allowed\n"
               "                       in; required with --key; SIGHUP re-reads it\n"
               "  --insecure           allow listening off the loopback without CurveZMQ keys\n"
               "                       (plaintext; docs/SECURITY.md)\n"
               "  --advertise-weights ENDPOINT\n"
               "                       the weight store's endpoint as workers reach it, when\n"
               "                       that is not listen.weights (NAT, a proxy, a DNS name);\n"
               "                       a wildcard host (tcp://0.0.0.0:P) needs none: each\n"
               "                       worker uses the host it reached the master on\n"
               "  --retry-failed       put the tasks that failed for good back in the queue\n"
               "                       (each with fresh attempts), e.g. after fixing a\n"
               "                       worker's data; the campaign reopens if it was done\n"
               "  --help               this text\n"
               "  --version            the version\n"
               "\n"
               "Options may be written --opt VALUE or --opt=VALUE.\n"
               "\n"
               "A second signal exits at once; the database stays consistent and the next\n"
               "run resumes.\n"
               "\n"
               "Exit status: 0 done or stopped cleanly; 1 a failure a restart may cure (the\n"
               "disk, the database held by another master, a port in use); 2 a usage or\n"
               "configuration error a restart cannot cure (options, the campaign file, a\n"
               "file that disagrees with its database, the keys, the loopback rule); 130\n"
               "stopped by a second signal.\n");
}

/* The exit status of a failure (see usage()): 2 when what the operator
 * gave is wrong, so that a service manager stops restarting
 * (RestartPreventExitStatus=2), 1 for everything a later try may get past. */
static int failure_status(int rc) {
    switch (rc) {
    case NAS_ECONFIG:   /* the campaign file, or the file against its database */
    case NAS_EINVAL:    /* options that contradict each other */
    case NAS_EAUTH:     /* the loopback rule */
    case NAS_EFORMAT:   /* a key file that is not a key */
    case NAS_ENOTFOUND: /* a key file or the authorized directory is missing */
        return 2;
    default:
        return 1;
    }
}

typedef struct master_ctx {
    nas_campaign *campaign;
    uv_signal_t sigint, sigterm, sighup;
    int signals;
} master_ctx;

/* SIGHUP: re-read the authorized directory.  A damaged directory leaves
 * the old keys in force (master/auth.h), so a typo never locks everyone
 * out; the log says which. */
static void on_sighup(uv_signal_t *h, int signum) {
    (void)signum;
    master_ctx *m = h->data;
    char err[NAS_ERR_LEN];
    if (nas_campaign_reload_auth(m->campaign, err) < 0)
        nas_warn("master: SIGHUP: keys not reloaded: %s", err);
}

/* First signal: graceful stop; second: close at once (exit 130). */
static void on_signal(uv_signal_t *h, int signum) {
    master_ctx *m = h->data;
    m->signals++;
    nas_warn("master: %s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (m->signals == 1) {
        nas_campaign_stop(m->campaign);
    } else {
        nas_campaign_abort(m->campaign);
    }
}

/* Every connection to a socket of the master holds a descriptor.  A service
 * gets a soft limit of 1024 by default (systemd), which a flood of idle
 * connections on the status port takes whole: then no status is answered,
 * no worker can connect and no weight file can be written until the flood
 * ends.  The soft limit goes up to the hard one (at most 65536), which is
 * the administrator's to set (LimitNOFILE=). */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        nas_warn("master: cannot raise the open-file limit to %llu: %s", (unsigned long long)want,
                 strerror(errno));
}

int main(int argc, char **argv) {
    nas_log_set_prog("nas-master");
    raise_nofile();
#ifdef __GLIBC__
    /* One malloc arena for every thread, set before any thread starts.  In
     * an arena of its own, ZeroMQ's I/O thread left the freed buffers of a
     * registration flood's connections resident between live chunks, which
     * malloc_trim() at the checkpoint cannot return: bench/soak with a
     * flood of 5000 every 20 s grew the RSS by 13.7 % in 5 minutes, 4.3 %
     * with one arena.  The master's threads (the loop, ZeroMQ's, a few
     * pool workers) seldom allocate at the same moment. */
    mallopt(M_ARENA_MAX, 1);
#endif
    const char *path = NULL;
    nas_campaign_options opt;
    nas_campaign_options_default(&opt);
    enum {
        O_DB = 256,
        O_LOG,
        O_WAIT,
        O_CANCEL,
        O_GRACE,
        O_SYN,
        O_KEY,
        O_AUTH,
        O_INSECURE,
        O_RETRY,
        O_ADVERTISE
    };
    static const struct option lo[] = {
        {"db", required_argument, NULL, O_DB},
        {"log-level", required_argument, NULL, O_LOG},
        {"wait-on-stop", no_argument, NULL, O_WAIT},
        {"cancel-on-stop", no_argument, NULL, O_CANCEL},
        {"resume-grace-ms", required_argument, NULL, O_GRACE},
        {"synthetic", no_argument, NULL, O_SYN},
        {"key", required_argument, NULL, O_KEY},
        {"authorized", required_argument, NULL, O_AUTH},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"retry-failed", no_argument, NULL, O_RETRY},
        {"advertise-weights", required_argument, NULL, O_ADVERTISE},
        {"help", no_argument, NULL, NAS_CLI_HELP},
        {"version", no_argument, NULL, NAS_CLI_VERSION},
        {NULL, 0, NULL, 0},
    };
    int ch, cli_status, stop_flag = 0;
    while ((ch = nas_cli_next(argc, argv, lo, "nas-master", usage, &cli_status)) != -1) {
        switch (ch) {
        case NAS_CLI_EXIT:
            return cli_status;
        case O_CANCEL:
        case O_WAIT:
            /* Two answers to one question: refuse rather than let the
             * last one win silently. */
            if (stop_flag && stop_flag != ch) {
                fprintf(stderr, "nas-master: --wait-on-stop and --cancel-on-stop exclude each "
                                "other; give one\n");
                return 2;
            }
            stop_flag = ch;
            opt.cancel_on_stop = ch == O_CANCEL;
            break;
        case O_SYN:
            opt.eval_mode = NAS_EVAL_SYNTHETIC;
            break;
        case O_INSECURE:
            opt.insecure = 1;
            break;
        case O_RETRY:
            opt.retry_failed = 1;
            break;
        case O_DB:
            opt.db_path = optarg;
            break;
        case O_KEY:
            opt.key_base = optarg;
            break;
        case O_AUTH:
            opt.authorized = optarg;
            break;
        case O_ADVERTISE:
            /* A worker cannot connect to a wildcard or to a bare host:port. */
            if (!strstr(optarg, "://") || strstr(optarg, "://*") || strstr(optarg, "://0.0.0.0")) {
                fprintf(stderr,
                        "nas-master: --advertise-weights needs an endpoint workers can connect "
                        "to, such as tcp://master.example.org:5556; got '%s'\n",
                        optarg);
                return 2;
            }
            opt.weights_advertise = optarg;
            break;
        case O_LOG: {
            enum nas_log_level l;
            if (nas_log_parse_level(optarg, &l) < 0) {
                fprintf(stderr, "nas-master: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            nas_log_set_level(l);
            break;
        }
        case O_GRACE: {
            char *end = NULL;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 0) {
                fprintf(stderr, "nas-master: --resume-grace-ms needs an integer >= 0, got '%s'\n",
                        optarg);
                return 2;
            }
            opt.resume_grace_ms = n;
            break;
        }
        }
    }
    for (int i = optind; i < argc; i++) {
        if (path) {
            fprintf(stderr, "nas-master: one campaign file only, got '%s' and '%s'\n", path,
                    argv[i]);
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "nas-master: a campaign file is required (try --help)\n");
        return 2;
    }
    if (!opt.key_base != !opt.authorized) {
        fprintf(stderr, "nas-master: --key and --authorized go together (try --help)\n");
        return 2;
    }
    if (opt.insecure && opt.key_base) {
        fprintf(stderr, "nas-master: --insecure contradicts --key: with keys every socket is "
                        "already CurveZMQ\n");
        return 2;
    }
    if (opt.insecure)
        nas_warn("master: --insecure: sockets off the loopback run without CurveZMQ; anyone who "
                 "can reach them can take tasks, forge results and read status (trusted lab "
                 "networks only; docs/SECURITY.md)");

    char err[NAS_ERR_LEN] = "";
    nas_config cfg;
    int rc = nas_config_load(path, &cfg, err);
    if (rc < 0) {
        fprintf(stderr, "nas-master: %s\n", err);
        /* A campaign file that cannot be read is as wrong as one that
         * does not parse. */
        return rc == NAS_ENOMEM ? 1 : 2;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "nas-master: cannot start the event loop\n");
        nas_config_fini(&cfg);
        return 1;
    }
    master_ctx m = {0};
    int status = 1;
    rc = nas_campaign_create(&m.campaign, &cfg, &opt, &loop, err);
    if (rc < 0) {
        fprintf(stderr, "nas-master: %s\n", err);
        status = failure_status(rc);
        goto done;
    }
    uv_signal_init(&loop, &m.sigint);
    uv_signal_init(&loop, &m.sigterm);
    uv_signal_init(&loop, &m.sighup);
    m.sigint.data = m.sigterm.data = m.sighup.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sighup, on_sighup, SIGHUP);
    /* The signal watchers must not keep the loop alive on their own: the
     * loop ends when the campaign has closed its handles. */
    uv_unref((uv_handle_t *)&m.sigint);
    uv_unref((uv_handle_t *)&m.sigterm);
    uv_unref((uv_handle_t *)&m.sighup);
    rc = nas_campaign_start(m.campaign, err);
    int start_rc = rc;
    if (rc < 0) {
        fprintf(stderr, "nas-master: %s\n", err);
        nas_campaign_abort(m.campaign);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&m.sigint, NULL);
    uv_close((uv_handle_t *)&m.sigterm, NULL);
    uv_close((uv_handle_t *)&m.sighup, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (rc == NAS_OK) {
        rc = nas_campaign_status(m.campaign, err);
        if (rc < 0) fprintf(stderr, "nas-master: %s\n", err);
    }
    if (m.signals < 2) nas_campaign_summary(m.campaign, stdout);
    status = start_rc < 0 ? failure_status(start_rc) : rc < 0 ? 1 : m.signals >= 2 ? 130 : 0;
done:
    nas_campaign_destroy(&m.campaign);
    uv_loop_close(&loop);
    nas_config_fini(&cfg);
    return status;
}
