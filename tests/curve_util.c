/*
 * curve_util.c - the shared CURVE server of the handshake suites; see
 * curve_util.h.
 */
#include "tests/curve_util.h"

#include "common/err.h"
#include "tests/harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

void nas_test_curve_setup(nas_test_curve *c, void *sctx) {
    char err[NAS_ERR_LEN], base[4200];
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", nas_tmpdir_make());
    nas_path_join(c->authdir, sizeof c->authdir, c->dir, "authorized");
    ck_assert_int_eq(mkdir(c->authdir, 0755), 0);
    nas_path_join(base, sizeof base, c->authdir, "worker1");
    ck_assert_int_eq(nas_keys_generate_files(base, 0, &c->worker, err), NAS_OK);
    /* The worker's secret must not sit in the authorized directory. */
    char sec[4300];
    snprintf(sec, sizeof sec, "%s.key_secret", base);
    ck_assert_int_eq(unlink(sec), 0);
    ck_assert_int_eq(nas_keys_generate(&c->server, err), NAS_OK);

    /* Capture the log: nas_log writes each line to fd 2. */
    nas_path_join(c->logpath, sizeof c->logpath, c->dir, "log.txt");
    int fd = open(c->logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);

    ck_assert_int_eq(nas_auth_create(&c->auth, sctx, c->authdir, NULL, err), NAS_OK);
    c->router = zmq_socket(sctx, ZMQ_ROUTER);
    ck_assert_ptr_nonnull(c->router);
    int zero = 0;
    zmq_setsockopt(c->router, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(nas_keys_curve_server(c->router, &c->server, NULL, err), NAS_OK);
    ck_assert_int_eq(zmq_bind(c->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof c->endpoint;
    ck_assert_int_eq(zmq_getsockopt(c->router, ZMQ_LAST_ENDPOINT, c->endpoint, &len), 0);
}

void nas_test_curve_teardown(nas_test_curve *c) {
    if (c->router) {
        zmq_socket_monitor(c->router, NULL, 0);
        zmq_close(c->router);
        c->router = NULL;
    }
    nas_auth_destroy(&c->auth);
    if (c->dir[0]) nas_tmpdir_rm(c->dir);
    c->dir[0] = '\0';
}

int nas_test_curve_log_count(const nas_test_curve *c, const char *needle) {
    size_t n = 0;
    char *s = nas_read_file(c->logpath, &n);
    int count = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p++)
        count++;
    free(s);
    return count;
}
