/*
 * breaker.h - the campaign's circuit breaker (workers.max_failed_in_a_row):
 * tasks that failed for good with no result committed between them.  At
 * the limit the campaign stops giving out work (campaign.c), so that a
 * cause every architecture shares (a batch too large for the workers'
 * memory, a training recipe that makes every net diverge) does not spend
 * the whole budget on failures.  Kept apart from the campaign so that its
 * rule can be tested alone.
 */
#ifndef NAS_BREAKER_H
#define NAS_BREAKER_H

#include "common/err.h"

typedef struct nas_breaker {
    int limit;    /* failures in a row that trip it; 0: never */
    int in_a_row; /* failures for good since the last result */
    int tripped;  /* latched until the process ends (a restart clears it) */
    /* Set when it trips, refreshed by later failures: for the log and status. */
    char message[512];
} nas_breaker;

void nas_breaker_init(nas_breaker *b, int limit);
/* A task failed for good with `reason`.  Returns 1 exactly when this
 * failure trips the breaker, else 0. */
int nas_breaker_failed(nas_breaker *b, const char *reason);
/* A result was committed: the count starts again (a tripped breaker stays
 * tripped: only a restart after the fix resumes the campaign). */
void nas_breaker_result(nas_breaker *b);

#endif
