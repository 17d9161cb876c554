/*
 * nas-worker - joins a nas-master and trains the architectures it is sent
 *
 * Placeholder entry point: the feature behind this binary lands with the
 * issue named in usage(); until then it explains itself and exits 2.
 */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: nas-worker [--help]\n"
            "\n"
            "joins a nas-master and trains the architectures it is sent\n"
            "\n"
            "Not available in this build yet: the distributed runtime.\n");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    usage(stderr);
    return 2;
}
