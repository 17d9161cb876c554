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
#include "common/clock.h"
#include "common/err.h"
#include "common/genome.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/zmon.h"
#include "master/pareto.h"
#include "master/serve.h"
#include "master/status.h"
#include "master/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void usage(FILE *f) {
    fprintf(f, "usage: nasctl COMMAND [options]\n"
               "\n"
               "Looks at a nasd campaign; never changes it.\n"
               "\n"
               "commands:\n"
               "  status [--master tcp://HOST:PORT] [--db FILE] [--json] [--timeout-ms N]\n"
               "         [--key BASE --master-key FILE]\n"
               "        campaign, evaluations, best, workers; asks the master's status\n"
               "        endpoint (default tcp://127.0.0.1:5557), or reads --db when the\n"
               "        master does not answer (or when only --db is given); --key and\n"
               "        --master-key talk CurveZMQ to a master that has keys\n"
               "  best --db FILE [--k N] [--json]\n"
               "        the N best search results (default 5) and the final-stage results\n"
               "  history --db FILE [--csv|--json]\n"
               "        every search result in the order it was recorded\n"
               "  pareto --db FILE [--json]\n"
               "        results no other beats on accuracy and parameter count at once\n"
               "  dot ARCH\n"
               "        Graphviz drawing of a genome text or a preset name (pipe to dot -Tpng)\n"
               "  serve --db FILE [--listen HOST:PORT] [--token T] [--master EP]\n"
               "        the dashboard, /metrics and a JSON API over HTTP (read-only)\n"
               "  top --db FILE [--master EP]   a live terminal view\n"
               "  watch --db FILE [--json]      follow results and events as they commit\n"
               "  keygen NAME [--force]\n"
               "        a CurveZMQ keypair: NAME.key (public, 0644) and NAME.key_secret\n"
               "        (secret, 0600); an existing key is kept unless --force is given\n"
               "\n"
               "Every command takes --help.\n");
}

/* Options of every command in one struct: each command reads what it
 * needs, and parse_args() refuses what no command takes, naming it. */
typedef struct args {
    const char *master, *db;
    const char *key, *master_key; /* CurveZMQ: own keypair BASE, master's public key file */
    int json, csv, k, force;
    long timeout_ms;
    const char *arch; /* the one positional argument (dot: the genome; keygen: the name) */
} args;

/* Parse the options shared by every command; 0, or 2 after a message. */
static int parse_args(const char *cmd, int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->k = 5;
    a->timeout_ms = 2000;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--json") == 0)
            a->json = 1;
        else if (strcmp(o, "--csv") == 0)
            a->csv = 1;
        else if (strcmp(o, "--force") == 0)
            a->force = 1;
        else if ((strcmp(o, "--master") == 0 || strcmp(o, "--db") == 0 || strcmp(o, "--k") == 0 ||
                  strcmp(o, "--timeout-ms") == 0 || strcmp(o, "--key") == 0 ||
                  strcmp(o, "--master-key") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "nasctl %s: %s needs a value\n", cmd, o);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(o, "--master") == 0)
                a->master = v;
            else if (strcmp(o, "--db") == 0)
                a->db = v;
            else if (strcmp(o, "--key") == 0)
                a->key = v;
            else if (strcmp(o, "--master-key") == 0)
                a->master_key = v;
            else {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || end == v || n < 1 || n > 100000000) {
                    fprintf(stderr, "nasctl %s: %s needs a positive integer, got '%s'\n", cmd, o,
                            v);
                    return 2;
                }
                if (strcmp(o, "--k") == 0)
                    a->k = (int)n;
                else
                    a->timeout_ms = n;
            }
        } else if (o[0] != '-' && !a->arch) {
            a->arch = o;
        } else {
            fprintf(stderr, "nasctl %s: unknown option or extra argument '%s' (try --help)\n", cmd,
                    o);
            return 2;
        }
    }
    return 0;
}

/* Open a database read-only for a command; prints the reason and
 * returns NULL when it cannot (the caller exits 1). */
