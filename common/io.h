/* Whole transfers through the system calls that may do part of one (reads, writes, random bytes): every byte asked for, a short
 * transfer continued where it stopped, EINTR retried. The callers decide what a failure means
 * (one disk read retried, a target write named in a message); these only say which it was. */
#ifndef ASR_IO_H
#define ASR_IO_H
#include <stddef.h>
#include <stdint.h>

/* What the functions below return when a read meets the end of the file before the range, or a
 * write takes no byte (a full filesystem or device): positive, unlike -errno. */
#define ASR_IO_SHORT 1

/* len bytes at off into buf: 0, -errno, or ASR_IO_SHORT. */
int asr_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* len bytes of buf at off: 0, -errno, or ASR_IO_SHORT. *done (when not NULL) is how many were
 * written, all of them or those before the failure, so the caller can name where it failed. */
int asr_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, size_t *done);
/* len bytes of buf at the file position (a pipe, a file written in order): 0, -errno, or
 * ASR_IO_SHORT. */
int asr_write_full(int fd, const void *buf, size_t len);
/* len random bytes from the kernel (getrandom), short returns continued, EINTR retried: 0 or
 * -errno. */
int asr_random_full(void *buf, size_t len);

#endif
