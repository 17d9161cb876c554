/*
 * fuzz_targets.h - one entry point per decoder that faces the outside
 * world, shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c, built
 * with -DNAS_FUZZ=ON) and by the regression suite tests/test_fuzz_regress.c
 * (built always), which replays every committed corpus and regression
 * file through exactly the same code.
 *
 * Each target takes arbitrary bytes, must never crash, leak or trip a
 * sanitizer, and checks cheap round-trip properties of what it accepted
 * (decode -> encode -> decode gives the same thing).  A violated property
 * is a bug, so it aborts with a message (libFuzzer saves the input).
 * A target returns 1 when the decoder accepted the input and 0 when it
 * refused it cleanly; the libFuzzer entry point always returns 0.
 */
#ifndef NAS_FUZZ_TARGETS_H
#define NAS_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef int (*nas_fuzz_fn)(const uint8_t *data, size_t size);

typedef struct nas_fuzz_target {
    const char *name; /* harness and corpus folder name */
    nas_fuzz_fn fn;
} nas_fuzz_target;

/* Every target, terminated by {NULL, NULL}. */
extern const nas_fuzz_target nas_fuzz_targets[];

/* The target called `name`, or NULL. */
nas_fuzz_fn nas_fuzz_find(const char *name);

int nas_fuzz_wire(const uint8_t *data, size_t size);        /* whole envelopes */
int nas_fuzz_wire_body(const uint8_t *data, size_t size);   /* type byte + message body */
int nas_fuzz_genome_text(const uint8_t *data, size_t size); /* nas_genome_parse */
int nas_fuzz_genome_json(const uint8_t *data, size_t size); /* nas_genome_from_json */
int nas_fuzz_json(const uint8_t *data, size_t size);        /* nas_json_parse */
int nas_fuzz_config(const uint8_t *data, size_t size);      /* nas_config_parse (YAML) */
int nas_fuzz_idx(const uint8_t *data, size_t size);         /* u32 split + IDX images + labels */
int nas_fuzz_cifar(const uint8_t *data, size_t size);       /* CIFAR-10 binary batch */
int nas_fuzz_safetensors(const uint8_t *data, size_t size); /* nas_safetensors_parse */
int nas_fuzz_table(const uint8_t *data, size_t size);       /* CSV, key column "arch" */
int nas_fuzz_keys(const uint8_t *data, size_t size);        /* key file text */

#endif
