/*
 * presets.c - cells from the literature, written in our text form.
 *
 * Sources (the cells as drawn in the papers' figures; input 0 = h[i-2],
 * input 1 = h[i-1], j+2 = block j; a block's halves are listed left then
 * right as in the figure):
 *
 *  nasnet_a     Zoph, Vasudevan, Shlens, Le, "Learning Transferable
 *               Architectures for Scalable Image Recognition", CVPR 2018,
 *               fig. 4 (NASNet-A normal and reduction cells).  Normal: five
 *               blocks on h[i-1]/h[i-2] only, all concatenated.  Reduction:
 *               blocks 3 and 4 read blocks 1/0 and 0, so by our output rule
 *               the cell concatenates blocks 2, 3, 4, as in the figure.
 *  amoebanet_a  Real, Aggarwal, Huang, Le, "Regularized Evolution for Image
 *               Classifier Architecture Search", AAAI 2019, fig. 4
 *               (AmoebaNet-A).  Outputs by our rule: normal blocks 2,3,4,
 *               reduction blocks 1,2,4, which is what the figure concatenates.
 *  pnasnet5     Liu et al., "Progressive Neural Architecture Search", ECCV
 *               2018, fig. 1 (PNASNet-5, one cell for both roles: shared).
 *               The paper concatenates all five blocks; our architecture rule
 *               leaves out block 2, which block 3 reads (docs/GENOME.md).
 *  resnet       not from a search: a ResNet basic block as a cell.  Block 0
 *               is ReLU-conv3x3-BN on h[i-1] (its other half is `zero`),
 *               block 1 is ReLU-conv3x3-BN on block 0 plus h[i-1] itself:
 *               y = x + F(x).  In the reduction cell the convolution on
 *               h[i-1] strides and the identity becomes a factorized
 *               reduction, the usual projection shortcut.
 *  nb201_resnet the same residual block in the NAS-Bench-201 space:
 *               node 1 = conv3x3(x), node 2 = conv3x3(node 1), output =
 *               x + node 2 (our own writing, not a cell from the paper).
 *
 *  efficientnet_b0  Tan & Le, "EfficientNet: Rethinking Model Scaling for
 *               Convolutional Neural Networks", ICML 2019, table 1 (MBConv
 *               space).  Our stem has stride 1, not 2 (small images).
 *  efficientnetv2_s Tan & Le, "EfficientNetV2: Smaller Models and Faster
 *               Training", ICML 2021, table 4 (Fused-MBConv in the first
 *               stages; the same stride-1 stem).
 *
 * The cell texts were cross-checked against the transcription of the same
 * figures in the DARTS code base's genotypes (Liu, Simonyan, Yang 2019).
 */
#include "common/err.h"
#include "common/genome.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *text;
} presets[] = {
    {"nasnet_a",
     "n=sep5x5:1+sep3x3:0,sep5x5:0+sep3x3:0,avg3x3:1+id:0,avg3x3:0+avg3x3:0,sep3x3:1+id:1 "
     "r=sep5x5:1+sep7x7:0,max3x3:1+sep7x7:0,avg3x3:1+sep5x5:0,id:3+avg3x3:2,sep3x3:2+max3x3:1"},
    {"amoebanet_a",
     "n=avg3x3:0+max3x3:1,sep3x3:0+sep5x5:2,sep3x3:0+avg3x3:3,sep3x3:1+id:1,id:0+avg3x3:1 "
     "r=avg3x3:0+sep3x3:1,max3x3:0+sep7x7:2,sep7x7:0+avg3x3:1,max3x3:0+max3x3:1,"
     "conv1x7_7x1:0+sep3x3:5"},
    {"pnasnet5",
     "c=sep5x5:0+max3x3:0,sep7x7:1+max3x3:1,sep5x5:1+sep3x3:1,sep3x3:4+max3x3:1,sep3x3:0+id:1"},
    {"resnet", "c=conv3x3:1+zero:0,conv3x3:2+id:1"},
    {"nb201_resnet",
     "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"},
    {"efficientnet_b0",
     "mbconv=stem32,mb3x1se-16r1s1,mb3x6se-24r2s2,mb5x6se-40r2s2,mb3x6se-80r3s2,"
     "mb5x6se-112r3s1,mb5x6se-192r4s2,mb3x6se-320r1s1,head1280"},
    {"efficientnetv2_s",
     "mbconv=stem24,fu3x1-24r2s1,fu3x4-48r4s2,fu3x4-64r4s2,mb3x4se-128r6s2,mb3x6se-160r9s1,"
     "mb3x6se-256r15s2,head1280"},
};

/* Kept in the table's order; a test checks that every name resolves. */
static const char *const preset_names[] = {"nasnet_a",        "amoebanet_a",  "pnasnet5",
                                           "resnet",          "nb201_resnet", "efficientnet_b0",
                                           "efficientnetv2_s", NULL};

const char *const *nas_genome_preset_names(void) {
    return preset_names;
}

int nas_genome_preset(const char *name, nas_genome *out, char *err) {
    if (name == NULL || out == NULL) return nas_set_err(err, NAS_EINVAL, "preset: NULL argument");
    for (size_t i = 0; i < NAS_ARRAY_LEN(presets); i++) {
        if (strcmp(presets[i].name, name) != 0) continue;
        char perr[NAS_ERR_LEN];
        int rc = nas_genome_parse(presets[i].text, strlen(presets[i].text), out, perr);
        /* The table is ours: a preset that does not parse is a bug. */
        NAS_ASSERT(rc == NAS_OK);
        return NAS_OK;
    }
    char known[128] = "";
    for (size_t i = 0; preset_names[i] != NULL; i++) {
        if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, preset_names[i], sizeof known - strlen(known) - 1);
    }
    return nas_set_err(err, NAS_ENOTFOUND, "unknown preset '%.40s' (known: %s)", name, known);
}
