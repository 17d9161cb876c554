/*
 * nasctl - looks at a campaign: status (from a running master over the
 * wire, or from its database when the master is down), best architectures,
 * history, the Pareto front, and Graphviz drawings of genomes.
 *
 * Read-only by construction: it talks to the master's status endpoint only
 * (which refuses anything but StatusRequest) and opens databases with
 * nas_store_open_ro().  The one command that writes is `keygen`, and it
 * writes only the new key files it is asked for (never over an existing
 * key without --force).  Exit status: 0 success, 1 failure (the message
 * names the problem), 2 usage.
 *
 * Against a master with CurveZMQ keys, `status` needs --key (an operator
 * keypair whose public half is in the master's authorized directory) and
 * --master-key (the master's public key).  A handshake that fails is seen
 * on a socket monitor and reported at once with its likely cause, rather
 * than after a silent timeout.
 */
#include "common/alloc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/zmon.h"
#include "master/export.h"
#include "master/nasctl_fidelity.h"
#include "master/nasctl_scale.h"
#include "master/pareto.h"
#include "master/serve.h"
#include "master/status_fidelity.h"
#include "master/status.h"
#include "master/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Options of the built-in commands, one bit each: a command names the
 * options it takes, and the parser refuses the others by name. */
enum {
    OPT_MASTER = 1 << 0,
    OPT_DB = 1 << 1,
    OPT_JSON = 1 << 2,
    OPT_CSV = 1 << 3,
    OPT_K = 1 << 4,
    OPT_TIMEOUT = 1 << 5,
    OPT_KEY = 1 << 6,
    OPT_MASTER_KEY = 1 << 7,
    OPT_FORCE = 1 << 8,
};

typedef struct opt_def {
    const char *name;
    int has_arg;
    unsigned bit;
} opt_def;

static const opt_def OPTS[] = {
    {"master", required_argument, OPT_MASTER}, {"db", required_argument, OPT_DB},
    {"json", no_argument, OPT_JSON},           {"csv", no_argument, OPT_CSV},
    {"k", required_argument, OPT_K},           {"timeout-ms", required_argument, OPT_TIMEOUT},
    {"key", required_argument, OPT_KEY},       {"master-key", required_argument, OPT_MASTER_KEY},
    {"force", no_argument, OPT_FORCE},
};

/* Options of every command in one struct: each command reads what it
 * needs, and parse_args() refuses what the command does not take. */
typedef struct args {
    const char *master, *db;
    const char *key, *master_key; /* CurveZMQ: own keypair BASE, master's public key file */
    int json, csv, k, force;
    long timeout_ms;
    const char *arch; /* the one positional argument (dot: the genome; keygen: the name) */
} args;

static int cmd_status(int argc, char **argv);
static int cmd_best(int argc, char **argv);
static int cmd_history(int argc, char **argv);
static int cmd_pareto(int argc, char **argv);
static int cmd_dot(int argc, char **argv);
static int cmd_keygen(int argc, char **argv);
static int cmd_curve(int argc, char **argv);
static int cmd_fidelity(int argc, char **argv);
static int cmd_serve(int argc, char **argv);

/* The commands.  A command is one entry function taking its own argv
 * (argv[0] is the command's name) and returning the exit status (0 ok, 1
 * runtime error, 2 usage); a command kept in a file of its own is added
 * here with one line.  `opts` are the built-in options it takes: the
 * parser refuses the others, naming the command they belong to (0 for a
 * command that parses its own options with nas_cli_next). */
typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    unsigned opts;
    const char *help; /* synopsis after the name, then indented lines */
} command;

