/* The logical byte stream of an image as the reader sees it: one file, or a split set of parts
 * (IMAGE, IMAGE.002, IMAGE.003, ...), each starting with a part header. Opening a split set
 * checks that every part is present, in its place, whole, and of this image, and names the part
 * when one is not. */
#include "internal.h"
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct part {
    int fd;
    char *path;
    uint64_t file_size;
};

struct fmt_partset {
    uint32_t count;
    struct part *parts;
    uint64_t split_size;   /* 0: one part */
    uint64_t payload_per_part;
    uint64_t logical_size;
    uint64_t file_bytes;
    uint8_t uuid[16];
};

char *fmt_part_path(const char *base, uint32_t part)
{
    size_t n = strlen(base) + 16;
    char *p = malloc(n);
    if (!p)
        return NULL;
    if (part <= 1)
        snprintf(p, n, "%s", base);
    else
        snprintf(p, n, "%s.%03u", base, part);
    return p;
}

/* Highest N for which "base.NNN" exists beside base (0 if none). Reading the directory rather
 * than probing 2, 3, ... is what lets us name a missing part in the middle of the set. */
static uint32_t highest_sibling_part(const char *base)
{
    char *dcopy = strdup(base), *bcopy = strdup(base);
    uint32_t highest = 0;
    if (!dcopy || !bcopy)
        goto out;
    const char *dir = dirname(dcopy), *name = basename(bcopy);
    size_t nlen = strlen(name);
    DIR *d = opendir(dir);
    if (!d)
        goto out;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (strncmp(s, name, nlen) != 0 || s[nlen] != '.')
            continue;
        s += nlen + 1;
        size_t digits = strspn(s, "0123456789");
        if (digits < 3 || digits > 4 || s[digits] != '\0')
            continue;
        unsigned long k = strtoul(s, NULL, 10);
        if (k >= 2 && k <= ASR_MAX_PARTS && k > highest)
            highest = (uint32_t)k;
    }
    closedir(d);
out:
    free(dcopy);
    free(bcopy);
    return highest;
}

