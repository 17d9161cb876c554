/*
 * sysmem.h - how much memory this process may take, read before a large
 * allocation so that a net too big for the machine is refused with its
 * figures instead of being killed by the kernel's OOM killer halfway
 * through zeroing its arena.
 *
 * The limit is the least of: the machine's memory (MemTotal), the memory
 * limit of the process's cgroup and of each cgroup above it (cgroup v2
 * memory.max, or a v1 memory controller's memory.limit_in_bytes), RLIMIT_AS
 * and RLIMIT_DATA, and NAS_MEM_LIMIT (a size such
 * as 6G or 512M) where the environment sets it: an administrator who
 * shares a host with other jobs caps the nets a worker plans with it.
 * What is available now is the least of MemAvailable, each cgroup's
 * limit less its usage, and the limit.
 */
#ifndef NAS_SYSMEM_H
#define NAS_SYSMEM_H

#include <stdint.h>

#define NAS_MEM_LIMIT_ENV "NAS_MEM_LIMIT"

typedef struct nas_sysmem {
    uint64_t limit; /* bytes this process may ever hold */
    uint64_t avail; /* bytes it may take now, <= limit */
    char by[48];    /* what sets the limit: "MemTotal", "cgroup memory.max", ... */
} nas_sysmem;

/* Fill *m. Returns NAS_OK, or NAS_ECONFIG (err names it) when
 * NAS_MEM_LIMIT is set to something that is not a size. Where /proc is
 * missing, the limit and availability it would give are taken as
 * unbounded (UINT64_MAX). */
int nas_sysmem_read(nas_sysmem *m, char *err);

/* Check that `need` more bytes can be allocated, before allocating them.
 * NAS_OK; NAS_ERANGE when need exceeds the limit (it can never fit here:
 * err gives need, the limit and what sets it, and asks for a smaller
 * `what`); NAS_ENOMEM when need fits the limit but not what is available
 * now. The message starts with `who`. */
int nas_sysmem_check(uint64_t need, const char *who, const char *what, char *err);

#endif
