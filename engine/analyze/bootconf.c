/* The boot configuration of a Linux root, read from the text of its files: fstab through
 * libmount's parser (from memory), crypttab, mdadm.conf and kernel command lines by hand, each
 * line bounded; and device specs normalized into keys matched against volumes' identities. */
#include "bootconf.h"

#include <ctype.h>
#include <libmount/libmount.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounded input ------------------------------------------------------------------------- */

/* Refuses what no real configuration file looks like before anything parses it. */
static int check_input(const char *what, const char *text, size_t len, struct asr_error *err)
{
    if (len > BOOTCONF_MAX_INPUT)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: %zu bytes, more than the %u a configuration "
                               "file may have", what, len, BOOTCONF_MAX_INPUT);
    if (len && !text)
        return asr_fail_public(err, ASR_E_ARG, "%s: no text", what);
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul)
        return asr_fail_public(err, ASR_E_CORRUPT, "%s: NUL byte at offset %zu: not a text file",
                               what, (size_t)(nul - text));
    size_t line = 1, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            if (i - start > BOOTCONF_MAX_LINE)
                return asr_fail_public(err, ASR_E_LIMIT, "%s: line %zu longer than %u bytes", what,
                                       line, BOOTCONF_MAX_LINE);
            line++;
            start = i + 1;
        }
    }
    return 0;
}

/* Copies src into a BOOTCONF_STR field, refusing what does not fit. */
static int put(char *dst, const char *src, size_t n, const char *what, struct asr_error *err)
{
    if (n >= BOOTCONF_STR)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: %zu bytes, more than %u", what, n,
                               BOOTCONF_STR - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int puts0(char *dst, const char *src, const char *what, struct asr_error *err)
{
    return put(dst, src ? src : "", src ? strlen(src) : 0, what, err);
}

/* Puts where (printf-formatted) before the message err already holds; returns rc. */
__attribute__((format(printf, 3, 4))) static int in_context(struct asr_error *err, int rc,
                                                            const char *fmt, ...)
{
    if (!err)
        return rc;
    char msg[ASR_ERROR_MSG_MAX], where[ASR_ERROR_MSG_MAX];
    memcpy(msg, err->msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    return asr_fail_public(err, rc, "%.200s: %.300s", where, msg);
}

/* ---- specs --------------------------------------------------------------------------------- */

const char *bootspec_kind_name(enum bootspec_kind kind)
{
    switch (kind) {
    case BOOTSPEC_NONE: return "none";
    case BOOTSPEC_FS_UUID: return "fs-uuid";
    case BOOTSPEC_FS_LABEL: return "fs-label";
    case BOOTSPEC_PART_UUID: return "part-uuid";
    case BOOTSPEC_PART_LABEL: return "part-label";
    case BOOTSPEC_LV: return "lv";
    case BOOTSPEC_DM_NAME: return "dm-name";
    case BOOTSPEC_MD_UUID: return "md-uuid";
    case BOOTSPEC_MD_NAME: return "md-name";
    case BOOTSPEC_MD_DEV: return "md-dev";
    case BOOTSPEC_LUKS_UUID: return "luks-uuid";
    case BOOTSPEC_KERNEL: return "kernel-name";
    case BOOTSPEC_FILE: return "file";
    case BOOTSPEC_OTHER: return "other";
    }
    return "?";
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* udev's names under /dev/disk/by-* escape '/', spaces and the like as \xHH. */
static int unescape_udev(char *dst, const char *src, struct asr_error *err)
{
    size_t o = 0;
    for (size_t i = 0; src[i]; i++) {
        int c = (unsigned char)src[i];
        if (c == '\\' && src[i + 1] == 'x' && hexval(src[i + 2]) >= 0 && hexval(src[i + 3]) >= 0) {
            c = hexval(src[i + 2]) * 16 + hexval(src[i + 3]);
            i += 3;
        }
        if (c == 0)
            return asr_fail_public(err, ASR_E_CORRUPT, "spec %s: escaped NUL byte", src);
        dst[o++] = (char)c; /* never longer than src, which fits */
    }
    dst[o] = '\0';
    return 0;
}

/* A UUID as lowercase text; md's colon form (a:b:c:d) and dashed forms keep their separators
 * here, bootspec_match compares digits only. Refuses anything but hex digits and separators. */
static int norm_uuid(char *dst, const char *src, bool md, struct asr_error *err)
{
    size_t o = 0, digits = 0;
    for (size_t i = 0; src[i]; i++) {
        int c = (unsigned char)src[i];
        if (hexval(c) >= 0) {
            dst[o++] = (char)tolower(c);
            digits++;
        } else if (c == '-' || c == ':') {
            if (!md)
                dst[o++] = (char)c;
        } else {
            return asr_fail_public(err, ASR_E_CORRUPT, "UUID %s: '%c' is not a hex digit", src,
                                   isprint(c) ? c : '?');
        }
    }
    dst[o] = '\0';
    if (digits == 0 || (md && digits != 32))
        return asr_fail_public(err, ASR_E_CORRUPT, "UUID %s: %zu hex digits", src, digits);
    return 0;
}

/* LVM names a dm device VG-LV with each '-' inside VG and LV doubled. Gives false for a name
 * with no single dash (or more than one), which LVM never makes. */
static bool split_lvm_dm(const char *name, char *vg, char *lv)
{
    size_t n = strlen(name), sep = 0, singles = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] != '-')
            continue;
        if (name[i + 1] == '-') {
            i++;
            continue;
        }
        singles++;
        sep = i;
    }
    if (singles != 1 || sep == 0 || sep + 1 == n)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < sep; i++) {
        vg[o++] = name[i];
        if (name[i] == '-')
            i++;
    }
    vg[o] = '\0';
    o = 0;
    for (size_t i = sep + 1; i < n; i++) {
        lv[o++] = name[i];
        if (name[i] == '-')
            i++;
    }
    lv[o] = '\0';
    return true;
}

