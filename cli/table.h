/* Text tables of the asrimg command (table.c): columns sized to their widest cell, never cut; the
 * last column, free text, wrapped to COLUMNS or the terminal's width (whole on a pipe). */
#ifndef ASR_CLI_TABLE_H
#define ASR_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* align holds one letter per column: 'l' left, 'r' right, 'o' left and left out when every cell
 * of it is empty. Measure every row with table_measure, then print the header and the rows. */
#define TABLE_COLS_MAX 12
struct table {
    FILE *f;
    const char *indent;
    const char *const *headers;
    unsigned n;
    char align[TABLE_COLS_MAX];
    size_t width[TABLE_COLS_MAX];
    bool filled[TABLE_COLS_MAX];
    size_t wrap; /* 0: never */
};
void table_init(struct table *t, FILE *f, const char *indent, const char *align, const char *const *headers);
void table_measure(struct table *t, const char *const *cells);
void table_header(const struct table *t);
void table_row(const struct table *t, const char *const *cells);
size_t cli_text_width(const char *s); /* columns a UTF-8 string takes */

#endif
