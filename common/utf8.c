/*
 * utf8.c - see utf8.h.
 */
#include "common/utf8.h"

int nas_utf8_decode(const char *p, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p;
    unsigned c = s[0];
    *cp = c;
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    int n; /* continuation bytes after the lead byte */
    uint32_t v;
    if ((c & 0xe0) == 0xc0)
        n = 1, v = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, v = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, v = c & 0x07;
    else
        return -1;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1; /* also stops at the NUL */
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (v < min_cp[n] || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff) return -1;
    *cp = v;
    return n + 1;
}