static bool is_md_dev(const char *name)
{
    if (strncmp(name, "md", 2) != 0 || !name[2])
        return false;
    for (const char *p = name + 2; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

struct tag {
    const char *prefix;
    enum bootspec_kind kind;
};

static const struct tag tags[] = {
    {"UUID=", BOOTSPEC_FS_UUID},
    {"LABEL=", BOOTSPEC_FS_LABEL},
    {"PARTUUID=", BOOTSPEC_PART_UUID},
    {"PARTLABEL=", BOOTSPEC_PART_LABEL},
};

static const struct tag by_dirs[] = {
    {"/dev/disk/by-uuid/", BOOTSPEC_FS_UUID},
    {"/dev/disk/by-label/", BOOTSPEC_FS_LABEL},
    {"/dev/disk/by-partuuid/", BOOTSPEC_PART_UUID},
    {"/dev/disk/by-partlabel/", BOOTSPEC_PART_LABEL},
};

static int spec_value(struct bootspec *out, enum bootspec_kind kind, const char *v, bool udev,
                      const char *spec, struct asr_error *err)
{
    if (!*v)
        return asr_fail_public(err, ASR_E_CORRUPT, "spec %s: empty value", spec);
    out->kind = kind;
    if (kind == BOOTSPEC_FS_UUID || kind == BOOTSPEC_PART_UUID)
        return norm_uuid(out->value, v, false, err);
    if (udev)
        return unescape_udev(out->value, v, err);
    strcpy(out->value, v); /* v is a suffix of spec, which fits */
    return 0;
}

static int spec_dev(const char *spec, struct bootspec *out, struct asr_error *err)
{
    for (size_t i = 0; i < sizeof by_dirs / sizeof by_dirs[0]; i++) {
        size_t n = strlen(by_dirs[i].prefix);
        if (strncmp(spec, by_dirs[i].prefix, n) == 0)
            return spec_value(out, by_dirs[i].kind, spec + n, true, spec, err);
    }
    const char *rest = spec + 5; /* after "/dev/" */
    if (strncmp(rest, "mapper/", 7) == 0) {
        const char *name = rest + 7;
        if (!*name || strchr(name, '/'))
            return asr_fail_public(err, ASR_E_CORRUPT, "spec %s: not a device-mapper name", spec);
        strcpy(out->dm, name);
        out->kind = split_lvm_dm(name, out->value, out->lv) ? BOOTSPEC_LV : BOOTSPEC_DM_NAME;
        if (out->kind == BOOTSPEC_DM_NAME)
            strcpy(out->value, name);
        return 0;
    }
    if (strncmp(rest, "md/", 3) == 0)
        return spec_value(out, BOOTSPEC_MD_NAME, rest + 3, false, spec, err);
    if (is_md_dev(rest))
        return spec_value(out, BOOTSPEC_MD_DEV, rest, false, spec, err);
    const char *slash = strchr(rest, '/');
    if (slash && slash != rest && slash[1] && !strchr(slash + 1, '/') &&
        strncmp(rest, "disk/", 5) != 0) {
        out->kind = BOOTSPEC_LV; /* /dev/VG/LV */
        memcpy(out->value, rest, (size_t)(slash - rest));
        out->value[slash - rest] = '\0';
        strcpy(out->lv, slash + 1);
        return 0;
    }
    if (!slash && *rest)
        return spec_value(out, BOOTSPEC_KERNEL, rest, false, spec, err);
    return spec_value(out, BOOTSPEC_OTHER, spec, false, spec, err);
}

static int spec_parse(const char *spec, struct bootspec *out, struct asr_error *err)
{
    if (!spec || !*spec)
        return asr_fail_public(err, ASR_E_CORRUPT, "empty device spec");
    if (strlen(spec) >= BOOTCONF_STR)
        return asr_fail_public(err, ASR_E_LIMIT, "device spec of %zu bytes, more than %u",
                               strlen(spec), BOOTCONF_STR - 1);
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t n = strlen(tags[i].prefix);
        if (strncasecmp(spec, tags[i].prefix, n) == 0)
            return spec_value(out, tags[i].kind, spec + n, false, spec, err);
    }
    if (strncmp(spec, "/dev/", 5) == 0)
        return spec_dev(spec, out, err);
    if (spec[0] == '/')
        return spec_value(out, BOOTSPEC_FILE, spec, false, spec, err);
    return spec_value(out, BOOTSPEC_OTHER, spec, false, spec, err);
}

/* A refused spec leaves out empty, never half set. */
int bootspec_parse(const char *spec, struct bootspec *out, struct asr_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = spec_parse(spec, out, err);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

static bool set(const char *s)
{
    return s && *s;
}

/* Equal hex digits in the same order, ignoring case and every separator. */
static bool uuid_eq(const char *a, const char *b)
{
    if (!set(a) || !set(b))
        return false;
    for (;;) {
        while (*a && hexval((unsigned char)*a) < 0)
            a++;
        while (*b && hexval((unsigned char)*b) < 0)
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        if (hexval((unsigned char)*a++) != hexval((unsigned char)*b++))
            return false;
    }
}

static bool str_eq(const char *a, const char *b)
{
    return set(a) && set(b) && strcmp(a, b) == 0;
}

/* mdadm names arrays "host:name"; /dev/md/name is the part after the colon. */
static bool md_name_eq(const char *spec, const char *name)
{
    if (!set(name))
        return false;
    const char *colon = strchr(name, ':');
    return strcmp(spec, name) == 0 || (colon && strcmp(spec, colon + 1) == 0);
}

bool bootspec_match(const struct bootspec *s, const struct bootvol_ids *v)
{
    switch (s->kind) {
    case BOOTSPEC_FS_UUID: return uuid_eq(s->value, v->fs_uuid);
    case BOOTSPEC_FS_LABEL: return str_eq(s->value, v->fs_label);
    case BOOTSPEC_PART_UUID: return uuid_eq(s->value, v->part_uuid);
    case BOOTSPEC_PART_LABEL: return str_eq(s->value, v->part_label);
    case BOOTSPEC_LV:
        return (str_eq(s->value, v->lv_vg) && str_eq(s->lv, v->lv_name)) ||
               (s->dm[0] && str_eq(s->dm, v->dm_name));
    case BOOTSPEC_DM_NAME: return str_eq(s->value, v->dm_name);
    case BOOTSPEC_MD_UUID: return uuid_eq(s->value, v->md_uuid);
    case BOOTSPEC_MD_NAME: return md_name_eq(s->value, v->md_name);
    case BOOTSPEC_MD_DEV: return str_eq(s->value, v->md_dev);
    case BOOTSPEC_LUKS_UUID: return uuid_eq(s->value, v->fs_uuid);
    case BOOTSPEC_KERNEL: return str_eq(s->value, v->kernel_name);
    case BOOTSPEC_NONE:
    case BOOTSPEC_FILE:
    case BOOTSPEC_OTHER: return false;
    }
    return false;
}

/* ---- fstab --------------------------------------------------------------------------------- */

struct parse_errs {
    int first_line; /* libmount does not say which: counted from the entries parsed before */
    int n;
};

static int fstab_errcb(struct libmnt_table *tb, const char *filename, int line)
{
    (void)filename;
    struct parse_errs *pe = mnt_table_get_userdata(tb);
    if (pe->n++ == 0)
        pe->first_line = line;
    return -1; /* stop: a half-read fstab must not look like a whole one */
}

static bool under(const char *target, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(target, dir, n) == 0 && (target[n] == '\0' || target[n] == '/');
}

/* m->why, formatted through a copy: the arguments are m's own fields. */
__attribute__((format(printf, 2, 3))) static void say(struct bootmount *m, const char *fmt, ...)
{
    char why[BOOTCONF_STR];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    memcpy(m->why, why, sizeof why);
}

static void classify(struct bootmount *m, struct libmnt_fs *fs)
{
    static const char *const critical[] = {"/", "/boot", "/boot/efi", "/efi", "/usr", "/var"};
    const char *t = m->target;
    char *val = NULL;
    size_t vlen = 0;
    m->nofail = mnt_optstr_get_option(m->options, "nofail", &val, &vlen) == 0;
    bool noauto = mnt_optstr_get_option(m->options, "noauto", &val, &vlen) == 0;
    bool bind = mnt_optstr_get_option(m->options, "bind", &val, &vlen) == 0 ||
                mnt_optstr_get_option(m->options, "rbind", &val, &vlen) == 0;
    const char *tail = m->nofail ? " (nofail)" : "";
    if (mnt_fs_is_pseudofs(fs) || mnt_fs_is_netfs(fs) || bind) {
        m->role = BOOTROLE_IGNORED;
        say(m, "%.200s: %s: on no disk of its own", t,
                 bind ? "bind mount" : mnt_fs_is_netfs(fs) ? "network filesystem" : "pseudo filesystem");
        return;
    }
    if (mnt_fs_is_swaparea(fs)) {
        m->role = m->spec.kind == BOOTSPEC_FILE ? BOOTROLE_SWAPFILE : BOOTROLE_SWAP;
        say(m, "%.200s: %s%s", m->source,
                 m->role == BOOTROLE_SWAP ? "swap device: header only"
                                          : "swap file inside a filesystem, not a device",
                 tail);
        return;
    }
    if (noauto) {
        m->role = BOOTROLE_NOAUTO;
        say(m, "%.200s: noauto: not mounted at boot", t);
        return;
    }
    for (size_t i = 0; i < sizeof critical / sizeof critical[0]; i++) {
        if (strcmp(t, critical[i]) == 0 || (i >= 4 && under(t, critical[i]))) {
            m->role = BOOTROLE_CRITICAL;
            say(m, "%.200s: needed to boot%s", t, tail);
            return;
        }
    }
    m->role = BOOTROLE_DATA;
    say(m, "%.200s: data volume: not needed to boot%s", t, tail);
}

/* A target as one name: "/boot/" and "/boot" are the same mount point. */
static void trim_slash(char *t)
{
    size_t n = strlen(t);
    while (n > 1 && t[n - 1] == '/')
        t[--n] = '\0';
}

static int add_mount(struct bootconf *bc, struct libmnt_fs *fs, size_t idx, struct asr_error *err)
{
    if (bc->n_mounts >= BOOTCONF_MAX_ENTRIES)
        return asr_fail_public(err, ASR_E_LIMIT, "fstab: more than %u entries",
                               BOOTCONF_MAX_ENTRIES);
    struct bootmount *m = &bc->mounts[bc->n_mounts];
    memset(m, 0, sizeof *m);
    char where[64];
    snprintf(where, sizeof where, "fstab: entry %zu", idx);
    int rc = puts0(m->source, mnt_fs_get_source(fs), where, err);
    if (!rc)
        rc = puts0(m->target, mnt_fs_get_target(fs), where, err);
    if (!rc)
        rc = puts0(m->fstype, mnt_fs_get_fstype(fs), where, err);
    if (!rc)
        rc = puts0(m->options, mnt_fs_get_options(fs), where, err);
    if (rc)
        return rc;
    trim_slash(m->target);
    bool skip_spec = mnt_fs_is_pseudofs(fs) || mnt_fs_is_netfs(fs);
    if (!skip_spec && (rc = bootspec_parse(m->source, &m->spec, err)) != 0)
        return in_context(err, rc, "fstab: entry %zu (%.200s)", idx, m->target);
    classify(m, fs);
    if (m->role == BOOTROLE_IGNORED)
        memset(&m->spec, 0, sizeof m->spec);
    bc->n_mounts++;
    return 0;
}

int bootconf_fstab(struct bootconf *bc, const char *text, size_t len, struct asr_error *err)
{
    int rc = check_input("fstab", text, len, err);
    if (rc || len == 0)
        return rc;
    /* fmemopen wants a writable buffer even to read: give it a copy. */
    char *copy = malloc(len);
    struct libmnt_table *tb = mnt_new_table();
    if (!copy || !tb) {
        free(copy);
        mnt_unref_table(tb);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    memcpy(copy, text, len);
    FILE *f = fmemopen(copy, len, "r");
    if (!f) {
        free(copy);
        mnt_unref_table(tb);
        return asr_fail_public(err, ASR_E_NOMEM, "fstab: cannot read from memory");
    }
    struct parse_errs pe = {0};
    mnt_table_set_userdata(tb, &pe);
    mnt_table_set_parser_errcb(tb, fstab_errcb);
    int prc = mnt_table_parse_stream(tb, f, "fstab");
    fclose(f);
    free(copy);
    if (prc != 0 || pe.n) {
        mnt_unref_table(tb);
        if (pe.n)
            return asr_fail_public(err, ASR_E_CORRUPT, "fstab: line %d: not an fstab entry",
                                   pe.first_line);
        return asr_fail_public(err, ASR_E_CORRUPT, "fstab: unreadable (libmount: %d)", prc);
    }
    struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
    if (!it) {
        mnt_unref_table(tb);
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    }
    struct libmnt_fs *fs;
    size_t idx = 1;
    while (!rc && mnt_table_next_fs(tb, it, &fs) == 0)
        rc = add_mount(bc, fs, idx++, err);
    mnt_free_iter(it);
    mnt_unref_table(tb);
    return rc;
}

/* ---- line-oriented files ------------------------------------------------------------------- */

#define MAX_FIELDS 16

struct line {
    char buf[BOOTCONF_MAX_LINE + 1];
    char *f[MAX_FIELDS];
    size_t n;
    size_t no;           /* 1-based line number */
    bool continuation;   /* began with blank space */
};

/* Splits a line on blanks; quotes (" or ') group words when quotes is set. A '#' starting a
 * field ends the line. Returns 0, or an error for unterminated quotes and too many fields. */
static int split(struct line *l, const char *what, bool quotes, struct asr_error *err)
{
    char *p = l->buf, *o = l->buf;
    l->n = 0;
    l->continuation = *p == ' ' || *p == '\t';
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '#')
            return 0;
        if (l->n == MAX_FIELDS)
            return asr_fail_public(err, ASR_E_LIMIT, "%s: line %zu: more than %d fields", what,
                                   l->no, MAX_FIELDS);
        /* o never passes p: fields are rewritten in place, quotes dropped. */
        l->f[l->n++] = o;
        char q = 0;
        while (*p && (q || (*p != ' ' && *p != '\t' && *p != '\r'))) {
            if (quotes && !q && (*p == '"' || *p == '\'')) {
                q = *p++;
            } else if (q && *p == q) {
                q = 0;
                p++;
            } else {
                *o++ = *p++;
            }
        }
        if (q)
            return asr_fail_public(err, ASR_E_CORRUPT, "%s: line %zu: unterminated %c quote",
                                   what, l->no, q);
        char *next = *p ? p + 1 : p;
        *o++ = '\0'; /* at or before the separator (or the end) just read */
        p = next;
    }
}

static bool first_word_in(const char *line, const char *const *words)
{
    line += strspn(line, " \t");
    size_t n = strcspn(line, " \t\r");
    for (; *words; words++)
        if (strlen(*words) == n && strncmp(line, *words, n) == 0)
            return true;
    return false;
}

/* Calls fn for each line of text, split. */
typedef int (*line_fn)(struct bootconf *bc, struct line *l, const char *what,
                       struct asr_error *err);

/* When set, only lines whose first word is one of these (NULL-terminated) are split: the rest
 * of a grub.cfg is a shell-like script whose quoting is not ours to judge. */
static int each_line(struct bootconf *bc, const char *what, const char *text, size_t len,
                     bool quotes, const char *const *keywords, line_fn fn, struct asr_error *err)
{
    int rc = check_input(what, text, len, err);
    if (rc)
        return rc;
    struct line *l = malloc(sizeof *l);
    if (!l)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    size_t start = 0, no = 1;
    while (!rc && start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        memcpy(l->buf, text + start, end - start); /* check_input bounded it */
        l->buf[end - start] = '\0';
        l->no = no++;
        start = end + 1;
        if (keywords && !first_word_in(l->buf, keywords))
            continue;
        rc = split(l, what, quotes, err);
        if (!rc && l->n)
            rc = fn(bc, l, what, err);
    }
    free(l);
    return rc;
}

static int spec_at(struct bootspec *s, const char *spec, const char *what, size_t no,
                   struct asr_error *err)
{
    int rc = bootspec_parse(spec, s, err);
    if (rc)
        return in_context(err, rc, "%s: line %zu", what, no);
    return 0;
}

/* A UUID from line no of what, into a BOOTCONF_STR field. */
static int uuid_at(char *dst, const char *v, bool md, const char *what, size_t no,
                   struct asr_error *err)
{
    int rc = strlen(v) >= BOOTCONF_STR ? asr_fail_public(err, ASR_E_LIMIT, "UUID too long")
                                       : norm_uuid(dst, v, md, err);
    if (rc)
        return in_context(err, rc, "%s: line %zu", what, no);
    return 0;
}

/* ---- crypttab ------------------------------------------------------------------------------ */

static int crypt_line(struct bootconf *bc, struct line *l, const char *what,
                      struct asr_error *err)
{
    if (l->n < 2 || l->n > 4)
        return asr_fail_public(err, ASR_E_CORRUPT,
                               "%s: line %zu: %zu fields, want name, device[, key[, options]]",
                               what, l->no, l->n);
    if (bc->n_crypts >= BOOTCONF_MAX_ENTRIES)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: more than %u entries", what,
                               BOOTCONF_MAX_ENTRIES);
    struct bootcrypt *c = &bc->crypts[bc->n_crypts];
    memset(c, 0, sizeof *c);
    int rc = puts0(c->name, l->f[0], what, err);
    if (!rc)
        rc = puts0(c->source, l->f[1], what, err);
    /* "-" and "none" both mean: ask for a passphrase. */
    if (!rc && l->n > 2 && strcmp(l->f[2], "-") != 0 && strcmp(l->f[2], "none") != 0)
        rc = puts0(c->key, l->f[2], what, err);
    if (!rc && l->n > 3)
        rc = puts0(c->options, l->f[3], what, err);
    if (!rc)
        rc = spec_at(&c->spec, c->source, what, l->no, err);
    if (!rc)
        bc->n_crypts++;
    return rc;
}

