/* The temporary volume file (also fuzz_lvm.c's) and the map checks shared by the filesystem-parser
 * harnesses. */
#include "fs_window.h"
#include "fs_file.h"
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
    fs_window_check(parser, expect_fs, &w);
    close(fd);
}

void fs_window_check(fs_parser_fn parser, const char *expect_fs, const struct asr_window *w)
{
    struct asr_usedmap m = {0};
    struct asr_error err = {0};
    if (parser(w, &m, &err) == ASR_OK)
        check_map(&m, expect_fs, w->size);
    else if (m.used.n != 0 || !err.msg[0])
        abort();
    asr_usedmap_free(&m);
}

#define FUZZ_FILE_CAP (64u << 10)

static void check_refusal(int rc, const struct asr_error *err)
{
    if ((int)err->code != rc || !err->msg[0] || !memchr(err->msg, 0, sizeof err->msg) || strchr(err->msg, '\n'))
        abort();
}

static void check_read(int rc, const uint8_t *buf, size_t len, const struct asr_error *err)
{
    if (rc == ASR_OK) {
        if (!buf || len > FUZZ_FILE_CAP || buf[len] != 0)
            abort();
        return;
    }
    if (buf || len || (rc != FS_E_NOT_FOUND && rc != FS_E_NOT_FILE && rc != ASR_E_LIMIT && rc != ASR_E_CORRUPT &&
                       rc != ASR_E_IO && rc != ASR_E_NOMEM))
        abort();
    check_refusal(rc, err);
}

static int check_name(void *ctx, const char *name, enum fs_kind kind)
{
    size_t *names = ctx;
    if (!name[0] || strchr(name, '/') || strlen(name) > 1024 || (unsigned)kind > FS_KIND_OTHER)
        abort();
    return ++*names == 10000; /* enough: the listing's own bounds are what is exercised */
}

static void check_list(int rc, const struct asr_error *err)
{
    if (rc == ASR_OK)
        return;
    if (rc != FS_E_NOT_FOUND && rc != FS_E_NOT_DIR && rc != ASR_E_CORRUPT && rc != ASR_E_IO && rc != ASR_E_NOMEM)
        abort();
    check_refusal(rc, err);
}

void fs_window_read_files(const struct asr_window *w, const char *fs_type, const char *const *paths, size_t n)
{
    struct fs_vol *v;
    struct asr_error err = {0};
    int rc = fs_vol_open(w, fs_type, &v, &err);
    if (rc != ASR_OK) {
        if (v || rc == ASR_E_LIMIT || rc == ASR_E_UNSUPPORTED)
            abort();
        check_refusal(rc, &err);
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf;
        size_t len, names = 0;
        if (v) {
            err = (struct asr_error){0};
            rc = fs_vol_read(v, paths[i], FUZZ_FILE_CAP, &buf, &len, &err);
            check_read(rc, buf, len, &err);
            free(buf);
            err = (struct asr_error){0};
            check_list(fs_vol_list(v, paths[i], check_name, &names, &err), &err);
        }
        /* The one-shot call opens the volume afresh: the same answer (for the first path only:
         * each call walks the directories again, at the fuzzer's expense). */
        if (i)
            continue;
        uint8_t *again;
        size_t again_len;
        struct asr_error err2 = {0};
        int rc2 = fs_read_file(w, fs_type, paths[i], FUZZ_FILE_CAP, &again, &again_len, &err2);
        check_read(rc2, again, again_len, &err2);
        if (v && rc2 != rc)
            abort();
        free(again);
    }
    fs_vol_close(v);
}
