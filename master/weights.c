/*
 * weights.c - the master's weight store: an LRU memory cache under a byte
 * budget over write-through safetensors files, indexed in SQLite
 * (master/weights.h).
 *
 * Layout: `mem` is a small array of architectures held in memory, each
 * one manifest plus one aligned buffer; `disk` is the list of
 * architectures with a file and the file's size.  Campaign populations are
 * tens to hundreds of architectures, so linear scans are cheaper than any
 * index and keep the code obvious.  Recency is a counter stamped on every
 * put and get; eviction takes the smallest stamp.
 *
 * Asynchronous writes (a store given a loop): `q_head..q_tail` is a FIFO
 * of write jobs, the head in the thread pool while `writing`.  A job owns
 * its manifest and buffer until it completes on the loop thread, where
 * the index row is written and the buffer moves into `mem`; until then
 * get() serves it from the job (the thread only reads it too), the budget
 * counts it and eviction cannot touch it.  A drop while a job is queued
 * or running marks it, and its completion removes the file it wrote.
 */
#include "master/weights.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define NAS_WEIGHTS_DIR_MAX  1024
#define NAS_WEIGHTS_PATH_MAX (NAS_WEIGHTS_DIR_MAX + 32) /* dir + "/" + 16 hex + ".safetensors" */

/* One architecture in memory. */
typedef struct mem_entry {
    uint64_t arch;
    nas_wire_weights_msg man; /* manifest (tensors, total_bytes) */
    uint8_t *data;            /* total_bytes: nas_aligned_alloc'd, or inside zmsg */
    void *zmsg;               /* a received zmq_msg_t adopted by put_packet, or NULL */
    uint64_t stamp;           /* recency: larger is more recent */
} mem_entry;

/* One architecture with a file. */
typedef struct disk_entry {
    uint64_t arch;
    int64_t bytes;
} disk_entry;

/* One file write for the thread pool. */
typedef struct wjob {
    uv_work_t req;
    nas_weights *w;
    uint64_t arch;
    nas_wire_weights_msg man; /* owned until completion */
    uint8_t *data;
    void *zmsg;
    int64_t now_ms;
    int dropped;   /* dropped while queued or written: remove the file when done */
    int rc;        /* the thread's outcome */
    int64_t bytes; /* file size written */
    char err[NAS_ERR_LEN];
    nas_weights_done_fn done;
    void *ctx;
    struct wjob *next;
} wjob;

struct nas_weights {
    char dir[NAS_WEIGHTS_DIR_MAX]; /* "" when memory only */
    uv_loop_t *loop;               /* NULL: synchronous writes */
    wjob *q_head, *q_tail;         /* pending writes, oldest first */
    int writing;                   /* q_head is in the thread pool */
    int64_t budget;
    nas_store *store;
    mem_entry *mem;
    size_t n_mem, cap_mem;
    disk_entry *disk;
    size_t n_disk, cap_disk;
    uint64_t clock; /* recency counter */
    nas_weights_stats st;
    nas_log_limit peer_log; /* nas__weights_peer_log */
};

// ---- small helpers ------------------------------------------------------------------

/* One file per architecture, named by its hash, so a resumed store finds
 * its files without the index and an operator can see which is which. */
static void file_path(const nas_weights *w, uint64_t arch, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%016" PRIx64 ".safetensors", w->dir, arch);
}

/* Linear lookups: populations are small (see the header). */
static mem_entry *mem_find(const nas_weights *w, uint64_t arch) {
    for (size_t i = 0; i < w->n_mem; i++)
        if (w->mem[i].arch == arch) return &w->mem[i];
    return NULL;
}

static disk_entry *disk_find(const nas_weights *w, uint64_t arch) {
    for (size_t i = 0; i < w->n_disk; i++)
        if (w->disk[i].arch == arch) return &w->disk[i];
    return NULL;
}

/* The newest write of `arch` still pending and not dropped: what a get
 * must serve, since it is what the pusher sent last. */
static wjob *job_find(const nas_weights *w, uint64_t arch) {
    wjob *found = NULL;
    for (wjob *j = w->q_head; j; j = j->next)
        if (j->arch == arch && !j->dropped) found = j;
    return found;
}

