/* libFuzzer harness for the FAT12/16/32 used-map parser (engine/fs/fs_fat.c) and the small-file
 * reader on the same volume (engine/fs/fs_fat_file.c: an ESP's grub.cfg and loader entries, the
 * seeds' files): the input is the start of a volume, zero-extended to a 512 MiB window so that
 * small inputs can still describe FAT32 volumes (65525 clusters or more, even of 4 KiB sectors).
 * replay.c can replay a corpus. */
#include "fs_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW (512ull << 20) /* a sparse tail: reading it costs no disk */

/* Paths on the seeds (fat*-*.img hold /os-release and /dir, fat16-esp.img an ESP's tree). */
static const char *const paths[] = {"/os-release", "/dir/none", "/EFI/debian/grub.cfg", "/loader/entries",
                                    "/loader/entries/Arch Linux.conf", "/"};

static int used_then_files(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    int rc = asr_fat_used(w, out, err);
    fs_window_read_files(w, "vfat", paths, sizeof paths / sizeof paths[0]);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_window_run(used_then_files, "vfat", WINDOW, data, size, data, 0);
    return 0;
}
