/*
 * refnets.c - the fixed reference networks (see refnets.h).
 */
#include "common/refnets.h"

#include <stdio.h>
#include <string.h>

static const char *const NAMES[] = {"small", "small14", "resnet20", NULL};

const char *const *nas_refnet_names(void) { return NAMES; }

int nas_refnet_resolution(const char *name) {
    if (strcmp(name, "small14") == 0) return 14;
    for (int i = 0; NAMES[i]; i++)
        if (strcmp(name, NAMES[i]) == 0) return 28;
    return 0;
}

// conv (no bias, BN follows) + BN + optional ReLU, named path/conv and path/bn.
static int conv_bn(nas_net *net, const char *path, int x, int out_c, int k, int stride, int relu) {
    char sub[192]; /* callers' paths are below 128 bytes */
    snprintf(sub, sizeof sub, "%s/conv", path);
    int y = nas_net_conv(net, sub, x, out_c, k, k, stride, k / 2, 1, 1, 0);
    snprintf(sub, sizeof sub, "%s/bn", path);
    y = nas_net_bn(net, sub, y);
    return relu ? nas_net_relu(net, y) : y;
}

static int build_small(nas_net *net, int classes) {
    int x = nas_net_input(net);
    x = conv_bn(net, "conv1", x, 16, 3, 1, 1);
    x = conv_bn(net, "conv2", x, 32, 3, 2, 1);
    x = conv_bn(net, "conv3", x, 64, 3, 2, 1);
    x = nas_net_gap(net, x);
    return nas_net_linear(net, "fc", x, classes);
}

// Basic residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).
static int basic_block(nas_net *net, const char *path, int x, int out_c, int stride) {
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a", path);
    int y = conv_bn(net, sub, x, out_c, 3, stride, 1);
    snprintf(sub, sizeof sub, "%s/b", path);
    y = conv_bn(net, sub, y, out_c, 3, 1, 0);
    int shortcut = x;
    if (x >= 0 && (stride != 1 || nas_net_shape(net, x).c != out_c)) {
        snprintf(sub, sizeof sub, "%s/proj", path);
        shortcut = conv_bn(net, sub, x, out_c, 1, stride, 0);
    }
    return nas_net_relu(net, nas_net_add(net, y, shortcut));
}

static int build_resnet20(nas_net *net, int classes) {
    int x = conv_bn(net, "stem", nas_net_input(net), 16, 3, 1, 1);
    static const int widths[3] = {16, 32, 64};
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < 3; b++) {
            char path[64];
            snprintf(path, sizeof path, "stage%d/block%d", s + 1, b + 1);
            x = basic_block(net, path, x, widths[s], (s > 0 && b == 0) ? 2 : 1);
        }
    x = nas_net_gap(net, x);
    return nas_net_linear(net, "fc", x, classes);
}

int nas_refnet_build(nas_net *net, const char *name, int classes, int *logits, char *err) {
    int out;
    if (strcmp(name, "small") == 0 || strcmp(name, "small14") == 0)
        out = build_small(net, classes);
    else if (strcmp(name, "resnet20") == 0)
        out = build_resnet20(net, classes);
    else
        return nas_set_err(err, NAS_ENOTFOUND,
                           "unknown reference architecture '%s' (known: small, small14, resnet20)",
                           name);
    if (out < 0) return nas_set_err(err, out, "%s", nas_net_errmsg(net));
    *logits = out;
    return NAS_OK;
}
