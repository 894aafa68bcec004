/* libFuzzer harness for the LUKS header reader (engine/disk/luks.c): the input is the start of a
 * LUKS container, zero-extended to a 32 MiB window. luks_header_extent, the part parsed by hand
 * (LUKS1's phdr and keyslots, LUKS2's binary header) runs on the input's first 4096 bytes and on
 * a secondary header wherever LUKS2 puts one; then luks_read_header runs on the window twice: as
 * it is, and with the primary LUKS2 header's SHA-256 checksum repaired so that mutations of the
 * JSON get past it to libcryptsetup's checks and this reader's (segments, keyslot areas, the data
 * offset against the window). An accepted header must describe a volume inside the window.
 * libcryptsetup is not instrumented: it is only driven. replay.c can replay a corpus. */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_window.h"
#include "luks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (32ull << 20)
#define MAX_INPUT (1u << 20)

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The primary LUKS2 header's checksum recomputed: SHA-256 of the binary header (its checksum
 * field zeroed) and the JSON area, when the input holds all of them. */
static void repair(uint8_t *d, size_t n)
{
    if (n < 4096 || memcmp(d, "LUKS\xba\xbe\0\x02", 8))
        return;
    uint64_t hdr = be64(d + 8);
    if (hdr < 4096 || hdr > n || memcmp(d + 72, "sha256", 7))
        return;
    memset(d + 448, 0, 64);
    SHA256(d, (size_t)hdr, d + 448);
}

static void check(const struct luks_header *h)
{
    if ((h->version != 1 && h->version != 2) || h->sector_size < 512 || h->sector_size > 4096 ||
        (h->sector_size & (h->sector_size - 1)) || h->data_offset > WINDOW || h->data_size > WINDOW - h->data_offset ||
        h->data_size % h->sector_size || h->data_offset % h->sector_size || h->header_size != h->data_offset ||
        h->data_offset < 4096 || !h->priv || h->uuid[sizeof h->uuid - 1] || h->mode[sizeof h->mode - 1])
        abort();
}

static void run(const uint8_t *d, size_t n)
{
    struct asr_window w;
    int fd = fs_window_open(WINDOW, d, n, NULL, 0, &w);
    if (fd < 0)
        return;
    struct luks_header h;
    struct asr_error err = {0};
    int rc = luks_read_header(&w, &h, &err);
    if (rc == ASR_OK)
        check(&h);
    else if (!err.msg[0] || strchr(err.msg, '\n') || h.priv)
        abort();
    luks_header_free(&h);
    close(fd);
}

static void extent(const uint8_t *d, size_t n, uint64_t at)
{
    uint8_t buf[4096] = {0};
    if (at >= n)
        return;
    memcpy(buf, d + at, n - at < sizeof buf ? n - at : sizeof buf);
    int version = 0;
    uint64_t ext = 0;
    struct asr_error err = {0};
    int rc = luks_header_extent(buf, sizeof buf, at, WINDOW, &version, &ext, &err);
    if (rc == ASR_OK ? (version != 1 && version != 2) || ext > WINDOW || ext > LUKS_HEADER_MAX || ext < 592
                     : !err.msg[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    extent(data, size, 0);
    for (uint64_t at = 16384; at <= 4194304; at *= 2)
        extent(data, size, at);
    run(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    repair(copy, size);
    if (memcmp(copy, data, size))
        run(copy, size);
    free(copy);
    return 0;
}
