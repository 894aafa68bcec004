/* cli/util.h: what every command of asrimg shares: exit codes, the one-line error, numbers and
 * sizes parsed strictly, and the names and numbers printed the same way everywhere. */
#ifndef ASR_CLI_UTIL_H
#define ASR_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

/* Exit codes: 0 success, 1 the operation failed (bad image, I/O), 2 usage. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message cli_error printed ("" when none): for a report that says what failed. */
const char *cli_last_error(void);
const char *cli_bytes(uint64_t n, char *buf, size_t len); /* "1.5 GiB" */
void cli_uuid(const uint8_t b[16], bool gpt_mixed_endian, char out[37]);
/* A partition's type for people: as libfdisk names it, else the GPT type GUID in full or the MBR
 * code; an MBR's code always, with '*' when bootable. */
void cli_part_type(const struct asr_disk_desc *dk, const struct asr_partition_desc *pt, char out[96]);
/* This machine's hostname (gethostname), every byte but letters, digits, '.', '-' and '_' as
 * '_', so that it names files (backup --output-dir) and shows as it is; "" when there is none. */
void cli_hostname(char *out, size_t len);
const char *cli_label_name(uint8_t label);     /* "gpt", "mbr", "none" */
const char *cli_capture_name(uint8_t capture); /* "used", "full", "header", "skip" */
/* A disk's identifier as people write it: GPT GUID, MBR "0x1234abcd", or "-". */
void cli_disk_id(const struct asr_disk_desc *d, char out[37]);
/* Asks prompt on the terminal (standard error) and reads the answer: true only for "yes". False
 * without asking when standard input or standard error is not a terminal. */
bool cli_confirm(const char *prompt);
/* Parses a decimal number no larger than max; false when it is anything else. */
bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* Parses "4G", "4096M", "fat32" (4 GiB - 1), "1048576"; false when it is not a size. */
bool cli_parse_size(const char *s, uint64_t *out);

#endif