/* Tensor data is either our aligned copy (nas_weights_put) or a received
 * ZeroMQ frame the store adopted (nas_weights_put_packet). */
static void data_free(uint8_t *data, void *zmsg) {
    if (zmsg) {
        zmq_msg_close(zmsg);
        nas_free(zmsg);
    } else {
        nas_aligned_free(data);
    }
}

static void mem_entry_free(mem_entry *e) {
    nas_wire_weights_msg_fini(&e->man);
    data_free(e->data, e->zmsg);
    memset(e, 0, sizeof *e);
}

/* Remove mem[i] (swap with the last: order carries no meaning). */
static void mem_remove(nas_weights *w, size_t i) {
    w->st.bytes_memory -= (int64_t)w->mem[i].man.total_bytes;
    mem_entry_free(&w->mem[i]);
    w->mem[i] = w->mem[--w->n_mem];
}

/* Grow an array of elements of `size` bytes to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return NAS_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = nas_realloc(*arr, nc * size);
    if (!p) return NAS_ENOMEM;
    *arr = p;
    *cap = nc;
    return NAS_OK;
}

/* Record (or update) an architecture's file and keep bytes_disk exact. */
static int disk_set(nas_weights *w, uint64_t arch, int64_t bytes) {
    disk_entry *d = disk_find(w, arch);
    if (d) {
        w->st.bytes_disk += bytes - d->bytes;
        d->bytes = bytes;
        return NAS_OK;
    }
    if (grow((void **)&w->disk, &w->cap_disk, w->n_disk, sizeof *w->disk) < 0) return NAS_ENOMEM;
    w->disk[w->n_disk++] = (disk_entry){arch, bytes};
    w->st.bytes_disk += bytes;
    return NAS_OK;
}

/* Parse "<16 hex digits>.safetensors"; 0 for any other name. */
static int parse_file_name(const char *name, uint64_t *arch) {
    if (strlen(name) != 16 + strlen(".safetensors") || strcmp(name + 16, ".safetensors") != 0)
        return 0;
    char *end = NULL;
    char hex[17];
    memcpy(hex, name, 16);
    hex[16] = 0;
    errno = 0;
    unsigned long long v = strtoull(hex, &end, 16);
    if (errno || end != hex + 16) return 0;
    *arch = (uint64_t)v;
    return 1;
}

// ---- lifecycle ---------------------------------------------------------------------------

/* The files of a resumed campaign are counted, not read: they load on
 * demand, so a master with gigabytes of old weights starts at once. */
static int scan_dir(nas_weights *w, char *err) {
    DIR *d = opendir(w->dir);
    if (!d) return nas_set_err(err, NAS_EIO, "weights: open %s: %s", w->dir, strerror(errno));
    struct dirent *de;
    int rc = NAS_OK;
    while (rc == NAS_OK && (de = readdir(d)) != NULL) {
        uint64_t arch;
        if (!parse_file_name(de->d_name, &arch)) continue;
        char path[NAS_WEIGHTS_PATH_MAX];
        file_path(w, arch, path, sizeof path);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (disk_set(w, arch, (int64_t)sb.st_size) < 0)
            rc = nas_set_err(err, NAS_ENOMEM, "weights: index of %s", w->dir);
    }
    closedir(d);
    w->st.archs_disk = (int64_t)w->n_disk;
    return rc;
}

/* Validation first, then the directory (created once, mode 0700: weights
 * are the campaign's work product), then the scan of what is already
 * there. */
int nas_weights_create(nas_weights **out, const nas_weights_config *cfg, char *err) {
    if (!cfg || cfg->memory_budget < 0)
        return nas_set_err(err, NAS_EINVAL, "weights: the memory budget must be >= 0");
    if (cfg->dir && strlen(cfg->dir) >= NAS_WEIGHTS_DIR_MAX)
        return nas_set_err(err, NAS_EINVAL, "weights: directory path too long");
    nas_weights *w = nas_calloc(1, sizeof *w);
    if (!w) return nas_set_err(err, NAS_ENOMEM, "weights: out of memory");
    w->budget = cfg->memory_budget;
    w->store = cfg->store;
    w->loop = cfg->loop;
    int rc = NAS_OK;
    if (cfg->dir && cfg->dir[0]) {
        snprintf(w->dir, sizeof w->dir, "%s", cfg->dir);
        if (mkdir(w->dir, 0700) != 0 && errno != EEXIST) {
            rc = nas_set_err(err, NAS_EIO, "weights: mkdir %s: %s", w->dir, strerror(errno));
            goto fail;
        }
        if ((rc = scan_dir(w, err)) < 0) goto fail;
        if (w->n_disk)
            nas_info("weights: %zu architectures on disk in %s (%.1f MB)", w->n_disk, w->dir,
                     (double)w->st.bytes_disk / 1e6);
    }
    *out = w;
    return NAS_OK;
fail:
    nas_weights_destroy(&w);
    return rc;
}

