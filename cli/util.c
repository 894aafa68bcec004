/* The helpers every command shares: the one-line error, byte counts, identifiers and names as
 * they are printed, numbers and sizes parsed strictly, and the question before overwriting. */
#include "util.h"
#include "guid.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char last_error[4096];

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "asrimg: error: %s\n", last_error);
}

const char *cli_last_error(void)
{
    return last_error;
}

const char *cli_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

void cli_hostname(char *out, size_t len)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1))
        host[0] = '\0';
    size_t n = 0;
    for (const char *p = host; *p && n + 1 < len; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_';
        out[n] = ok ? c : '_';
    }
    out[n] = '\0';
}

void cli_uuid(const uint8_t b[16], bool mixed, char out[37])
{
    asr_guid_text(b, mixed ? ASR_GUID_GPT : 0, out);
}

const char *cli_label_name(uint8_t l)
{
    return l == ASR_LABEL_MBR ? "mbr" : l == ASR_LABEL_GPT ? "gpt" : "none";
}

const char *cli_capture_name(uint8_t c)
{
    static const char *const names[] = {"skip", "used", "full", "header"};
    return c < 4 ? names[c] : "?";
}

void cli_disk_id(const struct asr_disk_desc *d, char out[37])
{
    if (d->label == ASR_LABEL_GPT)
        cli_uuid(d->disk_id, true, out);
    else if (d->label == ASR_LABEL_MBR)
        snprintf(out, 37, "0x%02x%02x%02x%02x", d->disk_id[3], d->disk_id[2], d->disk_id[1], d->disk_id[0]);
    else
        snprintf(out, 37, "-");
}

/* strtoul and strtoull take leading spaces and a sign (and wrap a negative number): a number
 * here starts with a digit. */
bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_size(const char *s, uint64_t *out)
{
    if (!strcmp(s, "fat32")) {
        *out = ASR_FAT32_SPLIT_SIZE;
        return true;
    }
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    case 0: break;
    default: return false;
    }
    if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool cli_confirm(const char *prompt)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
        return false;
    fputs(prompt, stderr);
    char line[16] = "";
    return fgets(line, sizeof line, stdin) && !strcmp(line, "yes\n");
}

void cli_part_type(const struct asr_disk_desc *dk, const struct asr_partition_desc *pt, char out[96])
{
    char guid[37], name[64];
    cli_uuid(pt->type_guid, true, guid);
    asr_type_name(dk->label, pt->mbr_type, guid, name, sizeof name);
    if (dk->label == ASR_LABEL_GPT)
        snprintf(out, 96, "%s", name[0] ? name : guid);
    else
        snprintf(out, 96, "0x%02x%s%s%s", pt->mbr_type, pt->bootable ? "*" : "", name[0] ? " " : "", name);
}
