/* Filesystem fixture helpers: see fsfix.h. */
#include "fsfix.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static char *vformat(const char *fmt, va_list ap)
{
    char *cmd = NULL;
    cr_assert_geq(vasprintf(&cmd, fmt, ap), 0);
    return cmd;
}

int fsfix_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    free(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

char *fsfix_sh_out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return NULL;
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    if (pclose(p) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

bool fsfix_have(const char *program)
{
    return fsfix_sh("command -v %s >/dev/null 2>&1", program) == 0;
}

struct asr_window fsfix_window(const char *path, uint64_t base, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    return (struct asr_window){fd, path, base, size};
}

void fsfix_copy_used(const char *src, uint64_t src_base, const struct asr_ranges *used, const char *dst, uint64_t size)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(in >= 0 && out >= 0, "open %s / %s", src, dst);
    enum { BUF = 1 << 20 };
    uint8_t *buf = malloc(BUF);
    for (uint64_t at = 0; at < size; at += BUF) {
        size_t n = size - at < BUF ? (size_t)(size - at) : BUF;
        for (size_t got = 0; got < n;)
            got += (size_t)getrandom(buf + got, n - got, 0);
        cr_assert_eq(pwrite(out, buf, n, (off_t)at), (ssize_t)n);
    }
    for (size_t i = 0; i < used->n; i++) {
        for (uint64_t at = used->v[i].offset; at < used->v[i].offset + used->v[i].length; at += BUF) {
            uint64_t left = used->v[i].offset + used->v[i].length - at;
            size_t n = left < BUF ? (size_t)left : BUF;
            cr_assert_eq(pread(in, buf, n, (off_t)(src_base + at)), (ssize_t)n);
            cr_assert_eq(pwrite(out, buf, n, (off_t)at), (ssize_t)n);
        }
    }
    free(buf);
    close(in);
    cr_assert_eq(close(out), 0);
}

void fsfix_check_ranges(const struct asr_ranges *r, uint64_t size)
{
    uint64_t end = 0;
    for (size_t i = 0; i < r->n; i++) {
        cr_assert_gt(r->v[i].length, 0);
        cr_assert(i == 0 || r->v[i].offset > end, "range %zu overlaps or touches the previous one", i);
        cr_assert_leq(r->v[i].offset + r->v[i].length, size, "range %zu past the volume end", i);
        end = r->v[i].offset + r->v[i].length;
    }
}
