/*
 * nasctl_scale.h - `nasctl scale`: compound scaling of an MBConv genome
 * (master/nasctl_scale.c, docs/GENOME.md s9).
 */
#ifndef NAS_NASCTL_SCALE_H
#define NAS_NASCTL_SCALE_H

/* The subcommand's entry point (argv[0] is "scale"); returns the exit status. */
int nas_nasctl_scale(int argc, char **argv);

#endif
