/* Memory for large O_DIRECT transfers through io_uring: backup's read buffers (source.c) and
 * restore's write stages (restore_mirror.c). Internal to the engine. */
#ifndef ASR_IOBUF_H
#define ASR_IOBUF_H
#include <stddef.h>
#include <stdint.h>

/* len bytes, 2 MiB aligned, in transparent huge pages where the kernel gives them ("madvise" or
 * "always"); free() releases it. NULL when out of memory. */
uint8_t *asr_iobuf_alloc(size_t len);

#endif