int bootconf_crypttab(struct bootconf *bc, const char *text, size_t len, struct asr_error *err)
{
    return each_line(bc, "crypttab", text, len, false, NULL, crypt_line, err);
}

/* ---- mdadm.conf ---------------------------------------------------------------------------- */

static int array_word(struct bootarray *a, const char *w, const char *what, size_t no,
                      struct asr_error *err)
{
    if (strncasecmp(w, "uuid=", 5) == 0) {
        struct bootspec u = {.kind = BOOTSPEC_MD_UUID};
        int rc = uuid_at(u.value, w + 5, true, what, no, err);
        if (!rc)
            a->spec = u;
        return rc;
    }
    if (strncasecmp(w, "name=", 5) == 0)
        return puts0(a->name, w + 5, what, err);
    if (!strchr(w, '=') && !a->device[0])
        return puts0(a->device, w, what, err);
    return 0; /* metadata=, devices=, num-devices=, level=, spares=: not an identity */
}

static int mdadm_line(struct bootconf *bc, struct line *l, const char *what,
                      struct asr_error *err)
{
    size_t first = 0;
    struct bootarray *a;
    if (l->continuation) {
        /* mdadm: a line starting with blank space continues the previous keyword line. */
        if (!bc->array_open)
            return 0;
        a = &bc->arrays[bc->n_arrays - 1];
    } else {
        bc->array_open = strcasecmp(l->f[0], "ARRAY") == 0;
        if (!bc->array_open)
            return 0;
        if (bc->n_arrays >= BOOTCONF_MAX_ENTRIES)
            return asr_fail_public(err, ASR_E_LIMIT, "%s: more than %u arrays", what,
                                   BOOTCONF_MAX_ENTRIES);
        a = &bc->arrays[bc->n_arrays++];
        memset(a, 0, sizeof *a);
        first = 1;
    }
    for (size_t i = first; i < l->n; i++) {
        int rc = array_word(a, l->f[i], what, l->no, err);
        if (rc)
            return rc;
    }
    return 0;
}

