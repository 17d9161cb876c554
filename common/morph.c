/*
 * morph.c - network morphisms on the chain space (see morph.h).
 *
 * Every output h[j] of the chain has a channel map: child channel v
 * stands for parent channel g[v] (g[v] = v for v below the parent's
 * width, a random old channel above it), and cnt[c] copies of parent
 * channel c exist.  A tensor is then rebuilt from the parent's by one rule:
 *   W'[o][i][..] = W[gout[o]][gin[i]][..] / cnt_in[gin[i]]
 * where the output map replicates (conv, BN, depthwise) and the input map
 * replicates and divides (what reads h[j]); the head's output map is the
 * identity.  A pool or id layer passes its input's map on; an inserted
 * identity layer does too.
 */
#include "common/morph.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/genome_internal.h"
#include "common/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define BN_EPS 1e-5f /* nas_net_bn's eps (net.h) */

/* Channel map of one h[j]. */
typedef struct chmap {
    int pc, cc; /* parent and child channels */
    int *g;     /* cc entries: the parent channel each child channel stands for */
    int *cnt;   /* pc entries: copies of each parent channel */
} chmap;

typedef struct morph_ctx {
    nas_net *net;
    const nas_safetensors_tensor *src;
    size_t n;
    float noise;
    nas_rng rng;
    nas_morph_stats ms;
    int from_parent; /* tensors set from the parent */
    char *err;
} morph_ctx;

static float rd(const float *p, size_t i) {
    float v;
    memcpy(&v, (const char *)p + i * sizeof(float), sizeof v);
    return v;
}

static const nas_safetensors_tensor *find_src(const morph_ctx *m, const char *name) {
    for (size_t i = 0; i < m->n; i++)
        if (m->src[i].name != NULL && strcmp(m->src[i].name, name) == 0) return &m->src[i];
    return NULL;
}

static int64_t numel(const nas_safetensors_tensor *t) {
    int64_t k = 1;
    for (int d = 0; d < t->ndim; d++)
        k *= t->shape[d];
    return k;
}

/* Fill a map for pc parent and cc child channels; new channels copy
 * random old ones.  pc < cc only by widening; pc > cc (a plain narrowing
 * mutation) keeps the first cc channels. */
static int map_init(chmap *m, int pc, int cc, nas_rng *rng) {
    m->pc = pc;
    m->cc = cc;
    m->g = nas_calloc((size_t)cc, sizeof(int));
    m->cnt = nas_calloc((size_t)(pc > 0 ? pc : 1), sizeof(int));
    if (m->g == NULL || m->cnt == NULL) return NAS_ENOMEM;
    for (int v = 0; v < cc; v++) {
        m->g[v] = v < pc ? v : (int)nas_rng_below(rng, (uint32_t)pc);
        m->cnt[m->g[v]]++;
    }
    return NAS_OK;
}

static void map_fini(chmap *m) {
    nas_free(m->g);
    nas_free(m->cnt);
    memset(m, 0, sizeof *m);
}

/* Rebuild child tensor `name` from the parent's through the maps (out:
 * dimension 0, NULL = identity; in: dimension 1, NULL = none).  Returns 1
 * if set, 0 if the parent lacks it or its shape does not fit (left as
 * initialised), or a negative error. */
static int transfer(morph_ctx *m, const char *name, const chmap *out, const chmap *in) {
    const nas_param *p = nas_net_param_find(m->net, name);
    if (p == NULL) return nas_set_err(m->err, NAS_EINVAL, "morph: the child has no %s", name);
    const nas_safetensors_tensor *s = find_src(m, name);
    if (s == NULL || s->ndim != p->ndim) return 0;
    int po = out ? out->pc : p->shape[0], pi = in ? in->pc : (p->ndim > 1 ? p->shape[1] : 1);
    if (s->shape[0] != po || (p->ndim > 1 && s->shape[1] != pi)) return 0;
    size_t inner = 1;
    for (int d = 2; d < p->ndim; d++) {
        if (s->shape[d] != p->shape[d]) return 0;
        inner *= (size_t)p->shape[d];
    }
    if (s->data == NULL || numel(s) != (int64_t)po * pi * (int64_t)inner)
        return nas_set_err(m->err, NAS_EINVAL, "morph: parent tensor %s has no data", name);
    int co = p->shape[0], ci = p->ndim > 1 ? p->shape[1] : 1;
    int same = co == po && ci == pi;
    for (int o = 0; o < co; o++) {
        int so = out ? out->g[o] : o;
        for (int i = 0; i < ci; i++) {
            int si = in ? in->g[i] : i;
            float div = in ? (float)in->cnt[si] : 1.0f;
            for (size_t k = 0; k < inner; k++)
                p->data[((size_t)o * (size_t)ci + (size_t)i) * inner + k] =
                    rd(s->data, ((size_t)so * (size_t)pi + (size_t)si) * inner + k) / div;
        }
    }
    /* Symmetry breaking: zero-sum noise over each group of copies of one
     * input channel, per output channel and kernel tap. */
    if (in && m->noise > 0) {
        for (int c = 0; c < in->pc; c++) {
            if (in->cnt[c] < 2) continue;
            for (int o = 0; o < co; o++)
                for (size_t k = 0; k < inner; k++) {
                    float e[64], mean = 0;
                    int members[64], nm = 0;
                    for (int i = 0; i < ci && nm < 64; i++)
                        if (in->g[i] == c) members[nm++] = i;
                    for (int j = 0; j < nm; j++) {
                        float w =
                            p->data[((size_t)o * (size_t)ci + (size_t)members[j]) * inner + k];
                        e[j] = m->noise * fabsf(w) * nas_rng_normal(&m->rng);
                        mean += e[j] / (float)nm;
                    }
                    for (int j = 0; j < nm; j++)
                        p->data[((size_t)o * (size_t)ci + (size_t)members[j]) * inner + k] +=
                            e[j] - mean;
                }
        }
    }
    if (same && (!in || in->pc == in->cc) && (!out || out->pc == out->cc))
        m->ms.copied++;
    else
        m->ms.widened++;
    m->from_parent++;
    return 1;
}

