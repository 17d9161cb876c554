/*
 * nas-train - trains one architecture at one fidelity, standalone
 *
 * Placeholder entry point: the feature behind this binary lands with the
 * issue named in usage(); until then it explains itself and exits 2.
 */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: nas-train [--help]\n"
            "\n"
            "trains one architecture at one fidelity, standalone\n"
            "\n"
            "Not available in this build yet: the training engine.\n");
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
