/*
 * flood.c - the registration flood of bench/soak: N Registers, each from a
 * DEALER socket of its own (a new identity for the master), in waves of
 * 100 sockets; a wave waits up to 2 s for the master's answers before its
 * sockets close.
 *
 *   bench-soak-flood --master EP --count N --prefix NAME
 *
 * Prints one line: registrations=SENT answered=A seconds=S
 */
#include "common/clock.h"
#include "common/err.h"
#include "common/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define WAVE 100

int main(int argc, char **argv) {
    const char *ep = NULL, *prefix = "flood";
    int count = 5000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--master") == 0)
            ep = argv[i + 1];
        else if (strcmp(argv[i], "--count") == 0)
            count = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prefix") == 0)
            prefix = argv[i + 1];
    }
    if (!ep || count < 1) {
        fprintf(stderr, "usage: bench-soak-flood --master EP --count N [--prefix NAME]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    /* Closed sockets are reaped by ZeroMQ's own thread, later: room for
     * many waves of them. */
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, 8192);
    int64_t t0 = nas_now_ms();
    int answered = 0, sent = 0;
    for (int done = 0; done < count; done += WAVE) {
        int n = count - done < WAVE ? count - done : WAVE;
        void *s[WAVE];
        for (int i = 0; i < n; i++) {
            s[i] = zmq_socket(ctx, ZMQ_DEALER);
            if (!s[i]) {
                fprintf(stderr, "flood: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
                n = i;
                break;
            }
            int linger = 0;
            zmq_setsockopt(s[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_connect(s[i], ep);
            nas_wire_msg m;
            nas_wire_msg_init(&m, NAS_MSG_REGISTER);
            snprintf(m.u.reg.name, sizeof m.u.reg.name, "%s-%d", prefix, done + i);
            snprintf(m.u.reg.host, sizeof m.u.reg.host, "flood");
            m.u.reg.protocol = NAS_PROTOCOL_VERSION;
            m.u.reg.cores = 1;
            char err[NAS_ERR_LEN];
            if (nas_wire_send(s[i], NULL, 0, &m, NULL, 0, 0, err) < 0)
                fprintf(stderr, "flood: %s\n", err);
            else
                sent++;
        }
        int64_t end = nas_now_ms() + 2000;
        for (int i = 0; i < n; i++) {
            zmq_pollitem_t it = {s[i], 0, ZMQ_POLLIN, 0};
            int64_t left = end - nas_now_ms();
            answered += zmq_poll(&it, 1, left > 0 ? (long)left : 0) > 0;
            zmq_close(s[i]);
        }
    }
    zmq_ctx_term(ctx);
    printf("registrations=%d answered=%d seconds=%.1f\n", sent, answered,
           (double)(nas_now_ms() - t0) / 1000.0);
    return 0;
}