/* A BN at path (weight, bias, running_mean, running_var) through map out. */
static int transfer_bn(morph_ctx *m, const char *path, const chmap *out) {
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    int set = 0;
    for (int i = 0; i < 4; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", path, parts[i]);
        int rc = transfer(m, name, out, NULL);
        if (rc < 0) return rc;
        set += rc;
        if (!rc) m->ms.fresh++;
    }
    return set;
}

/* Set a BN to gamma, beta, mean 0, var 1 - eps (the identity when gamma = 1). */
static int bn_const(morph_ctx *m, const char *path, float gamma, float beta) {
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", path, parts[i]);
        const nas_param *p = nas_net_param_find(m->net, name);
        if (p == NULL) return nas_set_err(m->err, NAS_EINVAL, "morph: the child has no %s", name);
        float v = i == 0 ? gamma : i == 1 ? beta : i == 2 ? 0.0f : 1.0f - BN_EPS;
        for (size_t k = 0; k < p->size; k++)
            p->data[k] = v;
    }
    return NAS_OK;
}

/* Count a tensor left fresh unless transfer set it. */
static int conv_or_fresh(morph_ctx *m, const char *name, const chmap *out, const chmap *in) {
    int rc = transfer(m, name, out, in);
    if (rc == 0) m->ms.fresh++;
    return rc;
}

/* One chain layer k (1-based) with maps of its input, output and of every h. */
static int morph_layer(morph_ctx *m, const nas_chain *c, int k, chmap *maps) {
    const nas_chain_layer *l = &c->layers[k - 1];
    char a[96], b[96];
    int rc = 0;
    if (nas_chain_op_has_width(l->op)) {
        int sep = l->op == NAS_CHAIN_SEP3X3 || l->op == NAS_CHAIN_SEP5X5;
        snprintf(b, sizeof b, "L%d/bn", l->id);
        snprintf(a, sizeof a, "L%d/%s/weight", l->id, sep ? "pw" : "conv");
        int inserted = nas_net_param_find(m->net, a) != NULL && find_src(m, a) == NULL &&
                       l->op == NAS_CHAIN_CONV3X3 && maps[k].cc == maps[k - 1].cc;
        if (inserted) { /* Net2DeeperNet: identity kernel and BN */
            const nas_param *p = nas_net_param_find(m->net, a);
            memset(p->data, 0, p->size * sizeof(float));
            for (int o = 0; o < p->shape[0]; o++)
                p->data[((size_t)o * (size_t)p->shape[1] + (size_t)o) * 9 + 4] = 1.0f;
            if ((rc = bn_const(m, b, 1.0f, 0.0f)) < 0) return rc;
            m->ms.identity += 5;
        } else {
            if (sep) {
                snprintf(a, sizeof a, "L%d/dw/weight", l->id);
                if ((rc = conv_or_fresh(m, a, &maps[k - 1], NULL)) < 0) return rc;
                snprintf(a, sizeof a, "L%d/pw/weight", l->id);
            }
            if ((rc = conv_or_fresh(m, a, &maps[k], &maps[k - 1])) < 0) return rc;
            if ((rc = transfer_bn(m, b, &maps[k])) < 0) return rc;
        }
    }
    for (int j = 0; j < k; j++) {
        if (!(l->skips & (1u << j))) continue;
        char src[16];
        if (j == 0)
            snprintf(src, sizeof src, "stem");
        else
            snprintf(src, sizeof src, "%d", c->layers[j - 1].id);
        snprintf(a, sizeof a, "L%d/from%s/conv/weight", l->id, src);
        snprintf(b, sizeof b, "L%d/from%s/bn", l->id, src);
        if (find_src(m, a) == NULL) { /* a new skip adds zeros */
            if ((rc = bn_const(m, b, 0.0f, 0.0f)) < 0) return rc;
            m->ms.zeroed += 4;
            m->ms.fresh++;
            continue;
        }
        if ((rc = conv_or_fresh(m, a, &maps[k], &maps[j])) < 0) return rc;
        if ((rc = transfer_bn(m, b, &maps[k])) < 0) return rc;
    }
    return NAS_OK;
}

