/* asrimg rescue images DIR: the images on the recovery drive, newest first, as the recovery
 * environment offers them: file, machine, date, disks, size, and whether each opens. A damaged
 * image is listed as damaged; an unfinished one (IMAGE.partial, a split set missing a part, a
 * file cut off before its footer) is skipped with a line saying so. */
#include "rescue.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "args.h"
#include "json.h"
#include "table.h"
#include "util.h"

/* The one place that knows where the machine's name comes from (see rescue.h). */
void rescue_machine_name(const char *file_name, const struct asr_image *im, char *out, size_t len)
{
    const struct asr_machine_desc *m = im ? asr_image_machine(im) : NULL;
    if (m && m->hostname[0]) {
        snprintf(out, len, "%s", m->hostname);
        return;
    }
    static const char suffix[] = "-YYYYmmdd-HHMMSS.asrimg";
    size_t n = strlen(file_name), k = sizeof suffix - 1;
    snprintf(out, len, "unknown");
    if (n <= k || strcmp(file_name + n - 7, ".asrimg"))
        return;
    const char *s = file_name + n - k;
    for (size_t i = 0; i < k - 7; i++) {
        bool digit = isdigit((unsigned char)s[i]);
        if (suffix[i] == '-' ? s[i] != '-' : !digit)
            return;
    }
    snprintf(out, len, "%.*s", (int)(n - k), file_name);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* "IMAGE.NNN" (NNN from 002): a later part of a split set; *base_len the length of IMAGE. */
static bool later_part(const char *name, size_t *base_len)
{
    size_t n = strlen(name);
    if (n < 5 || name[n - 4] != '.' || !isdigit((unsigned char)name[n - 3]) || !isdigit((unsigned char)name[n - 2]) ||
        !isdigit((unsigned char)name[n - 1]) || !strcmp(name + n - 3, "000") || !strcmp(name + n - 3, "001"))
        return false;
    *base_len = n - 4;
    return true;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int skip(struct rescue_list *l, const char *name, const char *why, const char *detail)
{
    struct rescue_skipped *v = realloc(l->skipped, (l->nskipped + 1) * sizeof *v);
    if (!v)
        return EXIT_FAIL;
    l->skipped = v;
    struct rescue_skipped *s = &v[l->nskipped];
    *s = (struct rescue_skipped){.name = strdup(name), .why = why};
    if (!s->name)
        return EXIT_FAIL;
    snprintf(s->detail, sizeof s->detail, "%s", detail ? detail : "");
    l->nskipped++;
    return EXIT_OK;
}

/* Opens one candidate file and files it as an image, a damaged one, a skipped one, or nothing
 * (a file of another kind beside the images). */
static int consider(struct rescue_list *l, const char *dir, const char *name, const struct stat *st)
{
    size_t base_len;
    if (ends_with(name, ".partial"))
        return skip(l, name, "unfinished: a backup still being written, or one that was cut off", NULL);
    if (later_part(name, &base_len)) {
        char base[512];
        struct stat bs;
        snprintf(base, sizeof base, "%s/%.*s", dir, (int)base_len, name);
        if (base_len < 256 && stat(base, &bs) == 0)
            return EXIT_OK; /* listed with its first part */
        return skip(l, name, "incomplete: a part of a split set whose first part is missing", NULL);
    }
    struct rescue_image e = {.path = join(dir, name), .name = strdup(name)};
    if (!e.path || !e.name) {
        free(e.path);
        free(e.name);
        return EXIT_FAIL;
    }
    struct asr_error err = {0};
    struct asr_image *im = NULL;
    int rc = asr_image_open(e.path, &im, &err);
    if (rc == ASR_E_NOT_IMAGE && !ends_with(name, ".asrimg")) {
        free(e.path);
        free(e.name);
        return EXIT_OK; /* not an image, and not named as one: a file of another kind */
    }
    if (rc == ASR_E_PARTS || rc == ASR_E_INCOMPLETE) {
        int r = skip(l, name, "incomplete: parts missing, or the image was cut off before its end", err.msg);
        free(e.path);
        free(e.name);
        return r;
    }
    rescue_machine_name(name, rc == ASR_OK ? im : NULL, e.machine, sizeof e.machine);
    e.opens = rc == ASR_OK;
    if (e.opens) {
        const struct asr_image_info *info = asr_image_info(im);
        e.created = info->created_unix;
        e.image_bytes = info->image_bytes;
        e.parts = info->part_count;
        e.disks = asr_image_disk_count(im);
        for (uint32_t d = 0; d < e.disks && d < ASR_MAX_DISKS; d++)
            e.disk_bytes[d] = asr_image_disk(im, d)->size_bytes;
    } else {
        snprintf(e.why, sizeof e.why, "%s", err.msg);
        e.created = (uint64_t)st->st_mtime;
        e.image_bytes = (uint64_t)st->st_size;
        e.parts = 1;
    }
    asr_image_free(im);
    struct rescue_image *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v) {
        free(e.path);
        free(e.name);
        return EXIT_FAIL;
    }
    l->v = v;
    l->v[l->n++] = e;
    return EXIT_OK;
}

static int newest_first(const void *a, const void *b)
{
    const struct rescue_image *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct rescue_skipped *)a)->name, ((const struct rescue_skipped *)b)->name);
}