/* Memory only: files stay for the next master. */
void nas_weights_destroy(nas_weights **wp) {
    if (!wp || !*wp) return;
    nas_weights *w = *wp;
    nas_weights_wait(w);
    for (size_t i = 0; i < w->n_mem; i++)
        mem_entry_free(&w->mem[i]);
    nas_free(w->mem);
    nas_free(w->disk);
    nas_free(w);
    *wp = NULL;
}

// ---- memory budget ---------------------------------------------------------------------

/* Evict least recently used architectures until memory is within the
 * budget, sparing `keep` (the one just put or loaded).  Evicting is free:
 * the file was written when the weights arrived.  Without a directory the
 * evicted weights are gone, which is what a memory-only store means. */
static void enforce_budget(nas_weights *w, uint64_t keep) {
    while (w->st.bytes_memory > w->budget) {
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < w->n_mem; i++)
            if (w->mem[i].arch != keep &&
                (victim == SIZE_MAX || w->mem[i].stamp < w->mem[victim].stamp))
                victim = i;
        if (victim == SIZE_MAX) break; /* only `keep` is left */
        nas_debug("weights: evict %016" PRIx64 " (%.2f MB) from memory", w->mem[victim].arch,
                  (double)w->mem[victim].man.total_bytes / 1e6);
        mem_remove(w, victim);
        w->st.evictions++;
    }
    w->st.archs_memory = (int64_t)w->n_mem;
}

/* Take ownership of (man, data) as architecture arch's memory entry,
 * replacing an older one. */
static int mem_insert(nas_weights *w, uint64_t arch, nas_wire_weights_msg *man, uint8_t *data,
                      void *zmsg) {
    mem_entry *e = mem_find(w, arch);
    if (e) {
        w->st.bytes_memory -= (int64_t)e->man.total_bytes;
        mem_entry_free(e);
    } else {
        if (grow((void **)&w->mem, &w->cap_mem, w->n_mem, sizeof *w->mem) < 0) return NAS_ENOMEM;
        e = &w->mem[w->n_mem++];
    }
    e->arch = arch;
    e->man = *man;
    memset(man, 0, sizeof *man);
    e->data = data;
    e->zmsg = zmsg;
    e->stamp = ++w->clock;
    w->st.bytes_memory += (int64_t)e->man.total_bytes;
    enforce_budget(w, arch);
    return NAS_OK;
}

// ---- files -------------------------------------------------------------------------------

/* Copy a manifest (names duplicated) so the store owns its own. */
/* A put from a caller's manifest copies it; a put from a packet adopts it
 * (put_packet), so this is the only place names are duplicated. */
static int manifest_copy(nas_wire_weights_msg *dst, const nas_wire_weights_msg *src) {
    nas_wire_weights_msg_init(dst, NAS_MSG_WEIGHTS_REPLY);
    dst->found = 1;
    dst->total_bytes = src->total_bytes;
    dst->checksum_kind = src->checksum_kind;
    dst->tensors = nas_calloc(src->n ? src->n : 1, sizeof *dst->tensors);
    if (!dst->tensors) return NAS_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        dst->tensors[i] = src->tensors[i];
        dst->tensors[i].name = nas_strdup(src->tensors[i].name);
        dst->n = i + 1;
        if (!dst->tensors[i].name) return NAS_ENOMEM;
    }
    return NAS_OK;
}

/* The checksums ride in the file's metadata as one hex list in tensor
 * order, with the function that made them ("checksum_kind"), so a file
 * damaged on disk is caught when it is read back.  The stored checksums
 * are the pushed ones: no pass over the data here. */
