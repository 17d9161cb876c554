/*
 * serve_live.h - a long-lived status client of a running master, for
 * `nasctl serve --master` and `nasctl top --master`: one DEALER socket that
 * asks for the status document about once a second and never blocks (the
 * caller polls it from its own loop).  The master's status endpoint
 * answers StatusRequest only, so this client cannot change anything.
 * With a keypair and the master's public key it talks CurveZMQ.
 */
#ifndef NAS_SERVE_LIVE_H
#define NAS_SERVE_LIVE_H

#include <stdint.h>

typedef struct nas_serve_master nas_serve_master;

/* key_base and master_key: both or neither (NAS_EINVAL otherwise). */
int nas_serve_master_open(nas_serve_master **out, const char *endpoint, const char *key_base,
                          const char *master_key, char *err);
void nas_serve_master_close(nas_serve_master **mp);

/* Send a request when one is due (every `period_ms`, or again after a
 * request went unanswered that long) and take an answer if one arrived:
 * returns the new status document (malloc'd, nas_free) or NULL. */
char *nas_serve_master_poll(nas_serve_master *m, int64_t now_ms, int64_t period_ms);

#endif
