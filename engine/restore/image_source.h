/* The image a restore reads (image_source.c), as the engine sees it beyond asr_engine.h's calls:
 * the two passes that read the data take the reader or the stream it wraps, and a volume's
 * extents are asked here whichever kind it is. Internal to engine/restore/. */
#ifndef ASR_IMAGE_SOURCE_H
#define ASR_IMAGE_SOURCE_H

#include "asr_engine.h"

/* An image around a reader or a stream the caller keeps (r or s, the other NULL): freeing it
 * leaves them open. path: the image file's, for the check that no target holds it; NULL skips
 * that check. */
int image_borrow(struct asr_reader *r, struct asr_stream *s, const char *path, struct asr_image **out,
                 struct asr_error *err);

/* The file pass reads through the reader, the stream pass through the stream: NULL for the
 * other kind. */
struct asr_reader *image_reader(const struct asr_image *im);
struct asr_stream *image_stream(const struct asr_image *im);
/* The image file's path as it was opened; NULL for a stream. */
const char *image_path(const struct asr_image *im);

/* Volume v's extents: the index's; for a stream, those its pass has noted so far (NULL and 0
 * before the first). */
const struct asr_extent *image_extents(const struct asr_image *im, uint32_t v, uint64_t *n);
/* The stream pass notes each extent as it lays it, so that --verify can read the volume back
 * after the stream is gone. */
int image_note_extent(struct asr_image *im, uint32_t v, const struct asr_extent *e, struct asr_error *err);

#endif