/* Parent channels of h[k]: the parent's BN width of a weighted layer it
 * has, else (an inserted layer, pool, id) its input's. */
static int parent_channels(const morph_ctx *m, const nas_chain *c, int k, int prev, int child) {
    const nas_chain_layer *l = &c->layers[k - 1];
    if (!nas_chain_op_has_width(l->op)) return prev;
    char name[64];
    snprintf(name, sizeof name, "L%d/bn/weight", l->id);
    const nas_safetensors_tensor *t = find_src(m, name);
    if (t != NULL && t->ndim == 1 && t->shape[0] > 0 && t->shape[0] <= 65536)
        return (int)t->shape[0];
    return l->op == NAS_CHAIN_CONV3X3 ? prev : child; /* inserted identity, or a fresh layer */
}

int nas_morph_apply(nas_net *net, const nas_genome *child, int F, const nas_safetensors_tensor *src,
                    size_t n, uint64_t seed, float noise, nas_inherit_stats *st,
                    nas_morph_stats *ms, char *err) {
    if (st) memset(st, 0, sizeof *st);
    if (ms) memset(ms, 0, sizeof *ms);
    if (net == NULL || child == NULL || (src == NULL && n > 0))
        return nas_set_err(err, NAS_EINVAL, "morph: NULL argument");
    if (child->space != NAS_SPACE_CHAIN || nas_genome_validate(child, NULL) < 0)
        return nas_set_err(err, NAS_EINVAL, "morph: the child is not a valid chain genome");
    if (nas_net_batch(net) <= 0) return nas_set_err(err, NAS_ESTATE, "morph: net not compiled");
    morph_ctx m = {.net = net, .src = src, .n = n, .noise = noise, .err = err};
    nas_rng_init(&m.rng, seed, 0x6d6f72ULL);
    const nas_chain *c = &child->chain;
    chmap maps[NAS_CHAIN_MAX_LAYERS + 1];
    memset(maps, 0, sizeof maps);
    int units[NAS_CHAIN_MAX_LAYERS + 1], rc = NAS_OK;
    nas__chain_units(c, units);
    for (int k = 0; k <= c->n_layers && rc == NAS_OK; k++) {
        int cc = nas_chain_channels(units[k], F);
        int pc = k == 0 ? cc : parent_channels(&m, c, k, maps[k - 1].pc, cc);
        rc = map_init(&maps[k], pc, cc, &m.rng);
        if (rc < 0 || k == 0) continue;
        /* A pool, an id or an inserted identity layer passes its input's
         * units on as they are: it inherits the input's map. */
        const nas_chain_layer *l = &c->layers[k - 1];
        char name[64];
        snprintf(name, sizeof name, "L%d/bn/weight", l->id);
        int own = nas_chain_op_has_width(l->op) && find_src(&m, name) != NULL;
        if (!own && pc == maps[k - 1].pc && cc == maps[k - 1].cc) {
            memcpy(maps[k].g, maps[k - 1].g, sizeof(int) * (size_t)cc);
            memcpy(maps[k].cnt, maps[k - 1].cnt, sizeof(int) * (size_t)pc);
        }
    }
    if (rc == NAS_OK) {
        rc = conv_or_fresh(&m, "stem/conv/weight", NULL, NULL);
        if (rc >= 0) rc = transfer_bn(&m, "stem/bn", NULL);
    }
    for (int k = 1; k <= c->n_layers && rc >= 0; k++)
        rc = morph_layer(&m, c, k, maps);
    if (rc >= 0) rc = conv_or_fresh(&m, "head/linear/weight", NULL, &maps[c->n_layers]);
    if (rc >= 0) rc = conv_or_fresh(&m, "head/linear/bias", NULL, NULL);
    for (int k = 0; k <= NAS_CHAIN_MAX_LAYERS; k++)
        map_fini(&maps[k]);
    if (rc < 0) return rc;
    if (ms) *ms = m.ms;
    if (st) {
        st->matched = m.from_parent + m.ms.identity + m.ms.zeroed;
        st->missing = m.ms.fresh;
        st->child_tensors = nas_net_param_n(net);
    }
    return m.from_parent;
}

void nas_morph_describe(const nas_morph_stats *ms, char *buf, size_t cap) {
    snprintf(buf, cap, "morph: %d copied, %d widened, %d identity, %d zeroed, %d fresh", ms->copied,
             ms->widened, ms->identity, ms->zeroed, ms->fresh);
}
