/* CRC-32C (see crc32c.h) through libext2fs's ext2fs_crc32c_le (slicing by 8, the same routine
 * ext4's metadata_csum is checked with): filesystem metadata is checked block by block while a
 * map is read, so this stays off the backup's hot path, and no table of our own is needed. */
#include "crc32c.h"

#include <ext2fs/ext2fs.h>

uint32_t asr_crc32c_update(uint32_t crc, const void *data, size_t len)
{
    return ext2fs_crc32c_le(crc, data, len);
}

uint32_t asr_crc32c(const void *data, size_t len) { return ~asr_crc32c_update(~0u, data, len); }
