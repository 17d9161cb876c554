/*
 * make_store_v2.c - how tests/data/store_v2_toy.sql was made: the toy
 * campaign of tests/test_store_faults.c (same seed, tasks and results), run
 * by a build of schema version 2 (main at 2ceebde) and stopped after 17
 * store calls, with five results recorded and one task leased.  Not built
 * by CMake: the file is made once, by the old code, and kept, so that the
 * v2 -> v3 migration is tested on a file the old code really wrote.
 *
 *     git archive 2ceebde | tar -x -C /tmp/v2 && cd /tmp/v2 &&
 *     cmake -B b -DCMAKE_BUILD_TYPE=Release -DNAS_BUILD_TESTS=OFF &&
 *     cmake --build b --target nasmaster &&
 *     cc -std=c11 -D_GNU_SOURCE -I. -Ib tests/data/make_store_v2.c b/lib/libnasmaster.a \
 *        b/lib/libnascommon.a -lsqlite3 -lcheck -lm -o make_store_v2 &&
 *     ./make_store_v2 store_v2_toy.db &&
 *     sqlite3 store_v2_toy.db .dump > store_v2_toy.sql   # then the header and
 *                                   # PRAGMA user_version=2 (.dump leaves it out)
 */
#include "tests/store_fixtures.h"

#include <stdlib.h>

typedef struct {
    uint64_t rng;
    int proposed, observed;
    double sum;
} toy;

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    snprintf(db_path, sizeof db_path, "%s", argv[1]);
    char err[NAS_ERR_LEN] = "";
    int calls = 0, stop_at = 17;
    /* open_bound() without ck_assert, which needs a running Check suite. */
    nas_store *st = NULL;
    nas_store_campaign c = campaign_spec(0x1234, "name: test\nseed: 7\n");
    if (nas_store_open(&st, db_path, err) != NAS_OK ||
        nas_store_campaign_bind(st, &c, 1000, NULL, err) != NAS_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    toy t = {.rng = 42};
    while (calls < stop_at) {
        int64_t id = 0;
        int attempt = 0;
        int got =
            nas_store_task_lease_next(st, NAS_STORE_STAGE_ANY, "w1", 1, 1, &id, &attempt, err);
        if (got < 0) return 1;
        if (!got) {
            t.rng = t.rng * 6364136223846793005ull + 1442695040888963407ull;
            t.proposed++;
            char text[64];
            snprintf(text, sizeof text, "toy-%llu", (unsigned long long)(t.rng >> 40));
            nas_store_new_task nt = new_task(t.rng >> 1, text, NAS_STORE_STAGE_SEARCH);
            if (nas_store_task_add(st, &nt, &t, sizeof t, 1, NULL, err) != NAS_OK) return 1;
            calls++;
            continue;
        }
        if (++calls == stop_at) break;
        nas_store_task_info info;
        if (nas_store_task_get(st, id, &info, err) != NAS_OK) return 1;
        nas_store_result r = result_of((double)(info.arch_hash % 1000) / 1000.0);
        t.observed++;
        t.sum += r.accuracy;
        if (nas_store_put_result(st, id, attempt, &r, &t, sizeof t, 1, err) != NAS_STORE_APPLIED)
            return 1;
        calls++;
    }
    nas_store_close(&st);
    return 0;
}
