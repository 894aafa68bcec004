/* Filesystem fixture helpers: see fsfix.h. */
#include "fsfix.h"
#include "support.h"

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

uint64_t fsfix_sh_number(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    char *out = fsfix_sh_out("%s", cmd);
    cr_assert_not_null(out, "%s", cmd);
    uint64_t v = strtoull(out, NULL, 10);
    free(out);
    free(cmd);
    return v;
}

bool fsfix_have(const char *program)
{
    return fsfix_sh("command -v %s >/dev/null 2>&1", program) == 0;
}

struct asr_window fsfix_window(const char *path, uint64_t base, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    return (struct asr_window){.fd = fd, .path = path, .base = base, .size = size};
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

void fsfix_map(asr_used_fn parse, const char *path, uint64_t size, struct asr_usedmap *m)
{
    struct asr_window w = fsfix_window(path, 0, size);
    struct asr_error err = {0};
    cr_assert_eq(parse(&w, m, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    fsfix_check_ranges(&m->used, size);
    cr_log_info("%s", m->note);
}

void fsfix_need(const char *program)
{
    if (!fsfix_have(program))
        cr_skip_test("%s missing", program);
}

void fsfix_read_at(const char *path, uint64_t off, void *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pread(fd, buf, n, (off_t)off), (ssize_t)n);
    close(fd);
}

void fsfix_write_at(const char *path, uint64_t off, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    close(fd);
}

void fsfix_subtract(const struct asr_ranges *a, const struct asr_ranges *b, struct asr_ranges *out)
{
    size_t j = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t at = a->v[i].offset, end = at + a->v[i].length;
        while (at < end) {
            while (j < b->n && b->v[j].offset + b->v[j].length <= at)
                j++;
            uint64_t stop = j == b->n || b->v[j].offset >= end ? end : b->v[j].offset > at ? b->v[j].offset : at;
            if (stop > at)
                cr_assert_eq(asr_ranges_add(out, at, stop - at), ASR_OK);
            if (stop == end)
                break;
            at = b->v[j].offset + b->v[j].length;
        }
    }
}

uint64_t fsfix_not_covered(const struct asr_ranges *a, const struct asr_ranges *b)
{
    struct asr_ranges rest = {0};
    fsfix_subtract(a, b, &rest);
    uint64_t missing = asr_ranges_bytes(&rest);
    asr_ranges_free(&rest);
    return missing;
}

bool fsfix_partclone_map(const char *tool, const char *img, struct asr_ranges *out)
{
    char *log = scratch_path("partclone.log"), *dom = scratch_path("partclone.domain");
    bool ok = fsfix_sh("%s -D -q -s %s -O %s -L %s >/dev/null 2>&1", tool, img, dom, log) == 0;
    FILE *f = ok ? fopen(dom, "r") : NULL;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long at, len;
        char status;
        if (line[0] != '#' && sscanf(line, "%llx %llx %c", &at, &len, &status) == 3 && status == '+')
            cr_assert_eq(asr_ranges_add(out, at, len), ASR_OK);
    }
    if (f)
        fclose(f);
    free(log);
    free(dom);
    return ok && f;
}

void fsfix_ext_crash(const char *img, const char *after, unsigned bs, const char *cmds_file, const char *data_paths,
                     const char *jo_opts)
{
    cr_assert_eq(fsfix_sh("set -e; cp %1$s %2$s; debugfs -w -f %3$s %2$s >/dev/null 2>&1;"
                          "data=\" $(for p in %4$s; do debugfs -R \"blocks $p\" %2$s 2>/dev/null; done) \"; list=;"
                          "rm -f %1$s.meta;"
                          "for b in $(cmp -l %1$s %2$s | awk '{print int(($1 - 1) / %6$u)}' | uniq); do"
                          "  case \"$data\" in *\" $b \"*) dd if=%2$s of=%1$s bs=%6$u skip=$b seek=$b count=1"
                          "    conv=notrunc status=none;;"
                          "  *) dd if=%2$s bs=%6$u skip=$b count=1 status=none >> %1$s.meta; list=$list${list:+,}$b;; esac;"
                          "done; printf 'jo %5$s\\njw -b %%s %1$s.meta\\njc\\n' $list > %1$s.jcmd;"
                          "debugfs -w -f %1$s.jcmd %1$s >/dev/null 2>&1; rm %1$s.meta %1$s.jcmd",
                          img, after, cmds_file, data_paths, jo_opts, bs),
                 0);
}
