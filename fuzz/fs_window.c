/* The temporary volume file (also fuzz_lvm.c's) and the map checks shared by the filesystem-parser
 * harnesses. */
#include "fs_window.h"
#include "io.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[96];

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

/* One directory per process, removed at exit, so parallel fuzzers never share a file. */
static void setup(void)
{
    if (path[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/asrimg-fuzz-fs-XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/volume.img", dir);
    atexit(cleanup);
}

int fs_window_open(uint64_t window, const uint8_t *data, size_t size, const uint8_t *head, size_t head_len,
                   struct asr_window *w)
{
    setup();
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = size < window ? size : (size_t)window;
    if (head_len > n)
        head_len = n;
    if (asr_write_full(fd, head, head_len) != 0 || asr_write_full(fd, data + head_len, n - head_len) != 0 ||
        ftruncate(fd, (off_t)window) != 0) {
        close(fd);
        return -1;
    }
    *w = (struct asr_window){.fd = fd, .path = path, .base = 0, .size = window};
    return fd;
}

static void check_map(const struct asr_usedmap *m, const char *expect_fs, uint64_t window)
{
    uint64_t end = 0;
    for (size_t i = 0; i < m->used.n; i++) {
        const struct asr_range *r = &m->used.v[i];
        if (r->length == 0 || (i && r->offset <= end) || r->offset > window || r->length > window - r->offset)
            abort();
        end = r->offset + r->length;
    }
    if (!memchr(m->fs_type, 0, sizeof m->fs_type) || !memchr(m->fs_label, 0, sizeof m->fs_label))
        abort();
    if (m->block_size == 0 || (expect_fs ? strcmp(m->fs_type, expect_fs) != 0 : !m->fs_type[0]))
        abort();
}

void fs_window_run(fs_parser_fn parser, const char *expect_fs, uint64_t window_size, const uint8_t *data,
                   size_t size, const uint8_t *head, size_t head_len)
{
    struct asr_window w;
    int fd = fs_window_open(window_size, data, size, head, head_len, &w);
    if (fd < 0)
        return;
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    if (parser(&w, &m, &err) == ASR_OK)
        check_map(&m, expect_fs, window_size);
    else if (m.used.n != 0 || !err.msg[0])
        abort();
    asr_usedmap_free(&m);
    close(fd);
}