static int write_file(nas_weights *w, uint64_t arch, const nas_wire_weights_msg *man,
                      const uint8_t *data, int64_t *bytes, char *err) {
    nas_safetensors_tensor *t = nas_calloc(man->n ? man->n : 1, sizeof *t);
    char *sums = nas_malloc(man->n * 17 + 1);
    int rc = NAS_OK;
    if (!t || !sums) {
        rc = nas_set_err(err, NAS_ENOMEM, "weights: file of %016" PRIx64, arch);
        goto done;
    }
    sums[0] = 0;
    for (size_t i = 0; i < man->n; i++) {
        t[i].name = man->tensors[i].name;
        t[i].ndim = man->tensors[i].ndim;
        memcpy(t[i].shape, man->tensors[i].shape, sizeof t[i].shape);
        t[i].data = (const float *)(const void *)(data + man->tensors[i].offset);
        snprintf(sums + 17 * i, 18, "%016" PRIx64 "%s", man->tensors[i].checksum,
                 i + 1 < man->n ? "," : "");
    }
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, arch);
    nas_safetensors_meta meta[3] = {
        {"arch", hash},
        {"checksums", sums},
        {"checksum_kind", nas_wire_weights_checksum_name(man->checksum_kind)}};
    char path[NAS_WEIGHTS_PATH_MAX];
    file_path(w, arch, path, sizeof path);
    rc = nas_safetensors_save(path, t, man->n, meta, 3, err);
    if (rc == NAS_OK) {
        struct stat sb;
        *bytes = stat(path, &sb) == 0 ? (int64_t)sb.st_size : (int64_t)man->total_bytes;
    }
done:
    nas_free(t);
    nas_free(sums);
    return rc;
}

/* Load arch's file into a fresh manifest + aligned buffer, checking every
 * tensor against the checksums written with it.  A file without
 * "checksum_kind" was written before XXH3 and holds FNV4 checksums: it is
 * verified with those and served with them (the manifest keeps the kind),
 * so nothing on disk needs rewriting. */
static int read_file(nas_weights *w, uint64_t arch, nas_wire_weights_msg *man, uint8_t **data,
                     char *err) {
    char path[NAS_WEIGHTS_PATH_MAX];
    file_path(w, arch, path, sizeof path);
    nas_safetensors *st = NULL;
    int rc = nas_safetensors_load(path, &st, err);
    if (rc < 0) return rc;
    uint8_t *buf = NULL;
    nas_safetensors_tensor *t = NULL;
    uint64_t *want = NULL;
    nas_wire_weights_msg_init(man, NAS_MSG_WEIGHTS_REPLY);
    const char *sums = nas_safetensors_meta_get(st, "checksums");
    if (!sums || strlen(sums) != (st->count ? st->count * 17 - 1 : 0)) {
        rc = nas_set_err(err, NAS_EFORMAT, "weights: %s lacks its checksums", path);
        goto fail;
    }
    const char *kind_name = nas_safetensors_meta_get(st, "checksum_kind");
    int kind = kind_name ? nas_wire_weights_checksum_parse(kind_name) : NAS_CHECKSUM_FNV4;
    if (kind < 0) {
        rc = nas_set_err(err, NAS_EFORMAT, "weights: %s: unknown checksum_kind '%.32s'", path,
                         kind_name);
        goto fail;
    }
    man->checksum_kind = kind;
    size_t total = 0;
    for (size_t i = 0; i < st->count; i++)
        total += (size_t)nas_safetensors_numel(&st->tensors[i]) * sizeof(float);
    buf = nas_aligned_alloc(total ? total : 64);
    t = nas_calloc(st->count ? st->count : 1, sizeof *t);
    want = nas_calloc(st->count ? st->count : 1, sizeof *want);
    if (!buf || !t || !want) {
        rc = nas_set_err(err, NAS_ENOMEM, "weights: %zu bytes for %s", total, path);
        goto fail;
    }
    size_t at = 0;
    for (size_t i = 0; i < st->count; i++) {
        size_t nb = (size_t)nas_safetensors_numel(&st->tensors[i]) * sizeof(float);
        memcpy(buf + at, st->tensors[i].data, nb);
        t[i] = st->tensors[i];
        t[i].data = (const float *)(const void *)(buf + at);
        want[i] = strtoull(sums + 17 * i, NULL, 16);
        at += nb;
    }
    /* The manifest takes the stored checksums as they are; the same
     * verify() every receiver uses then checks the bytes against them. */
    if ((rc = nas_wire_weights_manifest(man, t, st->count, buf, want, err)) < 0) goto fail;
    for (size_t i = 0; i < st->count; i++) {
        const nas_wire_weights_tensor *mt = &man->tensors[i];
        if (!nas_wire_weights_verify(kind, buf + mt->offset, (size_t)mt->nbytes, mt->checksum)) {
            rc = nas_set_err(err, NAS_EFORMAT, "weights: %s: tensor '%s' fails its %s checksum",
                             path, mt->name, nas_wire_weights_checksum_name(kind));
            goto fail;
        }
    }
    man->type = NAS_MSG_WEIGHTS_REPLY;
    nas_free(t);
    nas_free(want);
    nas_safetensors_destroy(&st);
    *data = buf;
    return NAS_OK;
fail:
    nas_wire_weights_msg_fini(man);
    nas_aligned_free(buf);
    nas_free(t);
    nas_free(want);
    nas_safetensors_destroy(&st);
    return rc;
}

