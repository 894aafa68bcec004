/* Shared pieces of the asrimg command: subcommand entry points, error and number formatting,
 * the JSON emitter and the terminal progress meter. */
#ifndef ASR_CLI_H
#define ASR_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "asr_engine.h"

/* Exit codes: 0 success, 1 the operation failed (bad image, I/O), 2 usage. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_layout(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_restore(int argc, char **argv);
/* verify --against: compares disks with the image (cmd_restore.c). */
int cmd_verify_against(const char *image, const char *const *targets, size_t n, bool new_ids, bool grow, bool json);

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *cli_bytes(uint64_t n, char *buf, size_t len); /* "1.5 GiB" */
void cli_uuid(const uint8_t b[16], bool gpt_mixed_endian, char out[37]);
const char *cli_label_name(uint8_t label);     /* "gpt", "mbr", "none" */
const char *cli_capture_name(uint8_t capture); /* "used", "full", "header", "skip" */
/* A disk's identifier as people write it: GPT GUID, MBR "0x1234abcd", or "-". */
void cli_disk_id(const struct asr_disk_desc *d, char out[37]);

/* Source disks, analysed, with a volume selection applied across them. */
struct cli_disks {
    uint32_t n;
    struct asr_disk *disk[ASR_MAX_DISKS];
    struct asr_volume_info *vols[ASR_MAX_DISKS];
    size_t count[ASR_MAX_DISKS];
};
int cli_disks_open(struct cli_disks *s, const char *const *paths, uint32_t n, const char *selection,
                   struct asr_error *err); /* EXIT_OK or EXIT_FAIL; close either way */
void cli_disks_close(struct cli_disks *s);
/* Parses a decimal number no larger than max; false when it is anything else. */
bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* Parses "4G", "4096M", "fat32" (4 GiB - 1), "1048576"; false when it is not a size. */
bool cli_parse_size(const char *s, uint64_t *out);

/* JSON emitter: no allocation; commas handled by tracking the first member of each level. */
struct json {
    FILE *f;
    int depth;
    bool first[32];
};
void json_begin(struct json *j, FILE *f);
void json_obj(struct json *j, const char *key);   /* key NULL inside arrays or at top level */
void json_arr(struct json *j, const char *key);
void json_end_obj(struct json *j);
void json_end_arr(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_dbl(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_finish(struct json *j);

/* Text tables (table.c): columns sized to their widest cell, never cut; the last column, free
 * text, wrapped to COLUMNS or the terminal's width (whole on a pipe). align holds one letter per
 * column: 'l' left, 'r' right, 'o' left and left out when every cell of it is empty. Measure
 * every row with table_measure, then print the header and the rows. */
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

/* Progress on stderr, only when it is a terminal: bytes, MB/s, ETA. */
struct progress {
    bool enabled;
    const char *label;
    double start, last;
};
void progress_init(struct progress *p, const char *label, bool quiet);
void progress_update(uint64_t done, uint64_t total, void *ctx); /* matches asr_progress_fn */
void progress_done(struct progress *p);

#endif
