/*
 * campaign_open.c - a campaign's store at start: taken (one master per
 * store), bound to the config (identity checked, an extension recorded),
 * and on a resume reopened: failed tasks re-queued with --retry-failed, a
 * done campaign reopened when an extension or a retry gives it work, then
 * the outstanding tasks brought back (campaign.c).
 */
#include "master/campaign_internal.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* Open the store and bind it to this config: returns 1 when the campaign
 * was created, 0 when an existing one is resumed (same identity hash), or
 * the store's error (NAS_ECONFIG names the first differing line). */
int nas__campaign_open_store(nas_campaign *c, char *err) {
    int rc = nas_store_open_exclusive(&c->store, c->db_path, err);
    if (rc < 0) return rc;
    const nas_config *cfg = c->cfg;
    nas_store_campaign sc = {.name = cfg->name,
                             .text = cfg->text ? cfg->text : "",
                             .canonical = cfg->canonical ? cfg->canonical : "",
                             .hash = cfg->hash,
                             .seed = cfg->seed};
    sc.extensible = nas_config_line_extensible;
    /* An extension raises a budget; fewer evaluations than were granted
     * could already be fewer than were proposed. */
    nas_store_campaign_info info;
    rc = nas_store_campaign_get(c->store, &info, err);
    if (rc == NAS_OK) {
        const char *at = strstr(info.canonical, "budget.evaluations: ");
        long had = at ? strtol(at + strlen("budget.evaluations: "), NULL, 10) : 0;
        nas_store_campaign_info_fini(&info);
        if (had > cfg->budget.evaluations)
            return nas_set_err(err, NAS_ECONFIG,
                               "store %s: budget.evaluations can be raised on resume, not lowered "
                               "(the campaign has %ld, the file says %d)",
                               c->db_path, had, cfg->budget.evaluations);
    } else if (rc != NAS_ENOTFOUND) {
        return rc;
    }
    int created = 0;
    rc = nas_store_campaign_bind(c->store, &sc, nas_wall_ms(), &created, err);
    if (rc < 0) return rc;
    rc = nas_store_campaign_get(c->store, &info, err);
    if (rc < 0) return rc;
    c->created_wall = info.created_ms;
    c->ran_before = info.ran_ms;
    if (info.state == NAS_STORE_CAMPAIGN_DONE) c->phase = NAS__PHASE_DONE;
    nas_store_campaign_info_fini(&info);
    nas_info("campaign %s: %s %s", cfg->name, created ? "created" : "resuming", c->db_path);
    return created;
}

/* A resume: --retry-failed first puts the failed tasks back in the queue;
 * a campaign recorded as done reopens when that gave it work, or when an
 * extension (a larger budget) lets its search go on; then the outstanding
 * tasks come back. */
int nas__campaign_reopen(nas_campaign *c, char *err) {
    int64_t *retried = NULL;
    int n_retried = 0;
    /* A campaign its breaker halted goes on in this process (whose count starts from zero):
     * the log says so, for those who read the store without a master (nasctl status --db,
     * the dashboard). */
    char halt[NAS_STORE_REASON_MAX];
    int rc = nas_store_halted(c->store, halt, sizeof halt, err);
    if (rc > 0) {
        nas_info("campaign: its circuit breaker had halted it; tasks are given out again");
        rc = nas_store_event_append(c->store, nas_wall_ms(), NAS_STORE_EVENT_RESUMED,
                                    "the master restarted: tasks are given out again and "
                                    "workers.max_failed_in_a_row counts from zero",
                                    err);
    }
    if (rc < 0) return rc;
    if (c->opt.retry_failed) {
        nas_store_task_info *ti = NULL;
        int n = nas_store_task_list(c->store, NAS_STORE_TASK_FAILED, NAS_STORE_STAGE_ANY, &ti, err);
        if (n < 0) return n;
        retried = n > 0 ? nas_calloc((size_t)n, sizeof *retried) : NULL;
        for (int i = 0; retried && i < n; i++)
            retried[n_retried++] = ti[i].id;
        nas_free(ti);
        if (n > 0 && !retried) return nas_set_err(err, NAS_ENOMEM, "campaign: out of memory");
        rc = nas_store_task_retry_failed(c->store, nas_wall_ms(), err);
        if (rc >= 0) nas_info("campaign: --retry-failed: %d failed task(s) back in the queue", rc);
    }
    if (rc >= 0 && c->phase == NAS__PHASE_DONE &&
        (n_retried > 0 || !nas__campaign_search_over(c))) {
        nas_info("campaign %s: reopened (%s)", c->cfg->name,
                 n_retried > 0 ? "failed tasks re-queued"
                               : "the budget was raised: the search goes on");
        c->phase = NAS__PHASE_SEARCH;
        rc = nas_store_campaign_set_state(c->store, NAS_STORE_CAMPAIGN_RUNNING, nas_wall_ms(), err);
    }
    if (rc >= 0 && c->phase != NAS__PHASE_DONE)
        rc = nas__campaign_resume_tasks(c, retried, n_retried, err);
    nas_free(retried);
    return rc < 0 ? rc : NAS_OK;
}