// ---- put / get / drop --------------------------------------------------------------------

/* Keep (man, data, zmsg), all owned by the caller until this call, which
 * takes them whatever happens.  Disk and index first: if either fails,
 * memory has not changed and the pusher is told, so no weights exist that
 * a restart would lose. */
static int put_owned(nas_weights *w, uint64_t arch, nas_wire_weights_msg *man, uint8_t *data,
                     void *zmsg, int64_t now_ms, char *err) {
    int rc = NAS_OK;
    if (job_find(w, arch)) {
        rc = nas_set_err(err, NAS_ESTATE,
                         "weights %016" PRIx64 ": a write of it is still pending; a synchronous "
                         "put would be overtaken by it",
                         arch);
        goto fail;
    }
    if (w->dir[0]) {
        int64_t bytes = 0;
        char path[NAS_WEIGHTS_PATH_MAX];
        file_path(w, arch, path, sizeof path);
        if ((rc = write_file(w, arch, man, data, &bytes, err)) < 0) goto fail;
        if (w->store &&
            (rc = nas_store_weights_put(w->store, arch, path, bytes, now_ms, err)) < 0) {
            unlink(path);
            goto fail;
        }
        if ((rc = disk_set(w, arch, bytes)) < 0) {
            nas_set_err(err, rc, "weights: out of memory");
            goto fail;
        }
        w->st.archs_disk = (int64_t)w->n_disk;
    }
    if ((rc = mem_insert(w, arch, man, data, zmsg)) < 0) {
        nas_set_err(err, rc, "weights: out of memory");
        goto fail;
    }
    w->st.puts++;
    return NAS_OK;
fail:
    nas_wire_weights_msg_fini(man);
    data_free(data, zmsg);
    return rc;
}

int nas_weights_put(nas_weights *w, uint64_t arch, const nas_wire_weights_msg *manifest,
                    const void *data, int64_t now_ms, char *err) {
    if (!manifest || manifest->n == 0 || (manifest->total_bytes && !data))
        return nas_set_err(err, NAS_EINVAL, "weights %016" PRIx64 ": no tensors to keep", arch);
    nas_wire_weights_msg man;
    uint8_t *buf = nas_aligned_alloc(manifest->total_bytes ? manifest->total_bytes : 64);
    if (!buf || manifest_copy(&man, manifest) < 0) {
        if (buf) nas_wire_weights_msg_fini(&man);
        nas_aligned_free(buf);
        return nas_set_err(err, NAS_ENOMEM, "weights %016" PRIx64 ": %.2f MB", arch,
                           (double)manifest->total_bytes / 1e6);
    }
    memcpy(buf, data, manifest->total_bytes);
    return put_owned(w, arch, &man, buf, NULL, now_ms, err);
}

/* The received frame becomes the store's buffer: a push is copied once,
 * by the kernel into ZeroMQ's message, and never again. */