int rescue_list_dir(const char *dir, struct rescue_list *out)
{
    *out = (struct rescue_list){0};
    DIR *d = opendir(dir);
    if (!d)
        return cli_error("rescue: cannot read the images directory: %s: %s", dir, strerror(errno)), EXIT_FAIL;
    struct dirent *e;
    int rc = EXIT_OK;
    while (rc == EXIT_OK && (e = readdir(d))) {
        struct stat st;
        char *path = join(dir, e->d_name);
        if (!path) {
            rc = EXIT_FAIL;
            break;
        }
        bool file = e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode);
        free(path);
        if (file)
            rc = consider(out, dir, e->d_name, &st);
    }
    closedir(d);
    if (rc) {
        rescue_list_free(out);
        return cli_error("rescue: out of memory listing %s", dir), EXIT_FAIL;
    }
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, newest_first);
    if (out->nskipped)
        qsort(out->skipped, out->nskipped, sizeof *out->skipped, by_name);
    return EXIT_OK;
}

void rescue_list_free(struct rescue_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].path);
    }
    for (size_t i = 0; i < l->nskipped; i++)
        free(l->skipped[i].name);
    free(l->v);
    free(l->skipped);
    *l = (struct rescue_list){0};
}

static void date_text(uint64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if ((uint64_t)tt != t || !gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(out, len, "?");
}

/* "1: 64.0 MiB", "2: 64.0 MiB + 1.0 GiB" */
static void disks_text(const struct rescue_image *e, char *out, size_t len)
{
    if (!e->opens) {
        snprintf(out, len, "?");
        return;
    }
    size_t n = (size_t)snprintf(out, len, "%u:", e->disks);
    for (uint32_t d = 0; d < e->disks && n < len; d++) {
        char b[32];
        n += (size_t)snprintf(out + n, len - n, "%s%s", d ? " + " : " ", cli_bytes(e->disk_bytes[d], b, sizeof b));
    }
}

enum { C_NUM, C_FILE, C_MACHINE, C_DATE, C_DISKS, C_SIZE, C_STATE, C_COLS };

static void row(const struct rescue_image *e, size_t number, char buf[5][700], const char *cells[C_COLS])
{
    if (number)
        snprintf(buf[0], 700, "%zu", number);
    else
        snprintf(buf[0], 700, "-");
    date_text(e->created, buf[1], 700);
    if (!e->opens)
        snprintf(buf[1] + strlen(buf[1]), 700 - strlen(buf[1]), " (file)");
    disks_text(e, buf[2], 700);
    cli_bytes(e->image_bytes, buf[3], 700);
    if (e->parts > 1)
        snprintf(buf[3] + strlen(buf[3]), 700 - strlen(buf[3]), " in %u parts", e->parts);
    if (e->opens)
        snprintf(buf[4], 700, "ok");
    else
        snprintf(buf[4], 700, "damaged: %s", e->why);
    cells[C_NUM] = buf[0];
    cells[C_FILE] = e->name;
    cells[C_MACHINE] = e->machine;
    cells[C_DATE] = buf[1];
    cells[C_DISKS] = buf[2];
    cells[C_SIZE] = buf[3];
    cells[C_STATE] = buf[4];
}

/* numbered: the images that open get 1, 2, ... (what the user picks from), damaged ones "-". */
void rescue_list_print(FILE *f, const struct rescue_list *l, bool numbered)
{
    static const char *const headers[C_COLS] = {"#", "file", "machine", "date (UTC)", "disks", "size", "state"};
    struct table t;
    table_init(&t, f, "  ", numbered ? "rllllrl" : "ollllrl", headers);
    char buf[5][700];
    const char *cells[C_COLS];
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            table_header(&t);
        for (size_t i = 0, k = 0; i < l->n; i++) {
            row(&l->v[i], numbered && l->v[i].opens ? ++k : 0, buf, cells);
            if (!numbered)
                cells[C_NUM] = "";
            pass ? table_row(&t, cells) : table_measure(&t, cells);
        }
    }
    for (size_t i = 0; i < l->nskipped; i++)
        fprintf(f, "  skipped %s: %s%s%s\n", l->skipped[i].name, l->skipped[i].why, l->skipped[i].detail[0] ? ": " : "",
               l->skipped[i].detail);
}

