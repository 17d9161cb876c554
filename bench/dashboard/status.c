/*
 * status.c - what the store's part of one live status document costs the
 * master at N results (issue 18), built the way the master builds it now
 * (master/status_live.h: figures kept as results come, counts from the
 * oldest live task on) against the way it did before (the task counts,
 * the best result and the fidelity figures read from the store for every
 * document), alternated on the same store, R rounds each; and what the
 * master pays once at start to build its figures from the history.
 *
 *   bench-dashboard-status --db FILE [--rounds R] [--live N]
 *
 * --live N: the tasks a running master would still have in flight (its
 * oldest live task is N below the last one; default 200).  Lines follow
 * bench/run.sh's convention (case= ours= peer= unit= ratio=).
 */
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "master/status.h"
#include "master/status_fidelity.h"
#include "master/status_live.h"
#include "master/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double now_ms(void) {
    return (double)nas_now_ns() / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Before: every document read the counts, the best and the fidelity
 * figures (every result, every event) from the store. */
static size_t build_before(nas_store *st) {
    char err[NAS_ERR_LEN];
    nas_store_counts s, fin;
    nas_store_task_counts(st, NAS_STORE_STAGE_SEARCH, &s, err);
    nas_store_task_counts(st, NAS_STORE_STAGE_FINAL, &fin, err);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "done");
    nas_json_buf_i64(&b, s.done + fin.done);
    nas_store_record *r = NULL;
    int n = nas_store_best(st, NAS_STORE_STAGE_SEARCH, 1, &r, err);
    nas_json_buf_key(&b, "best");
    if (n > 0)
        nas_status_json_record(&b, &r[0]);
    else
        nas_json_buf_null(&b);
    nas_store_records_free(r, n > 0 ? n : 0);
    nas_status_json_fidelity(&b, st, 0, 0, 1, 2);
    nas_json_buf_obj_end(&b);
    size_t len = 0;
    nas_free(nas_json_buf_take(&b, &len));
    return len;
}

/* Now: the same keys from the live figures. */
static size_t build_now(nas_status_live *l, nas_store *st, int64_t oldest) {
    char err[NAS_ERR_LEN];
    nas_store_counts s, fin;
    nas_status_live_counts(l, st, oldest, &s, &fin, err);
    nas_json_buf b;
    nas_json_buf_init(&b);
    nas_json_buf_obj_begin(&b);
    nas_json_buf_key(&b, "done");
    nas_json_buf_i64(&b, s.done + fin.done);
    nas_status_live_json_best(l, st, &b);
    nas_status_live_json_fidelity(l, &b, 0, 0, 1, 2);
    nas_json_buf_obj_end(&b);
    size_t len = 0;
    nas_free(nas_json_buf_take(&b, &len));
    return len;
}

int main(int argc, char **argv) {
    const char *db = NULL;
    int rounds = 7, live = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: bench-dashboard-status --db FILE [--rounds R] [--live N]\n");
            return 0;
        }
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--db")) db = argv[++i];
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--live")) live = atoi(argv[++i]);
    }
    if (!db || rounds < 1 || rounds > 100 || live < 0) {
        fprintf(stderr, "usage: bench-dashboard-status --db FILE [--rounds R] [--live N]\n");
        return 2;
    }
    char err[NAS_ERR_LEN];
    nas_store *st = NULL;
    if (nas_store_open_ro(&st, db, err) < 0) {
        fprintf(stderr, "status: %s\n", err);
        return 1;
    }
    nas_store_counts all;
    if (nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &all, err) < 0) {
        fprintf(stderr, "status: %s\n", err);
        return 1;
    }
    int64_t tasks = all.queued + all.leased + all.done + all.failed;
    /* Ids run from 1 in the bench's stores. */
    int64_t oldest = tasks - live > 1 ? tasks - live : 1;
    double open_ms[100], before[100], now[100];
    size_t len_before = 0, len_now = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ms();
        nas_status_live *l = NULL;
        if (nas_status_live_open(&l, st, err) < 0) {
            fprintf(stderr, "status: %s\n", err);
            return 1;
        }
        double t1 = now_ms();
        len_before = build_before(st);
        double t2 = now_ms();
        /* The first document after the start: the best read by its id. */
        build_now(l, st, oldest);
        double t3 = now_ms();
        len_now = build_now(l, st, oldest);
        double t4 = now_ms();
        open_ms[r] = t1 - t0;
        before[r] = t2 - t1;
        now[r] = t4 - t3;
        fprintf(stderr, "# round %d: open %.1f ms, before %.2f ms, now %.3f ms (first %.3f)\n", r,
                open_ms[r], before[r], now[r], t3 - t2);
        nas_status_live_free(&l);
    }
    qsort(open_ms, (size_t)rounds, sizeof *open_ms, cmp_double);
    qsort(before, (size_t)rounds, sizeof *before, cmp_double);
    qsort(now, (size_t)rounds, sizeof *now, cmp_double);
    int m = rounds / 2;
    fprintf(stderr, "# %lld tasks, documents of %zu / %zu bytes (before / now)\n",
            (long long)tasks, len_before, len_now);
    printf("case=status_build_%lld ours=%.3f peer=%.2f unit=ms ratio=%.5f\n", (long long)tasks,
           now[m], before[m], now[m] / before[m]);
    printf("case=status_live_open_%lld ours=%.1f peer= unit=ms\n", (long long)tasks, open_ms[m]);
    nas_store_close(&st);
    return 0;
}