static nas_store *open_db(const char *cmd, const char *path) {
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (!path) {
        fprintf(stderr, "nasctl %s: --db FILE is required\n", cmd);
        return NULL;
    }
    if (nas_store_open_ro(&st, path, err) < 0) {
        fprintf(stderr, "nasctl %s: %s\n", cmd, err);
        return NULL;
    }
    return st;
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
static int cmd_status(const args *a) {
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

/* Results (all, or those named by `pick`) as one JSON array line. */
static void print_json_array(const nas_store_record *r, int n, const int *pick, int np) {
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_arr_begin(&b);
    for (int i = 0; i < (pick ? np : n); i++)
        nas_status_json_record(&b, &r[pick ? pick[i] : i]);
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
static int cmd_best(const args *a) {
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
        print_json_array(s, ns, NULL, 0);
        printf(",\"final\":");
        print_json_array(f, nf, NULL, 0);
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

/* history: search results in the order they were recorded. */
static int cmd_history(const args *a) {
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
    if (a->json) {
        print_json_array(r, n, NULL, 0);
    } else if (a->csv) {
        printf("seq,task,attempt,arch,val_acc,params,macs,seconds,worker,finished_ms\n");
        for (int i = 0; i < n; i++)
            printf("%" PRId64 ",%" PRId64 ",%d,\"%s\",%.6f,%" PRId64 ",%" PRId64
                   ",%.3f,\"%s\",%" PRId64 "\n",
                   r[i].seq, r[i].task_id, r[i].attempt, r[i].arch_text, r[i].accuracy, r[i].params,
                   r[i].macs, r[i].seconds, r[i].worker, r[i].finished_ms);
    } else {
        print_header();
        for (int i = 0; i < n; i++)
            print_row(&r[i]);
    }
    nas_store_records_free(r, n);
    nas_store_close(&st);
    return 0;
}

/* pareto: the front of (accuracy up, parameters down) through
 * master/pareto.h, the same definition the strategies rank by. */
static int cmd_pareto(const args *a) {
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
        print_json_array(r, n, front, nf);
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
static int cmd_dot(const args *a) {
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
static int cmd_keygen(const args *a) {
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

/* Dispatch on the command word.  Logging is quiet (warnings only) because
 * nasctl's output is for people and scripts, not a log.  --help anywhere
 * wins, so `nasctl best --help` never touches a database. */
int main(int argc, char **argv) {
    nas_log_set_prog("nasctl");
    nas_log_set_level(NAS_LOG_WARN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (nas_serve_is_command(cmd)) return nas_serve_command(cmd, argc - 1, argv + 1);
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    static const char *const cmds[] = {"status", "best", "history", "pareto", "dot", "keygen"};
    int known = 0;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        known |= strcmp(cmd, cmds[i]) == 0;
    if (!known) {
        fprintf(stderr, "nasctl: unknown command '%s' (try --help)\n", cmd);
        return 2;
    }
    args a;
    int rc = parse_args(cmd, argc - 2, argv + 2, &a);
    if (rc) return rc;
    /* Options of one command given to another are mistakes worth naming:
     * a --key ignored by `best` would look like it was used. */
    if ((a.key || a.master_key) && strcmp(cmd, "status") != 0) {
        fprintf(stderr, "nasctl %s: --key and --master-key belong to status\n", cmd);
        return 2;
    }
    if (a.force && strcmp(cmd, "keygen") != 0) {
        fprintf(stderr, "nasctl %s: --force belongs to keygen\n", cmd);
        return 2;
    }
    if (a.arch && strcmp(cmd, "dot") != 0 && strcmp(cmd, "keygen") != 0) {
        fprintf(stderr, "nasctl %s: unexpected argument '%s'\n", cmd, a.arch);
        return 2;
    }
    if (strcmp(cmd, "status") == 0) return cmd_status(&a);
    if (strcmp(cmd, "best") == 0) return cmd_best(&a);
    if (strcmp(cmd, "history") == 0) return cmd_history(&a);
    if (strcmp(cmd, "pareto") == 0) return cmd_pareto(&a);
    if (strcmp(cmd, "keygen") == 0) return cmd_keygen(&a);
    return cmd_dot(&a);
}
