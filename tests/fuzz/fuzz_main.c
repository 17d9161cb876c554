/*
 * fuzz_main.c - the libFuzzer entry point, compiled once per decoder with
 * NAS_FUZZ_FN naming its target in fuzz_targets.c (tests/fuzz/CMakeLists.txt
 * makes fuzz_wire, fuzz_genome_text, ...).  Keeping the target bodies out
 * of this file lets tests/test_fuzz_regress.c replay the same code under
 * the normal build.
 */
#include "tests/fuzz/fuzz_targets.h"

#include "common/log.h"


#ifndef NAS_FUZZ_FN
#error "NAS_FUZZ_FN must name a target of fuzz_targets.h"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* Decoders warn about bad input; at fuzzing speed that is noise. */
    nas_log_set_level(NAS_LOG_OFF);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)NAS_FUZZ_FN(data, size); /* accepted or refused: both are fine */
    return 0;
}