static const command COMMANDS[] = {
    {"status", cmd_status, OPT_MASTER | OPT_DB | OPT_JSON | OPT_TIMEOUT | OPT_KEY | OPT_MASTER_KEY,
     "[--master tcp://HOST:PORT] [--db FILE] [--json] [--timeout-ms N]\n"
     "         [--key BASE --master-key FILE]\n"
     "        campaign, evaluations, best, workers; asks the master's status\n"
     "        endpoint (default tcp://127.0.0.1:5557), or reads --db when the\n"
     "        master does not answer (or when only --db is given); --key and\n"
     "        --master-key talk CurveZMQ to a master that has keys\n"},
    {"best", cmd_best, OPT_DB | OPT_K | OPT_JSON,
     "--db FILE [--k N] [--json]\n"
     "        the N best search results (default 5) and the final-stage results\n"},
    {"history", cmd_history, OPT_DB | OPT_CSV | OPT_JSON,
     "--db FILE [--csv | --json]\n"
     "        every search result in the order it was recorded (--csv: RFC 4180)\n"},
    {"curve", cmd_curve, OPT_DB | OPT_JSON,
     "TASK --db FILE [--json]\n"
     "        a task's validation accuracy per epoch\n"},
    {"fidelity", cmd_fidelity, OPT_DB | OPT_JSON,
     "--db FILE [--json]\n"
     "        Spearman and Kendall rank correlation between the campaign's\n"
     "        fidelities (search and final), with a warning when the search ranks poorly\n"},
    {"export", nas_nasctl_export, 0,
     "--db FILE [--task N | --best] --out DIR [options]\n"
     "        the winner's genome, weights (safetensors), a PyTorch model.py and\n"
     "        model.onnx (docs/EXPORT.md; nasctl export --help)\n"},
    {"scale", nas_nasctl_scale, 0,
     "ARCH [--phi LIST] [--search] [options]\n"
     "        EfficientNet compound scaling of an mbconv genome (nasctl scale --help)\n"},
    {"pareto", cmd_pareto, OPT_DB | OPT_JSON,
     "--db FILE [--json]\n"
     "        results no other beats on accuracy and parameter count at once\n"},
    {"dot", cmd_dot, 0,
     "ARCH\n"
     "        Graphviz drawing of a genome text or a preset name (pipe to dot -Tpng)\n"},
    {"serve", cmd_serve, 0,
     "--db FILE [--listen HOST:PORT] [--token T] [--master EP]\n"
     "        the dashboard, /metrics and a JSON API over HTTP (read-only)\n"},
    {"top", cmd_serve, 0, "--db FILE [--master EP]\n        a live terminal view\n"},
    {"watch", cmd_serve, 0,
     "--db FILE [--json]\n        follow results and events as they commit\n"},
    {"keygen", cmd_keygen, OPT_FORCE,
     "NAME [--force]\n"
     "        a CurveZMQ keypair: NAME.key (public, 0644) and NAME.key_secret\n"
     "        (secret, 0600); an existing key is kept unless --force is given\n"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: nasctl COMMAND [options]\n"
               "\n"
               "Looks at a nasd campaign; never changes it.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < NAS_ARRAY_LEN(COMMANDS); i++)
        fprintf(f, "  %s %s", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n"
               "Options may be written --opt VALUE or --opt=VALUE. Every command takes\n"
               "--help; `nasctl --version` prints the version.\n"
               "Exit status: 0 success, 1 failure (the message names it), 2 usage error.\n");
}

/* "nasctl best: --key does not apply to best (it belongs to status)";
 * returns 0 (parse_args: exit, with the usage status). */
static int refuse_option(const char *cmd, const opt_def *o) {
    const char *owner = NULL;
    int owners = 0;
    for (size_t i = 0; i < NAS_ARRAY_LEN(COMMANDS); i++)
        if (COMMANDS[i].opts & o->bit) owner = COMMANDS[i].name, owners++;
    fprintf(stderr, "nasctl %s: --%s does not apply to %s", cmd, o->name, cmd);
    if (owners == 1) fprintf(stderr, " (it belongs to %s)", owner);
    fprintf(stderr, "\n");
    return 0;
}

/* Parse a built-in command's options (argv[0] is the command) with the
 * shared conventions of common/cli.h, so --db=FILE and --db FILE both
 * work and options may follow the positional argument; the options the
 * command takes are its COMMANDS entry's.  Returns 1 to go on, or 0 to
 * exit with *status (0 after --help, 2 after a message naming the
 * problem). */
static int parse_args(int argc, char **argv, int positional, args *a, int *status) {
    const char *cmd = argv[0];
    unsigned accepts = 0;
    for (size_t i = 0; i < NAS_ARRAY_LEN(COMMANDS); i++)
        if (strcmp(COMMANDS[i].name, cmd) == 0) accepts = COMMANDS[i].opts;
    memset(a, 0, sizeof *a);
    a->k = 5;
    a->timeout_ms = 2000;
    struct option lo[NAS_ARRAY_LEN(OPTS) + 2];
    for (size_t i = 0; i < NAS_ARRAY_LEN(OPTS); i++)
        lo[i] = (struct option){OPTS[i].name, OPTS[i].has_arg, NULL, 256 + (int)i};
    lo[NAS_ARRAY_LEN(OPTS)] = (struct option){"help", no_argument, NULL, NAS_CLI_HELP};
    lo[NAS_ARRAY_LEN(OPTS) + 1] = (struct option){NULL, 0, NULL, 0};
    char prog[64];
    snprintf(prog, sizeof prog, "nasctl %s", cmd);
    optind = 0; /* glibc: a fresh scan of this argument vector */
    int c;
    while ((c = nas_cli_next(argc, argv, lo, prog, usage, status)) != -1) {
        if (c == NAS_CLI_EXIT) return 0;
        *status = NAS_EXIT_USAGE; /* for the refusals below */
        const opt_def *o = &OPTS[c - 256];
        if (!(accepts & o->bit)) return refuse_option(cmd, o);
        switch (o->bit) {
        case OPT_MASTER:
            a->master = optarg;
            break;
        case OPT_DB:
            a->db = optarg;
            break;
        case OPT_KEY:
            a->key = optarg;
            break;
        case OPT_MASTER_KEY:
            a->master_key = optarg;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_CSV:
            a->csv = 1;
            break;
        case OPT_FORCE:
            a->force = 1;
            break;
        default: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || end == optarg || n < 1 || n > 100000000) {
                fprintf(stderr, "nasctl %s: --%s needs a positive integer, got '%s'\n", cmd,
                        o->name, optarg);
                return 0;
            }
            if (o->bit == OPT_K)
                a->k = (int)n;
            else
                a->timeout_ms = n;
        }
        }
    }
    *status = NAS_EXIT_USAGE;
    if (optind < argc && positional) a->arch = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "nasctl %s: unexpected argument '%s' (try --help)\n", cmd, argv[optind]);
        return 0;
    }
    if (a->csv && a->json) {
        fprintf(stderr, "nasctl %s: --csv and --json exclude each other; give one\n", cmd);
        return 0;
    }
    *status = NAS_EXIT_OK;
    return 1;
}

