/*
 * test_store_batch.c - group commit (store.h: nas_store_batch_*): calls
 * inside a batch keep their own all-or-nothing behaviour, nothing of the
 * batch is visible to another connection (or survives a crash) before the
 * commit, everything is after it, and a result delivered again after a
 * crash on either side of the commit is recorded exactly once (the first
 * result wins), which is what lets the master acknowledge only after the
 * commit.
 */
#include "tests/store_fixtures.h"

#include <sys/wait.h>
#include <unistd.h>

/* Three search tasks, leased as attempt 1 and committed. */
static void three_leased(nas_store *st, int64_t id[3]) {
    char err[NAS_ERR_LEN] = "";
    for (int i = 0; i < 3; i++) {
        id[i] = add_task(st, 100 + (uint64_t)i, NAS_STORE_STAGE_SEARCH);
        ck_assert_msg(nas_store_task_lease(st, id[i], 1, "w1", "h1", "", 9000, 3000, err) == NAS_OK,
                      "%s", err);
    }
}

static int64_t done_seen_by(const char *path) {
    char err[NAS_ERR_LEN] = "";
    nas_store *ro = NULL;
    ck_assert_msg(nas_store_open_ro(&ro, path, err) == NAS_OK, "%s", err);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(ro, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
    nas_store_close(&ro);
    return k.done;
}

START_TEST(test_batch_commits_together) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id[3];
    three_leased(st, id);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_OK);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_ESTATE);
    ck_assert(nas_store_in_batch(st));
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_put_result(st, id[1], 1, &r, "s", 1, 4000, err), NAS_STORE_APPLIED);
    /* A refused call changes nothing and leaves the batch usable. */
    ck_assert_int_eq(nas_store_put_result(st, id[2], 5, &r, NULL, 0, 4000, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, NULL, 0, 4000, err),
                     NAS_STORE_DUPLICATE);
    /* An injected I/O error in one call undoes that call only. */
    nas_store_fail_after(st, 3);
    ck_assert_int_eq(nas_store_put_result(st, id[2], 1, &r, NULL, 0, 4000, err), NAS_EIO);
    nas_store_fail_after(st, 0);
    ck_assert_int_eq(nas_store_task_observed(st, id[0], 0, 1, err), NAS_OK);
    /* Our connection sees the batch; nobody else does before the commit. */
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
    ck_assert_int_eq(k.done, 2);
    ck_assert_int_eq(done_seen_by(db_path), 0);
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    ck_assert(!nas_store_in_batch(st));
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_ESTATE);
    ck_assert_int_eq(done_seen_by(db_path), 2);
    /* Outside a batch every call is its own transaction again. */
    ck_assert_int_eq(nas_store_put_result(st, id[2], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(done_seen_by(db_path), 3);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    uint8_t *blob = NULL;
    size_t n = 0;
    ck_assert_int_eq(nas_store_strategy_load(st, &blob, &n, NULL, err), NAS_OK);
    ck_assert_uint_eq(n, 1);
    nas_free(blob);
    nas_store_close(&st);
}
END_TEST

/* A whole batch (no savepoints): refusals that wrote nothing leave it
 * usable; an I/O error after a call wrote poisons it, and its commit then
 * refuses and rolls back every call, the earlier good ones included. */
START_TEST(test_batch_whole) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id[3];
    three_leased(st, id);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_batch_begin_whole(st, err), NAS_OK);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_ESTATE);
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_put_result(st, id[2], 5, &r, NULL, 0, 4000, err), NAS_EINVAL);
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, NULL, 0, 4000, err),
                     NAS_STORE_DUPLICATE);
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    ck_assert_int_eq(done_seen_by(db_path), 1);

    /* Fail the second statement of a result (its strategy state): its
     * done-UPDATE ran, so the batch is poisoned, whatever the caller does
     * next. */
    ck_assert_int_eq(nas_store_batch_begin_whole(st, err), NAS_OK);
    ck_assert_int_eq(nas_store_put_result(st, id[1], 1, &r, "s", 1, 4100, err), NAS_STORE_APPLIED);
    nas_store_fail_after(st, 2);
    ck_assert_int_eq(nas_store_put_result(st, id[2], 1, &r, "s", 1, 4100, err), NAS_EIO);
    nas_store_fail_after(st, 0);
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_EIO);
    ck_assert_ptr_nonnull(strstr(err, "rolled back"));
    ck_assert(!nas_store_in_batch(st));
    ck_assert_int_eq(done_seen_by(db_path), 1);
    nas_store_counts k;
    ck_assert_int_eq(nas_store_task_counts(st, NAS_STORE_STAGE_ANY, &k, err), NAS_OK);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.leased, 2);
    /* The store goes on: the next batch (whole or not) commits normally. */
    ck_assert_int_eq(nas_store_batch_begin_whole(st, err), NAS_OK);
    ck_assert_int_eq(nas_store_put_result(st, id[1], 1, &r, NULL, 0, 4200, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_put_result(st, id[2], 1, &r, NULL, 0, 4200, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_batch_commit(st, err), NAS_OK);
    ck_assert_int_eq(done_seen_by(db_path), 3);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    /* The rolled-back batch's result numbers were handed out again, with no
     * gap and no repeat: completion order is 1, 2, 3. */
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(recs[i].seq, i + 1);
    ck_assert_int_eq(recs[1].task_id, id[1]);
    nas_store_records_free(recs, 3);
    nas_store_close(&st);
}
END_TEST

/* The result number cached by one handle is not trusted after another
 * connection wrote results: each handle's next result follows the other's. */
START_TEST(test_batch_result_numbers_two_handles) {
    char err[NAS_ERR_LEN] = "";
    nas_store *a = open_bound(db_path);
    int64_t id[3];
    three_leased(a, id);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_put_result(a, id[0], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    nas_store *b = open_bound(db_path);
    ck_assert_int_eq(nas_store_put_result(b, id[1], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    ck_assert_int_eq(nas_store_put_result(a, id[2], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    ck_assert_msg(nas_store_check(a, err) == NAS_OK, "%s", err);
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(a, NAS_STORE_STAGE_ANY, &recs, err), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(recs[i].seq, i + 1);
        ck_assert_int_eq(recs[i].task_id, id[i]);
    }
    nas_store_records_free(recs, 3);
    nas_store_close(&b);
    nas_store_close(&a);
}
END_TEST

/* A task names its fidelity by id (schema v3).  A batch that added a new
 * fidelity's row and then rolled back takes the row with it: the store
 * must not name that id again but add the row anew. */
START_TEST(test_batch_fidelity_row_after_rollback) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    add_task(st, 1, NAS_STORE_STAGE_SEARCH);
    nas_store_new_task t = new_task(2, "n=sep3x3:0+id:0", NAS_STORE_STAGE_FINAL);
    t.fidelity.epochs = 9;
    int64_t id = 0;
    ck_assert_int_eq(nas_store_batch_begin_whole(st, err), NAS_OK);
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, 3000, &id, err) == NAS_OK, "%s", err);
    nas_store_batch_abort(st);
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM fidelity"), 1);
    ck_assert_msg(nas_store_task_add(st, &t, NULL, 0, 3000, &id, err) == NAS_OK, "%s", err);
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM fidelity"), 2);
    add_task(st, 3, NAS_STORE_STAGE_SEARCH); /* back to the first fidelity: no new row */
    ck_assert_int_eq(pragma_int(st, "SELECT count(*) FROM fidelity"), 2);
    nas_store_task_info info;
    ck_assert_int_eq(nas_store_task_get(st, id, &info, err), NAS_OK);
    ck_assert_int_eq(info.fidelity.epochs, 9);
    ck_assert_int_eq(nas_store_task_get(st, 1, &info, err), NAS_OK);
    ck_assert_int_eq(info.fidelity.epochs, nas_fidelity_default().epochs);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_close(&st);
}
END_TEST

START_TEST(test_batch_abort_changes_nothing) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id[3];
    three_leased(st, id);
    nas_store_result r = result_of(0.5);
    ck_assert_int_eq(nas_store_batch_begin(st, err), NAS_OK);
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, "s", 1, 4000, err), NAS_STORE_APPLIED);
    nas_store_batch_abort(st);
    nas_store_batch_abort(st); /* no batch: no-op */
    ck_assert_int_eq(done_seen_by(db_path), 0);
    ck_assert_int_eq(nas_store_strategy_load(st, &(uint8_t *){NULL}, &(size_t){0}, NULL, err),
                     NAS_ENOTFOUND);
    /* The result, delivered again, is the first one. */
    ck_assert_int_eq(nas_store_put_result(st, id[0], 1, &r, NULL, 0, 4000, err), NAS_STORE_APPLIED);
    nas_store_close(&st);
}
END_TEST

