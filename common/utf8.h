/*
 * utf8.h - decoding one UTF-8 character, for the places that must not
 * pass on text a peer made up: names on the wire (common/wire.c) and every
 * log line (common/log.c).
 */
#ifndef NAS_UTF8_H
#define NAS_UTF8_H

#include <stdint.h>

/* Decode the character at p (NUL-terminated text) into *cp.  Returns its
 * length in bytes (1..4), or -1 when the bytes at p are not UTF-8: a stray
 * continuation byte, a truncated sequence, an overlong form, a surrogate,
 * or a code point past U+10FFFF.  0 at the terminating NUL. */
int nas_utf8_decode(const char *p, uint32_t *cp);

/* C0 controls, DEL and C1 controls: never shown raw to a terminal. */
static inline int nas_utf8_is_control(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

#endif
