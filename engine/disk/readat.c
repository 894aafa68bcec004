/* Retried, located positioned reads (see readat.h). */
#include "readat.h"

#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static bool gone_errno(int e)
{
    return e == ENODEV || e == ENXIO || e == ENOMEDIUM || e == ENOTCONN || e == ESHUTDOWN;
}

/* The caller's mistakes (EINVAL: an O_DIRECT read the device cannot take) and a gone disk do
 * not change on a second read; media and transport errors (EIO, ENODATA, ETIMEDOUT) may. */
static bool may_pass(int rc)
{
    return rc < 0 && rc != -EINVAL && rc != -EBADF && rc != -EFAULT && !gone_errno(-rc);
}

int read_tries(int fd, void *buf, size_t len, uint64_t off)
{
    int rc = asr_pread_full(fd, buf, len, off);
    for (int i = 1; i < ASR_READ_TRIES && may_pass(rc); i++)
        rc = asr_pread_full(fd, buf, len, off);
    return rc;
}

int read_located(int fd, void *buf, size_t len, uint64_t off, uint32_t unit, uint64_t *bad_at)
{
    *bad_at = off;
    int rc = asr_pread_full(fd, buf, len, off);
    if (rc == 0 || rc == -EINVAL || unit == 0)
        return rc;
    for (size_t done = 0; done < len; done += unit) {
        size_t n = len - done < unit ? len - done : unit;
        if ((rc = read_tries(fd, (uint8_t *)buf + done, n, off + done)) != 0) {
            *bad_at = off + done;
            return rc;
        }
    }
    return 0;
}

const char *read_strerror(int rc)
{
    return rc == ASR_IO_SHORT ? "unexpected end of file" : strerror(-rc);
}

bool read_gone(int fd, int rc, uint64_t size, uint64_t *now)
{
    *now = 0;
    if (rc < 0 && gone_errno(-rc))
        return true;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return true;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, now) != 0)
            return true;
    } else {
        *now = (uint64_t)st.st_size;
    }
    return *now < size;
}