/* A master killed (nothing closed) with a batch of two results open, or
 * right after committing it and before any acknowledgement went out.  The
 * worker still holds its result in both cases and delivers it again to
 * the next master: recorded once either way. */
static void crash_case(int commit) {
    char err[NAS_ERR_LEN] = "";
    nas_store *st = open_bound(db_path);
    int64_t id[3];
    three_leased(st, id);
    nas_store_close(&st);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        nas_store *c = NULL;
        if (nas_store_open(&c, db_path, err) != NAS_OK) _exit(2);
        nas_store_result r = result_of(0.75);
        if (nas_store_batch_begin(c, err) != NAS_OK) _exit(3);
        for (int i = 0; i < 2; i++)
            if (nas_store_put_result(c, id[i], 1, &r, NULL, 0, 4000, err) != NAS_STORE_APPLIED)
                _exit(4);
        if (commit && nas_store_batch_commit(c, err) != NAS_OK) _exit(5);
        _exit(0); /* before any acknowledgement */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    st = NULL;
    ck_assert_int_eq(nas_store_open(&st, db_path, err), NAS_OK);
    ck_assert_int_eq(done_seen_by(db_path), commit ? 2 : 0);
    /* The workers deliver again (the resumed master re-leased as attempt 2
     * or not: the first result wins whatever its attempt). */
    nas_store_result r = result_of(0.75);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(nas_store_put_result(st, id[i], 1, &r, NULL, 0, 5000, err),
                         commit ? NAS_STORE_DUPLICATE : NAS_STORE_APPLIED);
    nas_store_record *recs = NULL;
    ck_assert_int_eq(nas_store_history(st, NAS_STORE_STAGE_ANY, &recs, err), 2);
    nas_store_records_free(recs, 2);
    ck_assert_msg(nas_store_check(st, err) == NAS_OK, "%s", err);
    nas_store_close(&st);
}

START_TEST(test_batch_crash_before_commit) {
    crash_case(0);
}
END_TEST

START_TEST(test_batch_crash_between_commit_and_ack) {
    crash_case(1);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("store_batch");
    TCase *tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_batch_commits_together);
    tcase_add_test(tc, test_batch_abort_changes_nothing);
    tcase_add_test(tc, test_batch_whole);
    tcase_add_test(tc, test_batch_result_numbers_two_handles);
    tcase_add_test(tc, test_batch_fidelity_row_after_rollback);
    tcase_add_test(tc, test_batch_crash_before_commit);
    tcase_add_test(tc, test_batch_crash_between_commit_and_ack);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
