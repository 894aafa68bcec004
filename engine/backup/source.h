/* The read side of a backup: a volume's used ranges read from its disk through io_uring, many
 * large requests in flight, delivered to the caller in disk order. Internal to the engine. */
#ifndef ASR_SOURCE_H
#define ASR_SOURCE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

struct source;

struct source_config {
    const char *path;        /* the disk; opened again with O_DIRECT when the kernel allows it */
    int fd;                  /* the disk's ordinary descriptor: fallback reads, and probes O_DIRECT cannot take */
    uint64_t disk_size;
    uint32_t probe_unit;     /* granularity of unreadable ranges (the logical sector size) */
    bool ignore_read_errors; /* deliver unreadable pieces instead of failing */
    uint32_t request_size;   /* 0: 1 MiB */
    uint32_t depth;          /* requests in flight; 0: 16 */
};

/* What next() hands over: len bytes of the disk at disk_offset, either data (valid until the
 * next call) or, with ignore_read_errors, a range that could not be read (data NULL). */
struct piece {
    uint64_t disk_offset;
    size_t len;
    const uint8_t *data;
    bool unreadable;
    uint64_t request;      /* the read that holds it (a sequence number, as source_peek takes) */
    size_t request_offset; /* where data starts in that read's span */
};

/* A read that has landed, for scanning on another thread before its pieces are delivered: its
 * span stays valid until next() has delivered past it. */
struct span {
    const uint8_t *data;
    size_t len;
};

enum asr_peek { ASR_PEEK_READY, ASR_PEEK_NOT_YET, ASR_PEEK_NEVER };

int source_open(const struct source_config *cfg, struct source **out, struct asr_error *err);
void source_close(struct source *s); /* NULL-safe */
bool source_direct(const struct source *s); /* whether O_DIRECT is in use */

/* Starts reading ranges (volume-relative, sorted, non-overlapping) of the volume at disk offset
 * base. The ranges must stay valid until next() has delivered the last piece. */
int source_start(struct source *s, uint64_t base, const struct asr_range *ranges, size_t count,
                     struct asr_error *err);
/* The next piece in disk order; piece->len == 0 when the volume is done. A read error stops the
 * volume with ASR_E_IO naming the disk offset (unless ignore_read_errors). */
int source_next(struct source *s, struct piece *piece, struct asr_error *err);
/* Without waiting: READY with the span of read `request` when it has completed in full; NOT_YET
 * while it is in flight or not yet issued; NEVER when it was delivered already, or its data will
 * be mended at delivery (a short or failed read). */
enum asr_peek source_peek(struct source *s, uint64_t request, struct span *span);
/* Nanoseconds next() spent waiting for the device, for the per-stage report. */
uint64_t source_wait_ns(const struct source *s);

#endif
