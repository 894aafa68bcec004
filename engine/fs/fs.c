/* The one way into the used-map parsers: which parser reads a filesystem libblkid named. Every
 * parser has the signature asr_used_fn (asr_engine.h) and reads only through its window. */
#include "asr_engine.h"

#include <string.h>

/* blkid's TYPE to the parser of that on-disk format. "ext4dev" is blkid's name for any ext
 * filesystem flagged test_fs (once the development name of ext4): the same format, read by the
 * same parser. "swsuspend" is a swap area holding a hibernation image: asr_swap_used reads its
 * header and refuses it, saying which signature it found, so it is captured whole (see
 * map_volume). */
asr_used_fn asr_used_parser(const char *fs)
{
    if (!strcmp(fs, "vfat"))
        return asr_fat_used;
    if (!strcmp(fs, "exfat"))
        return asr_exfat_used;
    if (!strcmp(fs, "ntfs"))
        return asr_ntfs_used;
    if (!strcmp(fs, "ext2") || !strcmp(fs, "ext3") || !strcmp(fs, "ext4") || !strcmp(fs, "ext4dev"))
        return asr_ext_used;
    if (!strcmp(fs, "btrfs"))
        return asr_btrfs_used;
    if (!strcmp(fs, "xfs"))
        return asr_xfs_used;
    if (!strcmp(fs, "swap") || !strcmp(fs, "swsuspend"))
        return asr_swap_used;
    return NULL;
}

int asr_fs_cleared(const struct asr_window *w, const char *fs_type, struct asr_ranges *out, struct asr_error *err)
{
    *out = (struct asr_ranges){0};
    return asr_used_parser(fs_type) == asr_ext_used ? asr_ext_cleared(w, out, err) : ASR_OK;
}