int bootconf_mdadm(struct bootconf *bc, const char *text, size_t len, struct asr_error *err)
{
    bc->array_open = false;
    return each_line(bc, "mdadm.conf", text, len, false, NULL, mdadm_line, err);
}

/* ---- kernel command lines ------------------------------------------------------------------ */

static bool spec_seen(const struct bootspec *list, size_t n, const struct bootspec *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].kind == s->kind && strcmp(list[i].value, s->value) == 0 &&
            strcmp(list[i].lv, s->lv) == 0)
            return true;
    return false;
}

static int add_spec(struct bootspec *list, size_t *n, const struct bootspec *s, const char *what,
                    size_t no, struct asr_error *err)
{
    if (spec_seen(list, *n, s))
        return 0;
    if (*n >= BOOTCONF_MAX_ENTRIES)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: line %zu: more than %u specs", what, no,
                               BOOTCONF_MAX_ENTRIES);
    list[(*n)++] = *s;
    return 0;
}

static int cmdline_arg(struct bootcmdline *k, const char *a, const char *what, size_t no,
                       struct asr_error *err)
{
    struct bootspec s;
    memset(&s, 0, sizeof s);
    int rc = 0;
    if (strncmp(a, "root=", 5) == 0) {
        if (k->have_root)
            return 0;
        rc = spec_at(&k->root, a + 5, what, no, err);
        k->have_root = rc == 0;
    } else if (strncmp(a, "resume=", 7) == 0) {
        if (k->have_resume)
            return 0;
        rc = spec_at(&k->resume, a + 7, what, no, err);
        k->have_resume = rc == 0;
    } else if (strncmp(a, "rootflags=", 10) == 0) {
        if (!k->rootflags[0])
            rc = puts0(k->rootflags, a + 10, what, err);
    } else if (strncmp(a, "rd.lvm.lv=", 10) == 0) {
        const char *v = a + 10, *slash = strchr(v, '/');
        if (!slash || slash == v || !slash[1] || strchr(slash + 1, '/'))
            return asr_fail_public(err, ASR_E_CORRUPT, "%s: line %zu: %s: want VG/LV", what, no,
                                   a);
        s.kind = BOOTSPEC_LV;
        rc = put(s.value, v, (size_t)(slash - v), what, err);
        if (!rc)
            rc = puts0(s.lv, slash + 1, what, err);
        if (!rc)
            rc = add_spec(k->lvs, &k->n_lvs, &s, what, no, err);
    } else if (strncmp(a, "rd.luks.uuid=", 13) == 0) {
        const char *v = a + 13;
        if (strncmp(v, "luks-", 5) == 0) /* dracut takes both spellings */
            v += 5;
        s.kind = BOOTSPEC_LUKS_UUID;
        rc = uuid_at(s.value, v, false, what, no, err);
        if (!rc)
            rc = add_spec(k->luks, &k->n_luks, &s, what, no, err);
    } else if (strncmp(a, "rd.md.uuid=", 11) == 0) {
        s.kind = BOOTSPEC_MD_UUID;
        rc = uuid_at(s.value, a + 11, true, what, no, err);
        if (!rc)
            rc = add_spec(k->mds, &k->n_mds, &s, what, no, err);
    }
    return rc;
}

