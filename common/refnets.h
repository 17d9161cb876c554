/*
 * refnets.h - reference networks selectable by name, used to benchmark the
 * engine against PyTorch and as fixed architectures for nas-train.
 *
 *   small     conv3x3 C->16 +BN+ReLU, conv3x3 16->32 /2 +BN+ReLU,
 *             conv3x3 32->64 /2 +BN+ReLU, GAP, linear 64->classes
 *   small14   the same network, meant for 14x14 inputs
 *   resnet20  stem conv3x3 ->16, 3 stages x 3 basic residual blocks at
 *             16/32/64 channels, 1x1 conv+BN projection shortcut where the
 *             shape changes, GAP, linear
 */
#ifndef NAS_REFNETS_H
#define NAS_REFNETS_H

#include "common/net.h"

/* Build reference network `name` for (in_c, in_h, in_w) images and
 * `classes` outputs into the empty net; *logits receives the output node.
 * Returns NAS_OK, NAS_ENOTFOUND for an unknown name (err lists the known
 * ones), or the builder's error. */
int nas_refnet_build(nas_net *net, const char *name, int classes, int *logits, char *err);

/* The native input side a reference net is meant for (28, or 14 for
 * small14); 0 for an unknown name. */
int nas_refnet_resolution(const char *name);

/* NULL-terminated list of known names. */
const char *const *nas_refnet_names(void);

#endif
