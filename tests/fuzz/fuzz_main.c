/*
 * fuzz_main.c - the libFuzzer entry point, compiled once per decoder with
 * NAS_FUZZ_FN naming its target in fuzz_targets.c (tests/fuzz/CMakeLists.txt
 * makes fuzz_wire, fuzz_genome_text, ...).  Keeping the target bodies out
 * of this file lets tests/test_fuzz_regress.c replay the same code under
 * the normal build.
 */
#include "tests/fuzz/fuzz_targets.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef NAS_FUZZ_FN
#error "NAS_FUZZ_FN must name a target of fuzz_targets.h"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* Decoders warn about bad input; at fuzzing speed that is noise. */
    nas_log_set_level(NAS_LOG_OFF);
    /* A decoder that is declared but not built yet has nothing to fuzz;
     * saying so beats burning the time budget on an empty function. */
    for (const nas_fuzz_target *t = nas_fuzz_targets; t->name != NULL; t++) {
        if (t->fn == NAS_FUZZ_FN && t->available != NULL && !t->available()) {
            fprintf(stderr, "fuzz_%s: decoder not implemented in this build: skipped\n", t->name);
            exit(0);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)NAS_FUZZ_FN(data, size); /* accepted or refused: both are fine */
    return 0;
}
