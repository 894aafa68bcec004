/* One image's contents into a new writer, for export (a snapshot into an image file) and import
 * (an image file into a store): the layout as it is, then each volume's extents in order, each
 * chunk appended when an extent first needs it. How a chunk is appended is the caller's (an
 * image file takes the source's record; a store looks it up by id first). */
#ifndef ASR_CLI_IMAGE_COPY_H
#define ASR_CLI_IMAGE_COPY_H

#include "asr_format.h"

/* Appends content (len bytes, the source's chunk) to w, its new number in *chunk_id. record is the
 * source's record of it, checked (asr_chunk_reader_read_record): what a copy can store as it is. */
typedef int (*cli_append_fn)(struct asr_writer *w, const void *content, uint32_t len, const struct asr_chunk *record,
                             uint64_t *chunk_id, void *ctx, struct asr_error *err);

struct cli_copy_stats {
    uint64_t chunks, data_bytes, volumes;
};

/* Copies r into w (fresh, with r's max chunk size), checking every volume's content hash against
 * r's on the way (computed from the bytes passed on). progress may be NULL. */
int cli_image_copy(struct asr_reader *r, struct asr_writer *w, cli_append_fn append, void *ctx,
                   asr_progress_fn progress, void *progress_ctx, struct cli_copy_stats *st, struct asr_error *err);

#endif
