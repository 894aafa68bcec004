/* The dedup index of the backup pipeline (backup.c): a chunk's content hash and length -> the id
 * of the chunk already written with them. Internal to the engine; tests use it directly. */
#ifndef ASR_DEDUP_H
#define ASR_DEDUP_H
#include <stddef.h>
#include <stdint.h>

#include "asr_format.h"

struct dedup;
int dedup_new(struct dedup **out);
void dedup_free(struct dedup *d); /* NULL-safe */
/* Looks key up only: 1 and *found_id when present, 0 when absent. */
int dedup_find(const struct dedup *d, struct asr_hash128 key, uint32_t len, uint64_t *found_id);
/* Looks key up; when absent, inserts it with id. Returns 1 and sets *found_id when present, 0
 * when inserted, -1 when the table could not grow (out of memory). */
int dedup_find_or_add(struct dedup *d, struct asr_hash128 key, uint32_t len, uint64_t id,
                          uint64_t *found_id);
size_t dedup_memory(const struct dedup *d); /* memory held, for the memory model */

#endif
