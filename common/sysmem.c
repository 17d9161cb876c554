/*
 * sysmem.c - the memory this process may take (see sysmem.h): /proc/meminfo,
 * the cgroup files of the process's cgroup and its ancestors (v2, and a v1
 * memory controller), the rlimits, and NAS_MEM_LIMIT.
 */
#include "common/sysmem.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/err.h"

// Lower the limit to v, naming its source.
static void cap_limit(nas_sysmem *m, uint64_t v, const char *by) {
    if (v >= m->limit) return;
    m->limit = v;
    snprintf(m->by, sizeof m->by, "%s", by);
}

static void cap_avail(nas_sysmem *m, uint64_t v) {
    if (v < m->avail) m->avail = v;
}

// A kB figure of /proc/meminfo ("MemTotal:  24684128 kB"), or UINT64_MAX.
static uint64_t meminfo_kb(const char *text, const char *key) {
    const char *at = strstr(text, key);
    if (!at) return UINT64_MAX;
    unsigned long long kb;
    if (sscanf(at + strlen(key), " %llu", &kb) != 1) return UINT64_MAX;
    return (uint64_t)kb * 1024;
}

// A whole small file into buf (NUL-terminated); 0 where it cannot be read.
static int read_small(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

// A cgroup file holding a number, or "max": UINT64_MAX for "max" or where it cannot be read.
static uint64_t cgroup_number(const char *dir, const char *file) {
    char path[4200], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (!read_small(path, buf, sizeof buf)) return UINT64_MAX;
    unsigned long long v;
    if (sscanf(buf, "%llu", &v) != 1) return UINT64_MAX;
    return (uint64_t)v;
}

// The limits of one cgroup hierarchy: the process's cgroup `path` under `base` and each cgroup
// above it, read from `max_file` (a number, or "max"; cgroup v1 writes "no limit" as a number
// near 2^63) and `cur_file`.
static void walk_cgroups(nas_sysmem *m, const char *base, const char *path, const char *max_file,
                         const char *cur_file) {
    char dir[4096], label[48];
    int n = snprintf(dir, sizeof dir, "%s%.*s", base, (int)strcspn(path, "\n"), path);
    if (n <= 0 || (size_t)n >= sizeof dir) return;
    snprintf(label, sizeof label, "cgroup %s", max_file);
    for (;;) {
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            dir[--len] = '\0';
        uint64_t max = cgroup_number(dir, max_file);
        if (max < ((uint64_t)1 << 62)) {
            cap_limit(m, max, label);
            uint64_t cur = cgroup_number(dir, cur_file);
            cap_avail(m, cur == UINT64_MAX ? max : cur < max ? max - cur : 0);
        }
        if (strcmp(dir, base) == 0) break;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) break;
        *slash = '\0';
    }
}

// The process's cgroups: "0::PATH" of the unified hierarchy (cgroup v2), "N:memory:PATH" of
// a v1 memory controller (hybrid hosts and older container runtimes).
static void read_cgroups(nas_sysmem *m) {
    char text[4096];
    if (!read_small("/proc/self/cgroup", text, sizeof text)) return;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n'), *v1 = strstr(line, ":memory:");
        if (strncmp(line, "0::", 3) == 0)
            walk_cgroups(m, "/sys/fs/cgroup", line + 3, "memory.max", "memory.current");
        else if (v1 && (!eol || v1 < eol))
            walk_cgroups(m, "/sys/fs/cgroup/memory", v1 + 8, "memory.limit_in_bytes",
                         "memory.usage_in_bytes");
        if (!eol) break;
        line = eol + 1;
    }
}

// "6G", "512M", "1.5GiB", "1048576": bytes, binary multiples. -1 if it is not a size.
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || v > 1e18) return -1;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mul = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0' || v * mul > 1.8e19) return -1;
    *out = (uint64_t)(v * mul);
    return 0;
}

int nas_sysmem_read(nas_sysmem *m, char *err) {
    *m = (nas_sysmem){.limit = UINT64_MAX, .avail = UINT64_MAX};
    snprintf(m->by, sizeof m->by, "no limit found");
    char text[8192];
    if (read_small("/proc/meminfo", text, sizeof text)) {
        cap_limit(m, meminfo_kb(text, "MemTotal:"), "MemTotal");
        cap_avail(m, meminfo_kb(text, "MemAvailable:"));
    }
    read_cgroups(m);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        cap_limit(m, (uint64_t)rl.rlim_cur, "RLIMIT_AS");
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        cap_limit(m, (uint64_t)rl.rlim_cur, "RLIMIT_DATA");
    const char *env = getenv(NAS_MEM_LIMIT_ENV);
    if (env && *env) {
        uint64_t v;
        if (parse_size(env, &v) < 0)
            return nas_set_err(err, NAS_ECONFIG,
                               "%s expects a size such as 6G or 512M, got '%.60s'",
                               NAS_MEM_LIMIT_ENV, env);
        cap_limit(m, v, NAS_MEM_LIMIT_ENV);
    }
    cap_avail(m, m->limit);
    return NAS_OK;
}

// "1.23 GB" or "456.7 MB" into buf.
static const char *human(uint64_t bytes, char *buf, size_t cap) {
    if (bytes >= (uint64_t)1 << 30)
        snprintf(buf, cap, "%.2f GB", (double)bytes / (1 << 30));
    else
        snprintf(buf, cap, "%.1f MB", (double)bytes / (1 << 20));
    return buf;
}

int nas_sysmem_check(uint64_t need, const char *who, const char *what, char *err) {
    nas_sysmem m;
    int rc = nas_sysmem_read(&m, err);
    if (rc < 0) return rc;
    char a[32], b[32], c[32];
    if (need > m.limit)
        return nas_set_err(err, NAS_ERANGE,
                           "%s needs %s, more than the %s this process may use (%s): %s", who,
                           human(need, a, sizeof a), human(m.limit, b, sizeof b), m.by, what);
    if (need > m.avail)
        return nas_set_err(err, NAS_ENOMEM,
                           "%s needs %s and only %s of memory is available now (limit %s, %s)", who,
                           human(need, a, sizeof a), human(m.avail, b, sizeof b),
                           human(m.limit, c, sizeof c), m.by);
    return NAS_OK;
}
