/* Memory for large O_DIRECT transfers. Why huge pages: a 1 MiB transfer from 4 KiB pages scattered
 * in memory is 256 segments, more than a device takes in one request (a loop device: 128), so the
 * block layer must split it, which it will not do for io_uring's non-blocking attempt: io_uring
 * then hands every such transfer to an io-wq thread, and they ran one at a time. Measured on the
 * 4 GiB bench root (loop device, direct I/O): backup's reads ran at 1.8-2.2 GB/s against 3.0-3.7
 * for fio's replay of the same reads; from huge pages, 3.0-3.8 and no io-wq thread. Where the
 * kernel gives no huge pages, transfers are split as before. */
#include "iobuf.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

uint8_t *asr_iobuf_alloc(size_t len)
{
    len = (len + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    uint8_t *p = aligned_alloc(HUGE_PAGE, len);
    if (p)
        madvise(p, len, MADV_HUGEPAGE); /* advice: refused or not, the memory serves */
    return p;
}
