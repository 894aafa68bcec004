/* The output stream of the image writer (sink.c). Internal to format/: writer.c reads its
 * position (logical, part, split_size) and the stream hash straight from the structure. */
#ifndef ASR_FMT_SINK_H
#define ASR_FMT_SINK_H

#include "internal.h"
#include "xxhash_fast.h"

#define FMT_SINK_BUFFER (1u << 20)

struct fmt_sink {
    int fd;
    struct fmt_outfiles *files; /* NULL when writing to a caller's descriptor */
    uint64_t split_size; /* 0: one part */
    uint32_t part;       /* current part, 1-based */
    uint64_t in_part;    /* bytes in the current part file, its header included */
    uint64_t handed_to_disk; /* bytes of the part whose writeback has been started */
    bool no_writeback;   /* sync_file_range refused (a pipe, a character device) */
    uint8_t uuid[16];
    uint64_t logical;    /* logical bytes written so far */
    XXH3_state_t *stream_hash;
    bool hashing;
    uint8_t *buf;
    size_t used;
};

/* An empty sink for an image whose parts hold uuid, fd -1 until the writer opens the first part:
 * ASR_OK, or ASR_E_NOMEM (fmt_sink_free releases what was made). */
int fmt_sink_init(struct fmt_sink *s, uint64_t split_size, const uint8_t uuid[16]);
void fmt_sink_free(struct fmt_sink *s); /* the memory; the descriptor and files are the writer's */
/* The current part's header, at the current position of its descriptor. */
int fmt_sink_write_part_header(struct fmt_sink *s, struct asr_error *err);
/* len bytes appended to the image (buffered). */
int fmt_sink_put(struct fmt_sink *s, const void *data, size_t len, struct asr_error *err);
int fmt_sink_flush(struct fmt_sink *s, struct asr_error *err); /* what the buffer holds, written */
/* The current part synced and closed (fd -1 after, either way). */
int fmt_sink_close(struct fmt_sink *s, struct asr_error *err);

#endif