static void print_json(const char *dir, const struct rescue_list *l)
{
    struct json j;
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "dir", dir);
    json_arr(&j, "images");
    for (size_t i = 0; i < l->n; i++) {
        const struct rescue_image *e = &l->v[i];
        char date[64];
        date_text(e->created, date, sizeof date);
        json_obj(&j, NULL);
        json_str(&j, "file", e->name);
        json_str(&j, "path", e->path);
        json_str(&j, "machine", e->machine);
        json_bool(&j, "opens", e->opens);
        json_str(&j, "state", e->opens ? "ok" : "damaged");
        if (e->opens) {
            json_u64(&j, "created_unix", e->created);
            json_str(&j, "date", date);
            json_u64(&j, "disk_count", e->disks);
            json_arr(&j, "disk_bytes");
            for (uint32_t d = 0; d < e->disks; d++)
                json_u64(&j, NULL, e->disk_bytes[d]);
            json_end_arr(&j);
        } else {
            json_u64(&j, "mtime_unix", e->created);
            json_str(&j, "error", e->why);
        }
        json_u64(&j, "image_bytes", e->image_bytes);
        json_u64(&j, "parts", e->parts);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_arr(&j, "skipped");
    for (size_t i = 0; i < l->nskipped; i++) {
        json_obj(&j, NULL);
        json_str(&j, "file", l->skipped[i].name);
        json_str(&j, "why", l->skipped[i].why);
        if (l->skipped[i].detail[0])
            json_str(&j, "error", l->skipped[i].detail);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_end_obj(&j);
    json_finish(&j);
}

int rescue_images(int argc, char **argv)
{
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *dir = NULL, *o;
    bool json = false;
    for (int opt; (opt = cli_args_next(&args, &o));) {
        if (opt == OPT_JSON)
            json = true;
        else if (opt == ARG_WORD && !dir)
            dir = o;
        else if (opt == ARG_WORD)
            return cli_error("rescue images: one directory at a time"), EXIT_USAGE;
        else
            return opt == ARG_HELP ? EXIT_OK : EXIT_USAGE;
    }
    if (!dir)
        return cli_error("rescue images: no directory given (see 'asrimg rescue images --help')"), EXIT_USAGE;
    struct rescue_list l;
    if (rescue_list_dir(dir, &l))
        return EXIT_FAIL;
    if (json)
        print_json(dir, &l);
    else if (!l.n && !l.nskipped)
        printf("no images in %s\n", dir);
    else
        rescue_list_print(stdout, &l, false);
    rescue_list_free(&l);
    return EXIT_OK;
}
