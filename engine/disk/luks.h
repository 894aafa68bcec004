/* LUKS1 and LUKS2 containers read from a window of a disk, without device-mapper: the header
 * (through libcryptsetup, from a memory copy of the header area), the volume key from a
 * passphrase or key file, and the decrypted volume as a window of its own, decrypted in user
 * space, so that what is inside (a filesystem, LVM) can be probed and mapped while only the
 * ciphertext of the used sectors is stored: plaintext byte p of the volume is ciphertext byte
 * data_offset + p of the container, sector for sector. Every byte read is untrusted: the little
 * parsed here before libcryptsetup is bounds-checked and capped. Internal to the engine. */
#ifndef ASR_LUKS_H
#define ASR_LUKS_H
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

#define LUKS_HEADER_MAX (64u << 20) /* header and keyslot material copied: more is refused */
#define LUKS_KEYFILE_MAX (8u << 20) /* as cryptsetup's default --keyfile-size limit */

struct luks_private;

struct luks_header {
    int version;            /* 1 or 2 */
    char uuid[40];          /* as luksDump prints it */
    char label[48];         /* LUKS2 only ("" when none) */
    char cipher[32];        /* "aes" */
    char mode[32];          /* "xts-plain64", "cbc-essiv:sha256" */
    uint32_t key_size;      /* bytes of the volume key */
    uint32_t sector_size;   /* encryption sector: 512 (LUKS1) to 4096 */
    uint64_t data_offset;   /* bytes from the window's start to the first ciphertext sector */
    uint64_t header_size;   /* the header and keyslot areas: [0, data_offset), stored verbatim */
    uint64_t data_size;     /* bytes of the decrypted volume (a multiple of sector_size) */
    struct luks_private *priv;
};

/* Reads the LUKS header of w. ASR_E_CORRUPT naming what is wrong and where (no magic, a bad
 * LUKS2 checksum, keyslots or data past the window), ASR_E_LIMIT for a header area over
 * LUKS_HEADER_MAX, ASR_E_UNSUPPORTED naming what this reader does not handle (reencryption in
 * progress, a header made for a detached data device, integrity, several segments, a cipher
 * other than aes-xts-plain64 and aes-cbc-essiv:sha256), ASR_E_IO, ASR_E_NOMEM. On success
 * free it with luks_header_free; w must outlive it. */
int luks_read_header(const struct asr_window *w, struct luks_header *h, struct asr_error *err);
void luks_header_free(struct luks_header *h); /* zeroes h; safe on a zeroed one */

/* The volume key, in locked memory when the system allows it, wiped when freed. Never logged,
 * never written anywhere. */
struct luks_key;

/* The volume key from a passphrase (len bytes, any bytes: a key file's content is one too), as
 * libcryptsetup verifies it against every keyslot. ASR_E_ARG when no keyslot opens with it. */
int luks_unlock(const struct luks_header *h, const void *passphrase, size_t len, struct luks_key **key,
                struct asr_error *err);
/* The same with the whole content of a key file (at most LUKS_KEYFILE_MAX bytes, as cryptsetup
 * --key-file reads it: no newline is stripped). */
int luks_unlock_keyfile(const struct luks_header *h, const char *path, struct luks_key **key, struct asr_error *err);
void luks_key_free(struct luks_key *key); /* NULL-safe */

/* The decrypted volume as a window ([0, h->data_size)), reading ciphertext through parent at
 * h->data_offset + off. The key may be freed once this returns; h and parent must outlive the
 * volume. Reads need not be aligned, and may come from several threads. path names the window
 * in messages. ASR_E_UNSUPPORTED for a cipher this module cannot decrypt. */
struct luks_volume;
int luks_volume_open(const struct asr_window *parent, const struct luks_header *h, const struct luks_key *key,
                     const char *path, struct luks_volume **v, struct asr_window *out, struct asr_error *err);
void luks_volume_free(struct luks_volume *v); /* NULL-safe */

/* What to store of the container for the plaintext ranges `used` of its volume (sorted, as a
 * used map gives them): the header area [0, data_offset), then each range widened to whole
 * encryption sectors and moved by data_offset, so that the ciphertext of every used byte is kept
 * and nothing else; appended to out (empty on entry). ASR_E_ARG for a range past the volume,
 * ASR_E_NOMEM. */
int luks_ciphertext_ranges(const struct luks_header *h, const struct asr_ranges *used, struct asr_ranges *out,
                           struct asr_error *err);

/* The size of the header area libcryptsetup needs copied, from the first bytes of the window
 * (n >= 4096, at byte 0, or a LUKS2 secondary header at its offset `at`): LUKS1's phdr and
 * enabled keyslots' material, LUKS2's two binary headers with their JSON areas. *version 1 or 2.
 * Exposed for the fuzzer. */
int luks_header_extent(const uint8_t *buf, size_t n, uint64_t at, uint64_t window_size, int *version,
                       uint64_t *extent, struct asr_error *err);

#endif