int nas_weights_put_packet(nas_weights *w, nas_wire_weights_packet *pkt, int64_t now_ms,
                           char *err) {
    nas_wire_weights_msg *m = &pkt->msg;
    if (m->type != NAS_MSG_WEIGHTS_PUSH || m->n == 0 || !pkt->frame)
        return nas_set_err(err, NAS_EINVAL, "weights %016" PRIx64 ": no tensors to keep", m->arch);
    uint64_t arch = m->arch;
    nas_wire_weights_msg man = *m;
    memset(m, 0, sizeof *m);
    man.type = NAS_MSG_WEIGHTS_REPLY;
    void *zmsg = pkt->frame;
    uint8_t *data = (uint8_t *)pkt->data;
    pkt->frame = NULL;
    pkt->data = NULL;
    return put_owned(w, arch, &man, data, zmsg, now_ms, err);
}

// ---- asynchronous writes -------------------------------------------------------------------

/* Thread pool: the file only.  The job's buffer is read, never written,
 * and w->dir is fixed at creation, so nothing here races with the loop. */
static void job_work(uv_work_t *req) {
    wjob *j = req->data;
    j->rc = write_file(j->w, j->arch, &j->man, j->data, &j->bytes, j->err);
}

static void job_start(nas_weights *w);

/* Loop thread: the rename is done (or failed).  Index row, then memory,
 * then the pusher is told; the next write starts last so that its
 * completion cannot run before this one's effects. */
static void job_done(uv_work_t *req, int status) {
    wjob *j = req->data;
    nas_weights *w = j->w;
    (void)status; /* jobs are never cancelled: shutdown waits for them */
    w->writing = 0;
    w->q_head = j->next;
    if (!w->q_head) w->q_tail = NULL;
    w->st.writes_pending--;
    w->st.bytes_memory -= (int64_t)j->man.total_bytes; /* counted again if it enters mem */
    char path[NAS_WEIGHTS_PATH_MAX];
    file_path(w, j->arch, path, sizeof path);
    int rc = j->rc;
    if (rc == NAS_OK && j->dropped) {
        /* Dropped while it was written: the file must not outlive it. */
        if (unlink(path) != 0 && errno != ENOENT)
            nas_warn("weights: unlink %s: %s", path, strerror(errno));
        nas_wire_weights_msg_fini(&j->man);
        data_free(j->data, j->zmsg);
    } else if (rc == NAS_OK) {
        if (w->store &&
            (rc = nas_store_weights_put(w->store, j->arch, path, j->bytes, j->now_ms, j->err)) < 0)
            unlink(path);
        else if ((rc = disk_set(w, j->arch, j->bytes)) < 0)
            nas_set_err(j->err, rc, "weights: out of memory");
        w->st.archs_disk = (int64_t)w->n_disk;
        if (rc == NAS_OK && (rc = mem_insert(w, j->arch, &j->man, j->data, j->zmsg)) < 0)
            nas_set_err(j->err, rc, "weights: out of memory");
        if (rc == NAS_OK) {
            w->st.puts++;
        } else {
            nas_wire_weights_msg_fini(&j->man);
            data_free(j->data, j->zmsg);
        }
    } else {
        nas_wire_weights_msg_fini(&j->man);
        data_free(j->data, j->zmsg);
    }
    if (j->done) j->done(j->ctx, j->arch, rc, rc == NAS_OK ? "stored" : j->err);
    nas_free(j);
    job_start(w);
}

/* One write at a time, oldest first: the order of two pushes of one
 * architecture is the order their files are renamed in. */
static void job_start(nas_weights *w) {
    if (w->writing || !w->q_head) return;
    wjob *j = w->q_head;
    j->req.data = j;
    w->writing = 1;
    if (uv_queue_work(w->loop, &j->req, job_work, job_done) != 0) {
        /* Only an invalid loop makes this fail: write here instead. */
        job_work(&j->req);
        job_done(&j->req, 0);
    }
}

