/*
 * clock.h - time sources.  Only main loops and the trainer read the clock;
 * state machines take `now_ms` as an argument so tests can drive them.
 */
#ifndef NAS_CLOCK_H
#define NAS_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds / nanoseconds since an arbitrary origin. */
int64_t nas_now_ms(void);
int64_t nas_now_ns(void);

/* Wall-clock milliseconds since the Unix epoch (for records meant for people). */
int64_t nas_wall_ms(void);

/* Sleep for `ms` milliseconds (restarts on EINTR). */
void nas_sleep_ms(int64_t ms);

#endif