static int open_part(struct fmt_partset *ps, uint32_t k, const char *path, struct fmt_part_header *h,
                     struct asr_error *err)
{
    struct part *p = &ps->parts[k - 1];
    p->fd = -1;
    if (!(p->path = strdup(path)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) {
        if (errno == ENOENT && k > 1)
            return fmt_fail(err, ASR_E_PARTS, "part %u of the split set is missing: %s", k, path);
        return fmt_fail(err, ASR_E_IO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(p->fd, &st) != 0)
        return fmt_fail(err, ASR_E_IO, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return fmt_fail(err, ASR_E_ARG, "%s is not a regular file", path);
    p->file_size = (uint64_t)st.st_size;
    uint8_t raw[ASR_PART_HEADER_SIZE];
    if (p->file_size < sizeof fmt_part_magic ||
        asr_pread_full(p->fd, raw, sizeof fmt_part_magic, 0) != 0 ||
        memcmp(raw, fmt_part_magic, sizeof fmt_part_magic) != 0)
        return fmt_fail(err, k > 1 ? ASR_E_PARTS : ASR_E_NOT_IMAGE, "%s is not an asrimg image%s", path,
                        k > 1 ? " part" : " (no magic at offset 0)");
    if (p->file_size < ASR_PART_HEADER_SIZE)
        return fmt_fail(err, ASR_E_INCOMPLETE, "%s is truncated inside its part header", path);
    if (asr_pread_full(p->fd, raw, sizeof raw, 0) != 0)
        return fmt_fail(err, ASR_E_IO, "cannot read %s: %s", path, strerror(errno));
    struct asr_error why = {0};
    int rc = fmt_part_header_decode(raw, h, &why);
    if (rc)
        return fmt_fail(err, k > 1 ? ASR_E_PARTS : rc, "%s: %s", path, why.msg);
    return ASR_OK;
}

static int check_sibling(struct fmt_partset *ps, uint32_t k, const struct fmt_part_header *h,
                         bool last, struct asr_error *err)
{
    const char *path = ps->parts[k - 1].path;
    if (memcmp(h->uuid, ps->uuid, 16) != 0)
        return fmt_fail(err, ASR_E_PARTS, "part %u (%s) belongs to another image", k, path);
    if (h->part_number != k)
        return fmt_fail(err, ASR_E_PARTS, "%s holds part %u, not part %u: parts renamed or reordered", path,
                        h->part_number, k);
    if (h->split_size != ps->split_size || h->payload_offset != (uint64_t)(k - 1) * ps->payload_per_part)
        return fmt_fail(err, ASR_E_PARTS, "part %u (%s) disagrees with part 1 on the split size", k, path);
    uint64_t size = ps->parts[k - 1].file_size;
    if (!last && size != ps->split_size)
        return fmt_fail(err, ASR_E_PARTS, "part %u (%s) is %s: %llu bytes, expected %llu", k, path,
                        size < ps->split_size ? "truncated" : "too long", (unsigned long long)size,
                        (unsigned long long)ps->split_size);
    if (last && size > ps->split_size)
        return fmt_fail(err, ASR_E_PARTS, "part %u (%s) is longer than the split size", k, path);
    return ASR_OK;
}

static int open_all(struct fmt_partset *ps, const char *path, struct asr_error *err)
{
    struct fmt_part_header h;
    ps->count = 1;
    if (!(ps->parts = calloc(1, sizeof *ps->parts)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    int rc = open_part(ps, 1, path, &h, err);
    if (rc)
        return rc;
    if (h.part_number != 1)
        return fmt_fail(err, ASR_E_ARG, "%s is part %u of a split set: open its first part", path, h.part_number);
    if (h.payload_offset != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%s: part 1 payload offset is not 0", path);
    memcpy(ps->uuid, h.uuid, 16);
    ps->split_size = h.split_size;
    ps->payload_per_part = h.split_size ? h.split_size - ASR_PART_HEADER_SIZE : UINT64_MAX;
    uint32_t highest = h.split_size ? highest_sibling_part(path) : 0;
    if (highest > 1) {
        struct part *grown = realloc(ps->parts, highest * sizeof *grown);
        if (!grown)
            return fmt_fail(err, ASR_E_NOMEM, "out of memory");
        ps->parts = grown;
        memset(ps->parts + 1, 0, (highest - 1) * sizeof *grown);
        for (uint32_t k = 2; k <= highest; k++)
            ps->parts[k - 1].fd = -1;
        ps->count = highest;
    }
    if (ps->split_size && (rc = check_sibling(ps, 1, &h, highest <= 1, err)))
        return rc;
    for (uint32_t k = 2; k <= ps->count; k++) {
        char *pp = fmt_part_path(path, k);
        if (!pp)
            return fmt_fail(err, ASR_E_NOMEM, "out of memory");
        rc = open_part(ps, k, pp, &h, err);
        free(pp);
        if (rc || (rc = check_sibling(ps, k, &h, k == ps->count, err)))
            return rc;
    }
    for (uint32_t k = 0; k < ps->count; k++) {
        ps->logical_size += ps->parts[k].file_size - ASR_PART_HEADER_SIZE;
        ps->file_bytes += ps->parts[k].file_size;
    }
    return ASR_OK;
}

int fmt_partset_open(const char *path, struct fmt_partset **out, struct asr_error *err)
{
    *out = NULL;
    struct fmt_partset *ps = calloc(1, sizeof *ps);
    if (!ps)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    int rc = open_all(ps, path, err);
    if (rc) {
        fmt_partset_close(ps);
        return rc;
    }
    *out = ps;
    return ASR_OK;
}

void fmt_partset_close(struct fmt_partset *ps)
{
    if (!ps)
        return;
    for (uint32_t k = 0; ps->parts && k < ps->count; k++) {
        if (ps->parts[k].fd >= 0)
            close(ps->parts[k].fd);
        free(ps->parts[k].path);
    }
    free(ps->parts);
    free(ps);
}

uint64_t fmt_partset_size(const struct fmt_partset *ps) { return ps->logical_size; }
uint32_t fmt_partset_count(const struct fmt_partset *ps) { return ps->count; }
uint64_t fmt_partset_split_size(const struct fmt_partset *ps) { return ps->split_size; }
uint64_t fmt_partset_file_bytes(const struct fmt_partset *ps) { return ps->file_bytes; }
const uint8_t *fmt_partset_uuid(const struct fmt_partset *ps) { return ps->uuid; }

const char *fmt_partset_path(const struct fmt_partset *ps, uint32_t part)
{
    return part >= 1 && part <= ps->count ? ps->parts[part - 1].path : "?";
}

void fmt_partset_locate(const struct fmt_partset *ps, uint64_t off, uint32_t *part, uint64_t *file_off)
{
    uint64_t k = ps->split_size ? off / ps->payload_per_part : 0;
    if (k >= ps->count)
        k = ps->count - 1;
    *part = (uint32_t)k + 1;
    *file_off = off - k * (ps->split_size ? ps->payload_per_part : 0) + ASR_PART_HEADER_SIZE;
}

int fmt_partset_read(struct fmt_partset *ps, uint64_t off, void *buf, size_t len, struct asr_error *err)
{
    if (off > ps->logical_size || len > ps->logical_size - off)
        return fmt_fail(err, ASR_E_CORRUPT, "read of %zu bytes at logical offset %llu past the image end", len,
                        (unsigned long long)off);
    uint8_t *p = buf;
    while (len) {
        uint32_t part;
        uint64_t foff;
        fmt_partset_locate(ps, off, &part, &foff);
        uint64_t room = ps->parts[part - 1].file_size - foff;
        size_t n = len < room ? len : (size_t)room;
        int rc = asr_pread_full(ps->parts[part - 1].fd, p, n, foff);
        if (rc) /* a part shorter than its header said reads as an I/O error */
            return fmt_fail(err, ASR_E_IO, "cannot read %s at offset %llu: %s", ps->parts[part - 1].path,
                            (unsigned long long)foff, strerror(rc < 0 ? -rc : EIO));
        p += n;
        off += n;
        len -= n;
    }
    return ASR_OK;
}

void fmt_partset_prefetch(const struct fmt_partset *ps, uint64_t off, uint64_t len)
{
    if (off >= ps->logical_size)
        return;
    if (len > ps->logical_size - off)
        len = ps->logical_size - off;
    while (len) {
        uint32_t part;
        uint64_t foff;
        fmt_partset_locate(ps, off, &part, &foff);
        uint64_t room = ps->parts[part - 1].file_size - foff;
        uint64_t n = len < room ? len : room;
        if (n == 0)
            return;
        /* Advice only: the reads that follow check everything, so its failure changes nothing. */
        (void)posix_fadvise(ps->parts[part - 1].fd, (off_t)foff, (off_t)n, POSIX_FADV_WILLNEED);
        off += n;
        len -= n;
    }
}
