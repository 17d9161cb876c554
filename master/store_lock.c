/*
 * store_lock.c - one live master per campaign store, and the reasons a
 * store cannot be opened, told apart.
 *
 * The lock.  A master holds an exclusive flock(2) on STORE.lock, a small
 * file beside the store whose one line names the holder (pid, host, since
 * when), beside the file itself where the store's path is a symbolic link
 * to it.  The kernel drops the lock when the holding process ends, however
 * it ends (exit, kill -9, a crash), so a dead holder never blocks the next
 * start; the stale line left in the file is only read while someone holds
 * the lock, and is rewritten by the next holder.  The lock is a file of its
 * own rather than a lock on the database: SQLite takes POSIX byte-range
 * locks on the database file, and on NFS Linux emulates flock with those
 * same locks, which would then collide with SQLite's.  SQLite's WAL mode
 * needs the store on a local disk anyway (docs/CAMPAIGN.md, "Storage").
 *
 * Readers (nasctl) never take the lock: they read through SQLite's own
 * WAL locking while the master writes.
 *
 * Open errors.  sqlite3_open_v2 reports a missing folder, a folder we may
 * not write and a read-only copy whose -wal file is missing all as "unable
 * to open database file"; diagnose() looks at the file system after such a
 * failure and says which it was.
 */
#include "master/store_internal.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The folder a path lies in ("." for a bare name), into buf. */
static void folder_of(const char *path, char *buf, size_t cap) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(buf, cap, "%s", dirname(copy));
}

int nas__store_diagnose(const char *path, int readonly, char *err) {
    char dir[PATH_MAX];
    folder_of(path, dir, sizeof dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return nas_set_err(err, NAS_ENOTFOUND, "store %s: folder %s does not exist%s", path, dir,
                           readonly ? ""
                                    : " (create it first; nas-master does not create folders)");
    if (!S_ISDIR(sb.st_mode))
        return nas_set_err(err, NAS_EINVAL, "store %s: %s is not a folder", path, dir);
    int exists = stat(path, &sb) == 0;
    if (readonly && !exists)
        return nas_set_err(err, NAS_ENOTFOUND, "store %s does not exist", path);
    if (exists && S_ISDIR(sb.st_mode))
        return nas_set_err(err, NAS_EINVAL, "store %s is a folder, not a database file", path);
    if (exists && access(path, R_OK) != 0)
        return nas_set_err(err, NAS_EIO, "store %s: no permission to read the file", path);
    int dir_writable = access(dir, W_OK) == 0;
    if (!readonly && !exists && !dir_writable)
        return nas_set_err(err, NAS_EIO,
                           "store %s: folder %s is not writable (nas-master creates the store, its "
                           "-wal and -shm files and its .lock there)",
                           path, dir);
    if (!readonly && exists && (access(path, W_OK) != 0 || !dir_writable))
        return nas_set_err(err, NAS_EIO,
                           "store %s: %s is not writable (nas-master writes the store and creates "
                           "its -wal and -shm files beside it); nasctl can still read it",
                           path, access(path, W_OK) != 0 ? "the file" : "its folder");
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (readonly && !dir_writable && access(wal, F_OK) != 0)
        return nas_set_err(err, NAS_EIO,
                           "store %s: a write-ahead-log database in a read-only folder without "
                           "its -wal and -shm files (a copy?): copy %s-wal and %s-shm with it, or "
                           "copy it to a folder nasctl may write",
                           path, path, path);
    return NAS_OK;
}

/* Beside the file the path names, not beside a symbolic link to it: two masters given one store
 * under two names (a link and its target) must meet on one lock. */
void nas__store_lock_path(const char *path, char *buf, size_t cap) {
    char real[PATH_MAX];
    snprintf(buf, cap, "%s.lock", realpath(path, real) ? real : path);
}

/* The holder's line, as the lock file keeps it: "pid 123 on host since
 * 2026-12-07 07:00:00 UTC".  Read only after losing the race for the lock,
 * so the line belongs to the live holder (or is being written: a few
 * retries cover that). */
static void read_holder(int fd, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int tries = 0; tries < 20 && !buf[0]; tries++) {
        ssize_t n = pread(fd, buf, cap - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (!buf[0]) nas_sleep_ms(10);
    }
    if (!buf[0]) snprintf(buf, cap, "a process that has not yet written its name");
}

int nas__store_lock_take(const char *path, int *fd_out, char *err) {
    char lp[PATH_MAX + 8];
    nas__store_lock_path(path, lp, sizeof lp);
    *fd_out = -1;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (nas__store_diagnose(path, 0, err) < 0) return NAS_EIO;
        return nas_set_err(err, NAS_EIO, "store %s: cannot open its lock file %s: %s", path, lp,
                           strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[256];
        if (e == EWOULDBLOCK) read_holder(fd, holder, sizeof holder);
        close(fd);
        if (e != EWOULDBLOCK)
            return nas_set_err(err, NAS_EIO, "store %s: cannot lock %s: %s", path, lp, strerror(e));
        return nas_set_err(err, NAS_EEXIST,
                           "store %s is in use by another nas-master (%s; lock %s): one master "
                           "per store; stop that one first, or give this one another store",
                           path, holder, lp);
    }
    char host[128] = "?", when[64] = "?", line[320];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    int n = snprintf(line, sizeof line, "pid %ld on %s since %s\n", (long)getpid(), host, when);
    /* The line is informative: a failure to write it leaves the lock held. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
        nas_warn("store %s: could not write the holder into %s: %s", path, lp, strerror(errno));
    *fd_out = fd;
    return NAS_OK;
}

int nas_store_open_exclusive(nas_store **out, const char *path, char *err) {
    if (!out || !path || !*path) return nas_set_err(err, NAS_EINVAL, "store: no path given");
    int fd = -1;
    int rc = nas__store_lock_take(path, &fd, err);
    if (rc < 0) return rc;
    rc = nas_store_open(out, path, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    (*out)->lock_fd = fd;
    return NAS_OK;
}
