/* Whole transfers (see io.h). */
#include "io.h"

#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

int asr_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return ASR_IO_SHORT;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int asr_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, size_t *done)
{
    const uint8_t *p = buf;
    size_t put = 0;
    int rc = 0;
    while (put < len) {
        ssize_t n = pwrite(fd, p + put, len - put, (off_t)(off + put));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : ASR_IO_SHORT;
            break;
        }
        put += (size_t)n;
    }
    if (done)
        *done = put;
    return rc;
}

int asr_write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : ASR_IO_SHORT;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int asr_random_full(void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        got += (size_t)n;
    }
    return 0;
}
