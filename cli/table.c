/* Text tables for people (layout, info, the backup and restore plans): every column as wide as
 * its widest cell, so no name or type is ever cut; the last column (free text: a reason, what a
 * restore does) wrapped at spaces to the output's width when it has one, each continuation line
 * starting under that column, or under each row when the others leave it too little room. Rows are not stored: the caller measures them all, then prints them,
 * building the cells the same way both times. */
#include "table.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GAP 2          /* spaces between columns */
#define WRAP_MIN 24    /* narrower than this, the last column goes on a line of its own */

/* Columns the first len bytes of s take: one per UTF-8 sequence, not per byte. */
static size_t width_n(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

size_t cli_text_width(const char *s)
{
    return width_n(s, strlen(s));
}

/* COLUMNS when set (as util-linux's tools take it), else the terminal's width; 0 on a pipe or
 * a file, where each row stays one line for grep. */
static size_t output_columns(FILE *f)
{
    unsigned long c;
    const char *env = getenv("COLUMNS");
    if (env && cli_parse_uint(env, 100000, &c) && c)
        return c;
    struct winsize ws;
    if (isatty(fileno(f)) && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col)
        return ws.ws_col;
    return 0;
}

void table_init(struct table *t, FILE *f, const char *indent, const char *align, const char *const *headers)
{
    *t = (struct table){.f = f, .indent = indent, .headers = headers, .wrap = output_columns(f)};
    t->n = (unsigned)strlen(align);
    if (t->n > TABLE_COLS_MAX)
        t->n = TABLE_COLS_MAX;
    memcpy(t->align, align, t->n);
    for (unsigned c = 0; c < t->n; c++)
        t->width[c] = cli_text_width(headers[c]);
}

void table_measure(struct table *t, const char *const *cells)
{
    for (unsigned c = 0; c < t->n; c++) {
        size_t w = cli_text_width(cells[c]);
        if (w > t->width[c])
            t->width[c] = w;
        t->filled[c] |= w > 0;
    }
}

static bool shown(const struct table *t, unsigned c)
{
    return t->align[c] != 'o' || t->filled[c];
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

/* Where the columns go: the last one shown, and the column it starts at. */
static unsigned last_column(const struct table *t, size_t *at)
{
    unsigned last = 0;
    *at = strlen(t->indent);
    for (unsigned c = 0; c < t->n; c++)
        if (shown(t, c))
            last = c;
    for (unsigned c = 0; c < last; c++)
        if (shown(t, c))
            *at += t->width[c] + GAP;
    return last;
}

/* Whether the columns before the last leave it too little room on this width: it then goes on
 * a line of its own under each row, named by its header, indented a little more than the row
 * (and out of the header line). */
static bool hanging(const struct table *t)
{
    size_t at;
    unsigned last = last_column(t, &at);
    return t->wrap && at + t->width[last] > t->wrap && (t->wrap <= at || t->wrap - at < WRAP_MIN);
}

/* The last column's text from column `at` on: whole when it fits or there is no width to keep
 * to, else in lines broken at spaces (a word longer than a line stays whole). */
static void print_last(const struct table *t, const char *s, size_t at)
{
    size_t room = t->wrap > at ? t->wrap - at : 0;
    if (room < WRAP_MIN || cli_text_width(s) <= room) {
        fprintf(t->f, "%s\n", s);
        return;
    }
    size_t used = 0;
    while (*s) {
        size_t len = strcspn(s, " "), w = width_n(s, len);
        if (used && used + 1 + w > room) {
            fputc('\n', t->f);
            pad(t->f, at);
            used = 0;
        } else if (used) {
            fputc(' ', t->f);
            used++;
        }
        fwrite(s, 1, len, t->f);
        used += w;
        s += len;
        while (*s == ' ')
            s++;
    }
    fputc('\n', t->f);
}

/* A row; the header (header true) leaves out a hanging last column. Spaces are written before
 * a cell, never after the last one on a line. */
static void print_row(const struct table *t, const char *const *cells, bool header)
{
    size_t at, hang = strlen(t->indent) + 4;
    unsigned last = last_column(t, &at);
    bool hang_last = hanging(t);
    size_t pending = 0;
    fputs(t->indent, t->f);
    for (unsigned c = 0; c < last; c++) {
        if (!shown(t, c))
            continue;
        size_t w = cli_text_width(cells[c]), fill = t->width[c] > w ? t->width[c] - w : 0;
        if (t->align[c] == 'r')
            pending += fill;
        if (w) {
            pad(t->f, pending);
            fputs(cells[c], t->f);
            pending = 0;
        }
        pending += (t->align[c] == 'r' ? 0 : fill) + GAP;
    }
    if (hang_last && header) {
        fputc('\n', t->f);
    } else if (hang_last) { /* "reason: ...", as a note line is */
        fputc('\n', t->f);
        pad(t->f, hang);
        fprintf(t->f, "%s: ", t->headers[last]);
        print_last(t, cells[last], hang + cli_text_width(t->headers[last]) + 2);
    } else {
        pad(t->f, cells[last][0] ? pending : 0);
        print_last(t, cells[last], at);
    }
}

/* Cells carry names read from disks and images (partition names, labels): a control character in
 * one would break the row or drive the terminal, so it shows as '?' (one column, as measured). */
static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

void table_row(const struct table *t, const char *const *cells)
{
    const char *cell[TABLE_COLS_MAX];
    char *copy[TABLE_COLS_MAX] = {0};
    for (unsigned c = 0; c < t->n; c++) {
        cell[c] = cells[c];
        if (!has_control(cells[c]))
            continue;
        cell[c] = copy[c] = strdup(cells[c]);
        if (!copy[c]) {
            cell[c] = "?";
            continue;
        }
        for (char *p = copy[c]; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    print_row(t, cell, false);
    for (unsigned c = 0; c < t->n; c++)
        free(copy[c]);
}

void table_header(const struct table *t)
{
    print_row(t, t->headers, true);
}
