/* Re-backup hints inside the engine (hints.c owns them; the public half is in asr_engine.h): what
 * the pipeline asks of the last backup's chunks, and how it records this backup's. */
#ifndef ASR_HINTS_H
#define ASR_HINTS_H
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"
#include "asr_store.h"

#define HINT_KEY_SIZE 16
_Static_assert(ASR_BACKUP_HINTS_CHECK == ASR_STORE_ID_SIZE, "the store check is a store id");

/* One chunk of an earlier backup that ended where the chunker cut it: the same bytes from the
 * same offset end there again. */
struct hint {
    uint64_t offset;           /* of its first byte in the volume */
    uint32_t len;
    struct asr_hash128 verify; /* asr_content_hash(the file's private seed, content) */
    struct asr_hash128 content; /* asr_content_hash(the store's seed, content) */
    struct asr_store_id sid;
};

/* One volume's hints, ascending and apart. */
struct hint_list {
    uint8_t key[HINT_KEY_SIZE];
    const struct hint *v;
    size_t n;
};

/* The hints loaded for the volume with this key, or NULL. */
const struct hint_list *hints_for_volume(const struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE]);
/* The hint for a chunk starting at offset, or NULL. */
const struct hint *hints_at(const struct hint_list *l, uint64_t offset);
/* The average chunk size the hints were made with (the backup must chunk the same way). */
uint32_t hints_avg_chunk(const struct asr_backup_hints *h);
/* The private seed verify hashes use. */
uint64_t hints_seed(const struct asr_backup_hints *h);
/* Adds a chunk of this backup (called in volume and offset order, from one thread). */
int hints_record(struct asr_backup_hints *h, const uint8_t key[HINT_KEY_SIZE], const struct hint *e,
                 struct asr_error *err);
/* Parses a hints file's bytes into h (empty before): for asr_backup_hints_read and the fuzzer. */
int hints_parse(struct asr_backup_hints *h, const uint8_t *buf, size_t len, const char *where,
                struct asr_error *err);

#endif