/* Open a database read-only for a command; prints the reason and
 * returns NULL when it cannot (the caller exits 1). */
static nas_store *open_db(const char *cmd, const char *path) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (nas_store_open_ro(&st, path, err) < 0) {
        fprintf(stderr, "nasctl %s: %s\n", cmd, err);
        return NULL;
    }
    return st;
}

/* --db is required by the commands that only read a database: a usage
 * error (2), told before anything is opened. */
static int need_db(const char *cmd, const args *a) {
    if (a->db) return 0;
    fprintf(stderr, "nasctl %s: --db FILE is required (try --help)\n", cmd);
    return 2;
}

// ---- status -------------------------------------------------------------------------------------

/* The CurveZMQ side of a status request: the operator's keypair and the
 * master's public key, both or neither. */
typedef struct curve_opts {
    const char *key_base, *master_key_path;
    nas_keypair kp;
    char master_pub[NAS_KEY_Z85_LEN + 1];
} curve_opts;

/* Ask a master for its status document; NULL (with err) if it does not
 * answer in time or the handshake fails.  The timeout message names the
 * likely causes, one of which is a master that wants keys we lack: such a
 * master drops a plaintext peer without a word that a DEALER would see. */
static char *ask_master(const char *ep, long timeout_ms, const curve_opts *co, char *err) {
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    nas_zmon *mon = NULL;
    char *json = NULL;
    char key_file[1100];
    if (!s) {
        nas_set_err(err, NAS_EIO, "zmq: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (nas_wire_socket_setup(s, err) < 0) goto done;
    if (co->key_base && nas_keys_curve_client(s, &co->kp, co->master_pub, err) < 0) goto done;
    /* The monitor sees handshake failures, which the DEALER itself never
     * reports (libzmq just retries); zmon words them as it does for the
     * workers.  Without it we still answer, only later (the timeout). */
    snprintf(key_file, sizeof key_file, "%s.key", co->key_base ? co->key_base : "");
    nas_zmon_config mc = {.what = "master",
                          .self = "nasctl",
                          .curve = co->key_base != NULL,
                          .public_z85 = co->key_base ? co->kp.public_z85 : NULL,
                          .key_file = co->key_base ? key_file : NULL,
                          .server_key_file = co->master_key_path,
                          .key_option = "--master-key"};
    char merr[NAS_ERR_LEN];
    if (nas_zmon_create(&mon, ctx, &mc, merr) < 0 || nas_zmon_attach(mon, s, ep, merr) < 0)
        nas_zmon_destroy(&mon);
    if (zmq_connect(s, ep) != 0) {
        nas_set_err(err, NAS_EINVAL, "cannot connect to %s: %s", ep, zmq_strerror(zmq_errno()));
        goto done;
    }
    /* A DEALER queues the request until the connection is up, so one send
     * and a bounded poll cover both "slow to connect" and "nobody there". */
    nas_wire_msg m;
    nas_wire_msg_init(&m, NAS_MSG_STATUS_REQUEST);
    if (nas_wire_send(s, NULL, 0, &m, NULL, 0, 0, err) < 0) goto done;
    int64_t end = nas_now_ms() + timeout_ms;
    int ready = 0;
    while (!ready) {
        int64_t left = end - nas_now_ms();
        if (left <= 0) break;
        zmq_pollitem_t it[2] = {{s, 0, ZMQ_POLLIN, 0},
                                {mon ? nas_zmon_socket(mon) : NULL, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, mon ? 2 : 1, (long)left) < 0) break;
        if (it[0].revents & ZMQ_POLLIN) ready = 1;
        /* A status request is one shot: the first failed handshake is the
         * answer (a worker, which lives on, waits for a second). */
        enum nas_zmon_state hs = NAS_ZMON_NONE;
        if (!ready && mon && (it[1].revents & ZMQ_POLLIN)) hs = nas_zmon_poll(mon, nas_now_ms());
        if (hs != NAS_ZMON_NONE && hs != NAS_ZMON_OK) {
            nas_set_err(err, NAS_EAUTH, "%s", nas_zmon_message(mon));
            goto done;
        }
    }
    if (!ready) {
        nas_set_err(err, NAS_ETIMEDOUT,
                    co->key_base ? "no answer from %s within %ld ms (is the master running, and "
                                   "does it listen there?)"
                                 : "no answer from %s within %ld ms (is the master running? if it "
                                   "has CurveZMQ keys, give --key BASE and --master-key FILE)",
                    ep, timeout_ms);
        goto done;
    }
    nas_wire_packet pkt;
    int rc = nas_wire_recv(s, 0, 1, &pkt, err);
    if (rc == NAS_OK && pkt.msg.type == NAS_MSG_STATUS_REPLY && pkt.msg.u.status_json)
        json = nas_strdup(pkt.msg.u.status_json);
    else if (rc == NAS_OK && pkt.msg.type == NAS_MSG_ERROR)
        nas_set_err(err, pkt.msg.u.error.code, "%s refused: %s", ep, pkt.msg.u.error.message);
    else if (rc == NAS_OK)
        nas_set_err(err, NAS_EPROTO, "%s answered %s", ep, nas_wire_type_name(pkt.msg.type));
    nas_wire_packet_fini(&pkt);
done:
    /* Closing with pending output must not block: linger 0. */
    if (s) {
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        nas_zmon_destroy(&mon);
        zmq_close(s);
    }
    if (ctx) zmq_ctx_term(ctx);
    return json;
}

/* status: the live master first (it knows workers' epochs and current
 * tasks), the database when the master does not answer and --db was
 * given; the same document and printer either way. */
static int cmd_status(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 0, a, &status)) return status;
    char err[NAS_ERR_LEN] = "";
    char *json = NULL;
    curve_opts co;
    memset(&co, 0, sizeof co);
    if (!a->key != !a->master_key) {
        fprintf(stderr, "nasctl status: --key and --master-key go together\n");
        return 2;
    }
    if (a->key) {
        co.key_base = a->key;
        co.master_key_path = a->master_key;
        if (nas_keys_load_pair(a->key, &co.kp, err) < 0 ||
            nas_keys_load_public(a->master_key, co.master_pub, err) < 0) {
            explicit_bzero(&co.kp, sizeof co.kp);
            fprintf(stderr, "nasctl status: %s\n", err);
            return 1;
        }
    }
    if (a->master || !a->db) {
        const char *ep = a->master ? a->master : "tcp://127.0.0.1:5557";
        json = ask_master(ep, a->timeout_ms, &co, err);
        explicit_bzero(&co.kp, sizeof co.kp);
        if (!json && !a->db) {
            fprintf(stderr, "nasctl status: %s (give --db FILE to read the database instead)\n",
                    err);
            return 1;
        }
        if (!json) fprintf(stderr, "nasctl status: %s; reading %s\n", err, a->db);
    }
    if (!json) {
        nas_store *st = open_db("status", a->db);
        if (!st) return 1;
        json = nas_status_from_store(st, nas_wall_ms(), err);
        nas_store_close(&st);
        if (!json) {
            fprintf(stderr, "nasctl status: %s\n", err);
            return 1;
        }
    }
    int rc = 0;
    if (a->json)
        printf("%s\n", json);
    else if (nas_status_print(json, stdout, err) < 0) {
        fprintf(stderr, "nasctl status: %s\n", err);
        rc = 1;
    }
    nas_free(json);
    return rc;
}

