/* libFuzzer harness for the exFAT used-map parser (engine/fs/fs_exfat.c) and the small-file reader
 * on the same volume (engine/fs/fs_exfat_file.c): the input is the start of a volume,
 * zero-extended to a 16 MiB window. Each input runs as given, then with its boot checksum
 * recomputed, so mutations reach the geometry checks, the root directory walk and the lookups. */
#include <string.h>

#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (16ull << 20) /* a sparse tail: reading it costs no disk */
#define MAX_BOOT_REGION (12u << 12)

static uint8_t fixed[MAX_BOOT_REGION];

/* Recomputes the checksum sector of the main boot region into fixed[]; returns the region's
 * length, or 0 when the input is too short or the checksum was already right. */
static size_t repair_checksum(const uint8_t *data, size_t size)
{
    if (size < 512 || data[108] < 9 || data[108] > 12)
        return 0;
    size_t sector = (size_t)1 << data[108], len = 12 * sector;
    if (size < len)
        return 0;
    memcpy(fixed, data, len);
    uint32_t sum = 0;
    for (size_t i = 0; i < 11 * sector; i++)
        if (i != 106 && i != 107 && i != 112)
            sum = ((sum & 1) ? 0x80000000u : 0) + (sum >> 1) + fixed[i];
    for (size_t i = 11 * sector; i < len; i += 4)
        for (int b = 0; b < 4; b++)
            fixed[i + (size_t)b] = (uint8_t)(sum >> (8 * b));
    return memcmp(fixed, data, len) ? len : 0;
}

/* Paths on exfat-damaged.img (mkfs.exfat's own seeds have their root past the first 256 KiB) and
 * an ESP's. */
static const char *const paths[] = {"/many/f59.txt", "/docs", "/docs/deep/nested.bin", "/big.bin",
                                    "/docs/none",    "/EFI/debian/grub.cfg", "/"};

static int used_then_files(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = asr_exfat_used(w, out, err);
    fs_window_read_files(w, "exfat", paths, sizeof paths / sizeof paths[0]);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(used_then_files, "exfat", WINDOW, data, size, data, 0);
    size_t len = repair_checksum(data, size);
    if (len)
        fs_window_run(used_then_files, "exfat", WINDOW, data, size, fixed, len);
    return 0;
}