int nas_weights_put_packet_async(nas_weights *w, nas_wire_weights_packet *pkt, int64_t now_ms,
                                 nas_weights_done_fn done, void *ctx, char *err) {
    if (!w->loop || !w->dir[0]) return nas_weights_put_packet(w, pkt, now_ms, err);
    nas_wire_weights_msg *m = &pkt->msg;
    if (m->type != NAS_MSG_WEIGHTS_PUSH || m->n == 0 || !pkt->frame)
        return nas_set_err(err, NAS_EINVAL, "weights %016" PRIx64 ": no tensors to keep", m->arch);
    wjob *j = nas_calloc(1, sizeof *j);
    if (!j) return nas_set_err(err, NAS_ENOMEM, "weights %016" PRIx64 ": write job", m->arch);
    j->w = w;
    j->arch = m->arch;
    j->man = *m;
    memset(m, 0, sizeof *m);
    j->man.type = NAS_MSG_WEIGHTS_REPLY;
    j->zmsg = pkt->frame;
    j->data = (uint8_t *)pkt->data;
    pkt->frame = NULL;
    pkt->data = NULL;
    j->now_ms = now_ms;
    j->done = done;
    j->ctx = ctx;
    if (w->q_tail)
        w->q_tail->next = j;
    else
        w->q_head = j;
    w->q_tail = j;
    w->st.writes_pending++;
    /* The buffer is in memory from now on: it counts, and older entries
     * make room for it as they would for a synchronous put. */
    w->st.bytes_memory += (int64_t)j->man.total_bytes;
    enforce_budget(w, j->arch);
    job_start(w);
    return 1;
}

void nas_weights_wait(nas_weights *w) {
    while (w && w->q_head && w->loop)
        uv_run(w->loop, UV_RUN_ONCE);
}

/* The view borrows the entry: valid until the next call that may evict. */
static void fill_view(const mem_entry *e, nas_weights_view *v) {
    v->arch = e->arch;
    v->n = e->man.n;
    v->tensors = e->man.tensors;
    v->checksum_kind = e->man.checksum_kind;
    v->data = e->data;
    v->total_bytes = e->man.total_bytes;
}

/* Memory first (a hit, and the entry becomes the most recent), then the
 * file (a miss that loads and may evict others), else not found.  The
 * file is verified against its checksums on the way in. */
int nas_weights_get(nas_weights *w, uint64_t arch, nas_weights_view *view, char *err) {
    memset(view, 0, sizeof *view);
    wjob *j = job_find(w, arch);
    if (j) {
        /* Being written: served from the job's buffer, which the writer
         * thread only reads. */
        w->st.hits++;
        view->arch = arch;
        view->n = j->man.n;
        view->tensors = j->man.tensors;
        view->checksum_kind = j->man.checksum_kind;
        view->data = j->data;
        view->total_bytes = j->man.total_bytes;
        return NAS_OK;
    }
    mem_entry *e = mem_find(w, arch);
    if (e) {
        w->st.hits++;
        e->stamp = ++w->clock;
        fill_view(e, view);
        return NAS_OK;
    }
    w->st.misses++;
    if (!w->dir[0] || !disk_find(w, arch)) {
        w->st.not_found++;
        return nas_set_err(err, NAS_ENOTFOUND, "weights: no weights for architecture %016" PRIx64,
                           arch);
    }
    nas_wire_weights_msg man;
    uint8_t *data = NULL;
    int rc = read_file(w, arch, &man, &data, err);
    if (rc < 0) {
        /* A damaged or vanished file is as good as none: the child trains
         * fresh.  Say which file, so an operator can look. */
        nas_warn("%s", err ? err : "weights: unreadable file");
        w->st.not_found++;
        return rc == NAS_ENOMEM ? rc : NAS_ENOTFOUND;
    }
    if ((rc = mem_insert(w, arch, &man, data, NULL)) < 0) {
        nas_wire_weights_msg_fini(&man);
        nas_aligned_free(data);
        return nas_set_err(err, rc, "weights: out of memory");
    }
    w->st.disk_reads++;
    fill_view(mem_find(w, arch), view);
    return NAS_OK;
}

int nas_weights_has(const nas_weights *w, uint64_t arch) {
    return job_find(w, arch) || mem_find(w, arch) || disk_find(w, arch);
}

/* Memory, file, index, in that order: if the unlink fails the index row
 * stays and points at a file that still exists, which is consistent. */
