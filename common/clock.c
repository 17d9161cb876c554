/*
 * clock.c - see clock.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/clock.h"

#include <errno.h>
#include <time.h>

int64_t nas_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t nas_now_ms(void) { return nas_now_ns() / 1000000; }

int64_t nas_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nas_sleep_ms(int64_t ms) {
    struct timespec req = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&req, &req) != 0 && errno == EINTR) {
    }
}
