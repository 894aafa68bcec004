/* Linux swap: nothing in a swap area survives a reboot except its header page, which carries
 * the UUID and label that fstab and resume= refer to. The used map is that first page only;
 * the header is parsed here (no library exposes it for a byte window). A swap area holding a
 * hibernation image is refused (ASR_E_UNSUPPORTED), so that it is captured whole. */
#include "asr_engine.h"
#include "guid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The signature sits in the last 10 bytes of the first page, so it moves with the page size of
 * the machine that ran mkswap: 4 KiB almost everywhere, larger on some arm64, ppc64, ia64, mips.
 * The same five sizes libblkid looks at. */
static const uint32_t page_sizes[] = {4096, 8192, 16384, 32768, 65536};
#define MAX_PAGE 65536u

#define SWAP_SIG_LEN 10
#define SWAP_VERSION_OFF 1024 /* after the 1 KiB "bootbits" left for disk labels */
#define SWAP_BADPAGES_OFF 1032 /* after version and last_page */
#define SWAP_UUID_OFF 1036
#define SWAP_LABEL_OFF 1052
#define SWAP_BADLIST_OFF 1536 /* badpages[] array at the end of the v1 header */

static uint32_t u32(const uint8_t *p, int big)
{
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The v1 header is written in the creating machine's byte order: version 1 tells which. */
static int check_v1(const uint8_t *page, uint32_t pagesize, struct asr_error *err)
{
    int big;
    if (u32(page + SWAP_VERSION_OFF, 0) == 1)
        big = 0;
    else if (u32(page + SWAP_VERSION_OFF, 1) == 1)
        big = 1;
    else
        return asr_fail_public(err, ASR_E_CORRUPT, "swap: header version %u unknown (offset %d)",
                               u32(page + SWAP_VERSION_OFF, 0), SWAP_VERSION_OFF);
    uint32_t bad = u32(page + SWAP_BADPAGES_OFF, big), max_bad = (pagesize - SWAP_BADLIST_OFF - SWAP_SIG_LEN) / 4;
    if (bad > max_bad)
        return asr_fail_public(err, ASR_E_CORRUPT, "swap: %u bad pages listed, more than the header holds (%u)", bad,
                               max_bad);
    return ASR_OK;
}

static void fill_names(const uint8_t *page, struct asr_usedmap *out)
{
    const uint8_t *u = page + SWAP_UUID_OFF;
    int any = 0;
    for (int i = 0; i < 16; i++)
        any |= u[i];
    if (any) /* mkswap without libuuid writes none; blkid then reports none either */
        asr_guid_text(u, 0, out->fs_uuid);
    const char *l = (const char *)page + SWAP_LABEL_OFF;
    snprintf(out->fs_label, sizeof out->fs_label, "%.*s", (int)strnlen(l, 16), l);
}

/* A hibernation image replaces the signature at the end of the header page (the kernel and
 * uswsusp keep the original in the 10 bytes before it); TuxOnIce instead writes its own magic at
 * the very start and leaves the swap signature valid. Either way the area's pages are then the
 * memory image a resume reads, which a header-only capture would drop. These are the signatures
 * libblkid calls "swsuspend", at every page size it looks at. */
#define TOI_MAGIC "\xed\xc3\x02\xe9\x98\x56\xe5\x0c"
#define TOI_MAGIC_LEN 8

/* The hibernation signature found in the first len bytes and where, or NULL when there is none.
 * Checked at every page size before any swap signature: a swap signature at one page size does
 * not make a hibernation signature at another harmless. */
static const char *hibernation(const uint8_t *page, size_t len, uint32_t *at)
{
    static const char *const names[] = {"S1SUSPEND", "S2SUSPEND", "ULSUSPEND", "LINHIB0001"};
    if (len >= TOI_MAGIC_LEN && memcmp(page, TOI_MAGIC, TOI_MAGIC_LEN) == 0) {
        *at = 0;
        return "TuxOnIce";
    }
    for (size_t p = 0; p < sizeof page_sizes / sizeof page_sizes[0] && page_sizes[p] <= len; p++)
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (memcmp(page + page_sizes[p] - SWAP_SIG_LEN, names[i], strlen(names[i])) == 0) {
                *at = page_sizes[p] - SWAP_SIG_LEN;
                return names[i];
            }
    return NULL;
}

/* Looks for the signature at each page size in turn (page holds the first len bytes); on a
 * match, checks the header and fills out. Returns -1 when no page size matched (err untouched). */
static int scan(const uint8_t *page, size_t len, struct asr_usedmap *out, struct asr_error *err)
{
    uint32_t at;
    const char *hib = hibernation(page, len, &at);
    if (hib)
        return asr_fail_public(err, ASR_E_UNSUPPORTED, "swap: holds a hibernation image (%s signature at offset %u)",
                               hib, at);
    for (size_t i = 0; i < sizeof page_sizes / sizeof page_sizes[0] && page_sizes[i] <= len; i++) {
        uint32_t ps = page_sizes[i];
        const uint8_t *sig = page + ps - SWAP_SIG_LEN;
        int v1 = memcmp(sig, "SWAPSPACE2", SWAP_SIG_LEN) == 0;
        if (!v1 && memcmp(sig, "SWAP-SPACE", SWAP_SIG_LEN) != 0)
            continue;
        int rc;
        if (v1 && (rc = check_v1(page, ps, err)) != ASR_OK)
            return rc;
        rc = asr_ranges_add(&out->used, 0, ps);
        if (rc != ASR_OK)
            return asr_fail_public(err, rc, "swap: cannot record the header page (%s)", asr_status_name(rc));
        out->block_size = ps;
        snprintf(out->fs_type, sizeof out->fs_type, "swap");
        if (v1) /* version 0 headers are a page bitmap with no names */
            fill_names(page, out);
        return ASR_OK;
    }
    return -1;
}

int asr_swap_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    /* One read of the first 64 KiB (less on a smaller volume) covers every page size. */
    size_t len = w->size < MAX_PAGE ? (size_t)w->size : MAX_PAGE;
    int rc = -1;
    if (len >= page_sizes[0]) {
        uint8_t *page = malloc(len);
        if (!page)
            return asr_fail_public(err, ASR_E_NOMEM, "swap: out of memory for a %zu-byte header", len);
        rc = asr_window_read(w, "the swap header", 0, page, len, err);
        if (rc == ASR_OK)
            rc = scan(page, len, out, err);
        free(page);
    }
    if (rc == -1)
        return asr_fail_public(err, ASR_E_CORRUPT, "swap: no SWAPSPACE2 or SWAP-SPACE signature at the end of a 4, 8, "
                                                   "16, 32 or 64 KiB first page");
    return rc;
}