// ---- results ------------------------------------------------------------------------------------

/* The tasks an early-stopping rule ended (nas_status_stopped_tasks). */
typedef struct stopped_set {
    const int64_t *ids;
    int n;
} stopped_set;

/* Results (all, or those named by `pick`) as one JSON array line; with a
 * stopped set each result says whether it ran to the end ("done") or was
 * stopped early ("stopped"), as the CSV's status column does. */
static void print_json_array(const nas_store_record *r, int n, const int *pick, int np,
                             const stopped_set *stopped) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < (pick ? np : n); i++) {
        const nas_store_record *x = &r[pick ? pick[i] : i];
        const char *st = NULL;
        if (stopped)
            st = nas_status_is_stopped(stopped->ids, stopped->n, x->task_id) ? "stopped" : "done";
        nas_status_json_record_status(&b, x, st);
    }
    nas_json_buf_arr_end(&b);
    char *s = nas_json_buf_take(&b, NULL);
    printf("%s\n", s ? s : "[]");
    nas_free(s);
}

/* A result as a table row; TEST is "-" for search-stage results. */
static void print_row(const nas_store_record *r) {
    char test[16] = "-";
    if (!isnan(r->test_accuracy)) snprintf(test, sizeof test, "%.4f", r->test_accuracy);
    printf("%5" PRId64 " %6" PRId64 "  %.4f  %-7s %10" PRId64 " %12" PRId64 "  %s\n", r->seq,
           r->task_id, r->accuracy, test, r->params, r->macs, r->arch_text);
}

