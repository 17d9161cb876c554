/*
 * curve_util.h - the CURVE server both handshake suites start from
 * (test_auth.c, test_zmon.c): a temporary directory whose authorized/
 * holds the public half of one worker key ("worker1"; its secret is
 * removed, as an operator would), a server keypair, our ZAP handler
 * (master/auth.h) in the server's context, and a ROUTER with the server's
 * keys bound to tcp://127.0.0.1 on a free port.  stderr is pointed at a
 * log file in the directory, so a suite reads back what the code logged
 * (Check forks each test, so the redirection ends with it).  Built into
 * the test library beside harness.c.
 */
#ifndef NAS_CURVE_UTIL_H
#define NAS_CURVE_UTIL_H

#include "common/keys.h"
#include "master/auth.h"

typedef struct nas_test_curve {
    char dir[4096];     /* temporary root */
    char authdir[4096]; /* authorized keys */
    char logpath[4096]; /* where stderr (the log) goes */
    nas_keypair server;
    nas_keypair worker; /* authorized as "worker1" */
    nas_auth *auth;     /* created in the server context, not started */
    void *router;       /* CURVE server ROUTER, linger 0 */
    char endpoint[256]; /* where it is bound */
} nas_test_curve;

/* Build all of the above in server context `sctx`; fails the test on any
 * error.  The ZAP handler is created but not started: a suite that tests
 * the handler's start starts it itself. */
void nas_test_curve_setup(nas_test_curve *c, void *sctx);

/* Close the router, destroy the handler and remove the directory (the
 * context is the caller's: terminate it afterwards). */
void nas_test_curve_teardown(nas_test_curve *c);

/* Occurrences of `needle` in the captured log so far. */
int nas_test_curve_log_count(const nas_test_curve *c, const char *needle);

#endif