int nas_weights_drop(nas_weights *w, uint64_t arch, char *err) {
    int held = 0;
    /* Pending writes finish, then remove their file (job_done). */
    for (wjob *j = w->q_head; j; j = j->next)
        if (j->arch == arch && !j->dropped) {
            j->dropped = 1;
            held = 1;
        }
    for (size_t i = 0; i < w->n_mem; i++)
        if (w->mem[i].arch == arch) {
            mem_remove(w, i);
            held = 1;
            break;
        }
    disk_entry *d = disk_find(w, arch);
    if (d) {
        char path[NAS_WEIGHTS_PATH_MAX];
        file_path(w, arch, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            return nas_set_err(err, NAS_EIO, "weights: unlink %s: %s", path, strerror(errno));
        w->st.bytes_disk -= d->bytes;
        *d = w->disk[--w->n_disk];
        held = 1;
    }
    if (held && w->store) {
        int rc = nas_store_weights_drop(w->store, arch, err);
        if (rc < 0) return rc;
    }
    w->st.archs_memory = (int64_t)w->n_mem;
    w->st.archs_disk = (int64_t)w->n_disk;
    if (held) w->st.drops++;
    return held;
}

/* Every held architecture once: files, plus memory entries of a store
 * without a directory. */
size_t nas_weights_list(const nas_weights *w, uint64_t *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < w->n_disk; i++, k++)
        if (k < cap) out[k] = w->disk[i].arch;
    /* Memory-only entries (no directory) are not in `disk`. */
    for (size_t i = 0; i < w->n_mem; i++) {
        if (disk_find(w, w->mem[i].arch)) continue;
        if (k < cap) out[k] = w->mem[i].arch;
        k++;
    }
    /* Architectures whose first file is still being written. */
    for (wjob *j = w->q_head; j; j = j->next) {
        if (j->dropped || disk_find(w, j->arch) || mem_find(w, j->arch) ||
            job_find(w, j->arch) != j)
            continue;
        if (k < cap) out[k] = j->arch;
        k++;
    }
    return k;
}

/* A snapshot first: dropping changes the arrays being walked. */
int nas_weights_sweep(nas_weights *w, int (*keep)(void *ctx, uint64_t arch), void *ctx, char *err) {
    size_t n = nas_weights_list(w, NULL, 0);
    if (n == 0) return 0;
    uint64_t *all = nas_malloc(n * sizeof *all);
    if (!all) return nas_set_err(err, NAS_ENOMEM, "weights: sweep of %zu architectures", n);
    nas_weights_list(w, all, n);
    int dropped = 0, rc = NAS_OK;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        if (keep(ctx, all[i])) continue;
        rc = nas_weights_drop(w, all[i], err);
        if (rc > 0) dropped++;
    }
    nas_free(all);
    if (dropped)
        nas_debug("weights: dropped %d architectures that can no longer be parents", dropped);
    return rc < 0 ? rc : dropped;
}

nas_log_limit *nas__weights_peer_log(nas_weights *w) {
    return &w->peer_log;
}

void nas_weights_stats_get(const nas_weights *w, nas_weights_stats *out) {
    *out = w->st;
}

/* Integers only, so the status document needs no float formatting and
 * nasctl prints exactly what the store counted. */
void nas_weights_stats_json(const nas_weights *w, char *buf, size_t cap) {
    const nas_weights_stats *s = &w->st;
    snprintf(buf, cap,
             "{\"live\":true,\"bytes_memory\":%" PRId64 ",\"bytes_disk\":%" PRId64
             ",\"budget\":%" PRId64 ",\"archs_memory\":%" PRId64 ",\"archs_disk\":%" PRId64
             ",\"hits\":%" PRId64 ",\"misses\":%" PRId64 ",\"disk_reads\":%" PRId64
             ",\"not_found\":%" PRId64 ",\"puts\":%" PRId64 ",\"drops\":%" PRId64
             ",\"evictions\":%" PRId64 ",\"writes_pending\":%" PRId64 "}",
             s->bytes_memory, s->bytes_disk, w->budget, s->archs_memory, s->archs_disk, s->hits,
             s->misses, s->disk_reads, s->not_found, s->puts, s->drops, s->evictions,
             s->writes_pending);
}