static void print_header(void) {
    printf("%5s %6s  %-6s  %-7s %10s %12s  %s\n", "SEQ", "TASK", "VAL", "TEST", "PARAMS", "MACS",
           "ARCHITECTURE");
}

/* best: the k best search results, then every final-stage result (their
 * test accuracy is the campaign's answer). */
static int cmd_best(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 0, a, &status)) return status;
    if (need_db("best", a)) return 2;
    nas_store *st = open_db("best", a->db);
    if (!st) return 1;
    char err[NAS_ERR_LEN];
    nas_store_record *s = NULL, *f = NULL;
    int ns = nas_store_best(st, NAS_STORE_STAGE_SEARCH, a->k, &s, err);
    int nf = ns < 0 ? 0 : nas_store_history(st, NAS_STORE_STAGE_FINAL, &f, err);
    int rc = 0;
    if (ns < 0 || nf < 0) {
        fprintf(stderr, "nasctl best: %s\n", err);
        rc = 1;
    } else if (a->json) {
        printf("{\"search\":");
        fflush(stdout);
        print_json_array(s, ns, NULL, 0, NULL);
        printf(",\"final\":");
        print_json_array(f, nf, NULL, 0, NULL);
        printf("}\n");
    } else {
        printf("search stage, best %d by validation accuracy:\n", ns);
        print_header();
        for (int i = 0; i < ns; i++)
            print_row(&s[i]);
        if (nf > 0) {
            printf("final stage (retrained at the final fidelity; TEST is the test set):\n");
            print_header();
            for (int i = 0; i < nf; i++)
                print_row(&f[i]);
        }
    }
    nas_store_records_free(s, ns > 0 ? ns : 0);
    nas_store_records_free(f, nf > 0 ? nf : 0);
    nas_store_close(&st);
    return rc;
}

