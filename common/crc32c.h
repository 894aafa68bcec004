/* CRC-32C (Castagnoli), the checksum btrfs puts on its superblock and tree blocks (and XFS v5,
 * ext4's metadata_csum on theirs): the reflected polynomial 0x82F63B78, as Linux's crc32c(). */
#ifndef ASR_CRC32C_H
#define ASR_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continues a running CRC over len bytes: asr_crc32c_update(~0u, ...) then ~ at the end gives the
 * standard CRC-32C (of "123456789": 0xE3069283); Linux's crc32c(seed, ...) is this without the
 * final inversion. */
uint32_t asr_crc32c_update(uint32_t crc, const void *data, size_t len);
/* The standard CRC-32C of len bytes (initial ~0, final inversion): what btrfs stores. */
uint32_t asr_crc32c(const void *data, size_t len);

#endif
