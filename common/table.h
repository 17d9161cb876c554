/*
 * table.h - a CSV lookup table: architecture string -> benchmark metrics.
 *
 * Tabular benchmarks (NAS-Bench-201 and the like) publish the trained
 * accuracy of every architecture of a space; a worker in tabular mode
 * answers a task by looking its genome up here, which makes thousands of
 * strategy runs cheap and deterministic.  The file is read once: a header
 * row names the columns, one column (the key) holds the architecture
 * string, the others numbers or text.  Fields follow RFC 4180: a field
 * may be quoted with "..." (needed for cell genomes, which contain
 * commas), a quote inside a quoted field is doubled, lines end in LF or
 * CRLF, and a UTF-8 byte-order mark is skipped.
 *
 * Every problem with the file is an error naming the file and line (bad
 * quoting, a row with the wrong number of fields, an empty or duplicate
 * key, a missing key column); nothing in the file can crash the loader.
 */
#ifndef NAS_TABLE_H
#define NAS_TABLE_H

#include <stddef.h>

typedef struct nas_table nas_table;

/* Load a CSV file; key_col names the key column.  NAS_EIO for a file that
 * cannot be read, NAS_EFORMAT + err ("table.csv:7: 3 fields, the header
 * has 4") for a malformed one, NAS_ENOTFOUND if key_col is not a column. */
int nas_table_load(nas_table **out, const char *path, const char *key_col, char *err);

/* The same from text in memory; `name` is used in error messages. */
int nas_table_parse(nas_table **out, const char *text, size_t len, const char *key_col,
                    const char *name, char *err);

void nas_table_destroy(nas_table **tp);

int nas_table_rows(const nas_table *t); /* data rows (header excluded) */
int nas_table_cols(const nas_table *t);

/* Column index of a header name, or NAS_ENOTFOUND. */
int nas_table_column(const nas_table *t, const char *name);
const char *nas_table_header(const nas_table *t, int col);

/* Row whose key equals key[0..len) exactly (or, after nas_table_reindex,
 * whose canonical key does), or NAS_ENOTFOUND. */
int nas_table_find(const nas_table *t, const char *key, size_t len);

/* The text of one cell (row, col in range: asserted). */
const char *nas_table_cell(const nas_table *t, int row, int col);

/* A cell as a finite number.  NAS_EFORMAT naming the line and column when
 * it is not one. */
int nas_table_number(const nas_table *t, int row, int col, double *out, char *err);

/* Build a second index over canonical keys: canon(key, buf, cap, ctx)
 * writes the canonical form of a key and returns its length, or a
 * negative error for a key it cannot read (that row is then reachable by
 * its exact key only).  Afterwards nas_table_find() tries the exact key
 * first and then canon(query).  Two rows with the same canonical key keep
 * the first.  Returns the number of rows indexed, or NAS_ENOMEM. */
typedef int (*nas_table_canon_fn)(const char *key, char *buf, size_t cap, void *ctx);
int nas_table_reindex(nas_table *t, nas_table_canon_fn canon, void *ctx);

#endif