/* A text field as RFC 4180 writes it: quoted, with every quote doubled,
 * so commas, quotes and line breaks in a worker's name stay in one field. */
static void csv_text(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

/* history: search results in the order they were recorded (the CSV is
 * RFC 4180: CRLF line ends, text fields quoted). */
static int cmd_history(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 0, a, &status)) return status;
    if (need_db("history", a)) return 2;
    nas_store *st = open_db("history", a->db);
    if (!st) return 1;
    char err[NAS_ERR_LEN];
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    if (n < 0) {
        fprintf(stderr, "nasctl history: %s\n", err);
        nas_store_close(&st);
        return 1;
    }
    /* A run an early-stopping rule ended is a result, not a failure; its
     * status says so (the last column, so older readers keep theirs). */
    int64_t *stopped = NULL;
    int n_stopped = nas_status_stopped_tasks(st, &stopped, err);
    if (n_stopped < 0) {
        fprintf(stderr, "nasctl history: %s\n", err);
        nas_store_records_free(r, n);
        nas_store_close(&st);
        return 1;
    }
    if (a->json) {
        print_json_array(r, n, NULL, 0, &(stopped_set){stopped, n_stopped});
    } else if (a->csv) {
        printf("seq,task,attempt,arch,val_acc,params,macs,seconds,worker,finished_ms,status\r\n");
        for (int i = 0; i < n; i++) {
            printf("%" PRId64 ",%" PRId64 ",%d,", r[i].seq, r[i].task_id, r[i].attempt);
            csv_text(r[i].arch_text);
            printf(",%.6f,%" PRId64 ",%" PRId64 ",%.3f,", r[i].accuracy, r[i].params, r[i].macs,
                   r[i].seconds);
            csv_text(r[i].worker);
            printf(",%" PRId64 ",%s\r\n", r[i].finished_ms,
                   nas_status_is_stopped(stopped, n_stopped, r[i].task_id) ? "stopped" : "done");
        }
    } else {
        print_header();
        for (int i = 0; i < n; i++) {
            print_row(&r[i]);
            char lineage[256];
            nas_status_lineage(&r[i], lineage, sizeof lineage);
            if (lineage[0]) /* evolution's child: its parent and what changed */
                printf("%5s %6s  from %016" PRIx64 ": %s\n", "", "", r[i].parent_hash, lineage);
            if (nas_status_is_stopped(stopped, n_stopped, r[i].task_id))
                printf("%5s %6s  stopped early after %d epoch(s): not a failure, not trained "
                       "to the end\n",
                       "", "", r[i].n_curve);
        }
        if (n_stopped > 0)
            printf("%d of %d result(s) were stopped early (nasctl events: task-stopped)\n",
                   n_stopped, n);
    }
    nas_free(stopped);
    nas_store_records_free(r, n);
    nas_store_close(&st);
    return 0;
}

/* pareto: the front of (accuracy up, parameters down) through
 * master/pareto.h, the same definition the strategies rank by. */
static int cmd_pareto(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 0, a, &status)) return status;
    if (need_db("pareto", a)) return 2;
    nas_store *st = open_db("pareto", a->db);
    if (!st) return 1;
    char err[NAS_ERR_LEN];
    nas_store_record *r = NULL;
    int n = nas_store_history(st, NAS_STORE_STAGE_SEARCH, &r, err);
    nas_observation *obs = n > 0 ? nas_calloc((size_t)n, sizeof *obs) : NULL;
    int *front = n > 0 ? nas_calloc((size_t)n, sizeof *front) : NULL;
    int rc = 0, nf = 0;
    if (n < 0 || (n > 0 && (!obs || !front))) {
        fprintf(stderr, "nasctl pareto: %s\n", n < 0 ? err : "out of memory");
        rc = 1;
        goto done;
    }
    /* The front works on observations: rebuild them from the records. */
    for (int i = 0; i < n; i++) {
        /* Parse for the genome field the front ignores; the cost is what counts. */
        nas_genome_parse(r[i].arch_text, strlen(r[i].arch_text), &obs[i].genome, err);
        obs[i].ok = 1;
        obs[i].accuracy = r[i].accuracy;
        obs[i].params = r[i].params;
        obs[i].macs = r[i].macs;
    }
    nf = n > 0 ? nas_pareto_front(obs, n, NAS_PARETO_PARAMS, front, err) : 0;
    if (nf < 0) {
        fprintf(stderr, "nasctl pareto: %s\n", err);
        rc = 1;
        goto done;
    }
    if (a->json) {
        print_json_array(r, n, front, nf, NULL);
    } else {
        printf("Pareto front of validation accuracy and parameters (%d of %d results):\n", nf, n);
        print_header();
        for (int i = 0; i < nf; i++)
            print_row(&r[front[i]]);
    }
