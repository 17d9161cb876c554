/*
 * breaker.c - failures in a row and the message that names them (breaker.h).
 */
#include "master/breaker.h"

#include <stdio.h>
#include <string.h>

void nas_breaker_init(nas_breaker *b, int limit) {
    memset(b, 0, sizeof *b);
    b->limit = limit > 0 ? limit : 0;
}

int nas_breaker_failed(nas_breaker *b, const char *reason) {
    b->in_a_row++;
    if (b->limit == 0 || b->in_a_row < b->limit) return 0;
    /* Leases already out when it tripped may still fail: the message keeps
     * the current count and the latest reason. */
    snprintf(b->message, sizeof b->message,
             "%d tasks failed in a row (workers.max_failed_in_a_row: %d); no new tasks are "
             "given out. Fix the cause (the last failure: %.160s), then restart the master: "
             "the campaign resumes where it stood",
             b->in_a_row, b->limit, reason && *reason ? reason : "(no reason given)");
    int first = !b->tripped;
    b->tripped = 1;
    return first;
}

void nas_breaker_result(nas_breaker *b) {
    b->in_a_row = 0;
}
