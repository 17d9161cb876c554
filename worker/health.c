/*
 * health.c - the worker's health file and systemd notifications
 * (worker/health.h).
 */
#include "worker/health.h"

#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int nas_health_notify(const char *msg, char *err) {
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock) return NAS_OK;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(sock);
    if ((sock[0] != '/' && sock[0] != '@') || n >= sizeof sa.sun_path)
        return nas_set_err(err, NAS_EINVAL, "NOTIFY_SOCKET '%s' is not a socket path", sock);
    memcpy(sa.sun_path, sock, n);
    /* A leading '@' names a socket in the abstract namespace. */
    if (sock[0] == '@') sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nas_set_err(err, NAS_EIO, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    ssize_t w = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int e = errno;
    close(fd);
    if (w < 0) return nas_set_err(err, NAS_EIO, "NOTIFY_SOCKET %s: %s", sock, strerror(e));
    return NAS_OK;
}

/* Written beside the file and renamed over it, so a probe never reads
 * half a line. */
static int write_file(const char *path, const char *line, char *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return nas_set_err(err, NAS_EINVAL, "health file %s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return nas_set_err(err, NAS_EIO, "health file %s: %s", tmp, strerror(errno));
    size_t n = strlen(line);
    ssize_t w = write(fd, line, n);
    int e = errno;
    if (close(fd) != 0 && w >= 0) w = -1, e = errno;
    if (w != (ssize_t)n) {
        unlink(tmp);
        return nas_set_err(err, NAS_EIO, "health file %s: %s", tmp, w < 0 ? strerror(e) : "short");
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return nas_set_err(err, NAS_EIO, "health file %s: %s", path, strerror(e));
    }
    return NAS_OK;
}

int nas_health_report(nas_health *h, const nas_health_state *s, int64_t wall_ms, char *err) {
    int rc = NAS_OK;
    if (h->path) {
        char line[128];
        snprintf(line, sizeof line, "alive %" PRId64 " connected %d busy %d heard_ms_ago %" PRId64 "\n",
                 wall_ms, s->connected, s->busy, s->heard_ms_ago);
        rc = write_file(h->path, line, err);
    }
    char nerr[NAS_ERR_LEN];
    int nrc = nas_health_notify(h->notified ? "WATCHDOG=1" : "READY=1\nWATCHDOG=1", nerr);
    if (nrc == NAS_OK) {
        h->notified = 1;
    } else if (rc == NAS_OK) {
        rc = nrc;
        snprintf(err, NAS_ERR_LEN, "%s", nerr);
    }
    return rc;
}

int nas_health_check(const char *path, int64_t max_age_ms, int64_t now_wall_ms, char *line,
                     size_t line_len, char *err) {
    FILE *f = fopen(path, "re");
    if (!f) return nas_set_err(err, NAS_EIO, "health file %s: %s", path, strerror(errno));
    char buf[256] = "";
    int got = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    if (line && line_len) snprintf(line, line_len, "%s", buf);
    long long at = 0;
    int conn = 0, busy = 0;
    long long heard = 0;
    if (!got || sscanf(buf, "alive %lld connected %d busy %d heard_ms_ago %lld", &at, &conn, &busy,
                       &heard) != 4)
        return nas_set_err(err, NAS_EFORMAT, "health file %s: not a nas-worker health line: '%s'",
                           path, buf);
    int64_t age = now_wall_ms - (int64_t)at;
    if (age > max_age_ms)
        return nas_set_err(err, NAS_ETIMEDOUT,
                           "health file %s: last written %" PRId64 " ms ago (more than %" PRId64
                           " ms): the worker's agent loop is stuck or the worker is gone",
                           path, age, max_age_ms);
    return NAS_OK;
}