done:
    nas_free(obs);
    nas_free(front);
    nas_store_records_free(r, n > 0 ? n : 0);
    nas_store_close(&st);
    return rc;
}

/* dot: a genome text or a preset name, drawn by the genome module. */
// ---- serve, top, watch (serve.c), which parse their own options ---------------------------------

static int cmd_serve(int argc, char **argv) {
    return nas_serve_command(argv[0], argc, argv);
}

// ---- curve, fidelity (nasctl_fidelity.c) --------------------------------------------------------

static int cmd_curve(int argc, char **argv) {
    args a;
    int status;
    if (!parse_args(argc, argv, 1, &a, &status)) return status;
    if (need_db("curve", &a)) return 2;
    return nas_nasctl_fidelity("curve", a.db, a.json, a.arch);
}

static int cmd_fidelity(int argc, char **argv) {
    args a;
    int status;
    if (!parse_args(argc, argv, 0, &a, &status)) return status;
    if (need_db("fidelity", &a)) return 2;
    return nas_nasctl_fidelity("fidelity", a.db, a.json, NULL);
}

static int cmd_dot(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 1, a, &status)) return status;
    if (!a->arch) {
        fprintf(stderr, "nasctl dot: a genome text or preset name is required\n");
        return 2;
    }
    nas_genome g;
    char err[NAS_ERR_LEN], perr[NAS_ERR_LEN];
    if (nas_genome_parse(a->arch, strlen(a->arch), &g, err) < 0 &&
        nas_genome_preset(a->arch, &g, perr) < 0) {
        fprintf(stderr, "nasctl dot: '%s' is neither a genome (%s) nor a preset (%s)\n", a->arch,
                err, perr);
        return 1;
    }
    size_t cap = 1 << 16;
    char *buf = nas_malloc(cap);
    if (!buf || nas_genome_to_dot(&g, buf, cap) < 0) {
        fprintf(stderr, "nasctl dot: %s\n", buf ? "drawing too large" : "out of memory");
        nas_free(buf);
        return 1;
    }
    fputs(buf, stdout);
    nas_free(buf);
    return 0;
}

// ---- keys ---------------------------------------------------------------------------------------

/* keygen: NAME.key and NAME.key_secret through the keys module, which
 * creates the secret 0600 from its first byte and never overwrites a key
 * unless asked (docs/SECURITY.md s2). */
static int cmd_keygen(int argc, char **argv) {
    args aa, *a = &aa;
    int status;
    if (!parse_args(argc, argv, 1, a, &status)) return status;
    if (!a->arch) {
        fprintf(stderr, "nasctl keygen: a NAME is required (writes NAME.key and "
                        "NAME.key_secret)\n");
        return 2;
    }
    char err[NAS_ERR_LEN];
    nas_keypair kp;
    int rc = nas_keys_generate_files(a->arch, a->force, &kp, err);
    if (rc < 0) {
        fprintf(stderr, "nasctl keygen: %s%s\n", err,
                rc == NAS_EEXIST ? "; pass --force to replace it" : "");
        explicit_bzero(&kp, sizeof kp);
        return 1;
    }
    char fp[NAS_KEY_FP_LEN];
    nas_keys_fingerprint(kp.public_z85, fp);
    explicit_bzero(&kp, sizeof kp);
    printf("wrote %s.key (public, fingerprint %s) and %s.key_secret (secret, mode 0600)\n", a->arch,
           fp, a->arch);
    return 0;
}

/* Dispatch on the command word through COMMANDS.  Logging is quiet
 * (warnings only) because nasctl's output is for people and scripts, not
 * a log. */
int main(int argc, char **argv) {
    nas_log_set_prog("nasctl");
    nas_log_set_level(NAS_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("nasctl (nasd) %s\n", NAS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NAS_ARRAY_LEN(COMMANDS); i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nasctl: unknown command '%s' (try --help)\n", cmd);
    return 2;
}
