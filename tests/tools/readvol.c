/* asrimg-readvol: writes one volume of an image out as a raw file, through the format reader,
 * so shell tests can compare what an image holds with the disk it came from byte for byte
 * (there is no restore command yet). Uncaptured, zero and unreadable bytes come out as zeros,
 * as asr_reader_read_volume promises. Usage: asrimg-readvol IMAGE VOLUME OUTPUT */
#include "asr_format.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP (1u << 20)

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: asrimg-readvol IMAGE VOLUME OUTPUT\n");
        return 2;
    }
    struct asr_error err = {0};
    struct asr_reader *r = NULL;
    if (asr_reader_open(argv[1], &r, &err)) {
        fprintf(stderr, "asrimg-readvol: error: %s\n", err.msg);
        return 1;
    }
    uint32_t vol = (uint32_t)strtoul(argv[2], NULL, 10);
    int rc = 1, fd = -1;
    uint8_t *buf = malloc(STEP);
    if (vol >= asr_reader_volume_count(r)) {
        fprintf(stderr, "asrimg-readvol: error: no volume %s in %s\n", argv[2], argv[1]);
    } else if (!buf) {
        fprintf(stderr, "asrimg-readvol: error: out of memory\n");
    } else if ((fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "asrimg-readvol: error: %s: %s\n", argv[3], strerror(errno));
    } else {
        uint64_t size = asr_reader_volume(r, vol)->size_bytes;
        rc = 0;
        for (uint64_t off = 0; off < size && !rc; off += STEP) {
            size_t n = size - off < STEP ? (size_t)(size - off) : STEP;
            int st = asr_reader_read_volume(r, vol, off, buf, n, &err);
            /* Unreadable bytes are expected here: the buffer holds zeros there. */
            if (st != ASR_OK && st != ASR_E_UNREADABLE) {
                fprintf(stderr, "asrimg-readvol: error: %s\n", err.msg);
                rc = 1;
            } else if ((st = asr_write_full(fd, buf, n)) != 0) {
                fprintf(stderr, "asrimg-readvol: error: %s: %s\n", argv[3], strerror(st < 0 ? -st : ENOSPC));
                rc = 1;
            }
        }
    }
    if (fd >= 0 && close(fd) && !rc) {
        fprintf(stderr, "asrimg-readvol: error: %s: %s\n", argv[3], strerror(errno));
        rc = 1;
    }
    free(buf);
    asr_reader_free(r);
    return rc;
}