static int cmdline_args(struct bootconf *bc, struct line *l, size_t first, const char *what,
                        struct asr_error *err)
{
    for (size_t i = first; i < l->n; i++) {
        int rc = cmdline_arg(&bc->cmdline, l->f[i], what, l->no, err);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmdline_line(struct bootconf *bc, struct line *l, const char *what,
                        struct asr_error *err)
{
    return cmdline_args(bc, l, 0, what, err);
}

int bootconf_cmdline(struct bootconf *bc, const char *text, size_t len, struct asr_error *err)
{
    return each_line(bc, "kernel command line", text, len, true, NULL, cmdline_line, err);
}

static int grub_line(struct bootconf *bc, struct line *l, const char *what,
                     struct asr_error *err)
{
    const char *w = l->f[0];
    if (strcmp(w, "linux") && strcmp(w, "linux16") && strcmp(w, "linuxefi"))
        return 0;
    return cmdline_args(bc, l, 2, what, err); /* after the kernel's path */
}

int bootconf_grub(struct bootconf *bc, const char *text, size_t len, struct asr_error *err)
{
    static const char *const linux_words[] = {"linux", "linux16", "linuxefi", NULL};
    return each_line(bc, "grub.cfg", text, len, true, linux_words, grub_line, err);
}

static int entry_line(struct bootconf *bc, struct line *l, const char *what,
                      struct asr_error *err)
{
    return strcmp(l->f[0], "options") == 0 ? cmdline_args(bc, l, 1, what, err) : 0;
}

int bootconf_loader_entry(struct bootconf *bc, const char *text, size_t len,
                          struct asr_error *err)
{
    static const char *const options[] = {"options", NULL};
    return each_line(bc, "loader entry", text, len, true, options, entry_line, err);
}
