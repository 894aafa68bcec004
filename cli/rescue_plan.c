/* asrimg rescue plan IMAGE: ASR's matching of an image's disks to this machine's disks. Each image
 * disk goes to a disk at least as large with the same logical sector size, never the recovery
 * drive (the disk holding the images), never a disk twice: the one of exactly its size first,
 * else the smallest that fits. Two equally good disks are an ambiguity the user settles (the
 * interactive flow asks; the unattended one needs a target named). Targets named with --target
 * pass the same rules. The plan ends with the `asrimg restore` command it implies. */
#include "rescue.h"

#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "json.h"
#include "table.h"
#include "util.h"

/* ---- the disks of this machine ----------------------------------------------------------- */

/* Not replacement disks: loop devices, RAM disks, optical drives, floppies, network block
 * devices, and what is stacked on other disks (device-mapper, md). */
static bool not_a_disk(const char *name)
{
    static const char *const prefixes[] = {"loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

/* Whether the storage at path is the recovery drive: --drive itself (or what it is a partition
 * of), or the disk the images' directory lives on, through partitions, loop devices and stacks. */
static bool is_drive(const struct rescue_plan *p, const char *path, struct asr_disk *bare)
{
    struct asr_error err = {0};
    if (p->drive) {
        const char *both[2] = {p->drive, path};
        if (!strcmp(p->drive, path) || asr_check_distinct_storage(both, 2, "disk", &err) != ASR_OK)
            return true;
    }
    return p->holder && asr_check_image_placement(p->holder, -1, &bare, 1, &err) != ASR_OK;
}

/* Adds path to the candidates (size and sector size read from it): its index, or -1 after
 * saying why it cannot be read when loud. */
static int add_disk(struct rescue_plan *p, const char *path, bool loud)
{
    if (p->ncand == RESCUE_DISKS_MAX)
        return loud ? (cli_error("rescue: more than %d disks", RESCUE_DISKS_MAX), -1) : -1;
    struct asr_disk *bare = NULL;
    struct asr_error err = {0};
    if (asr_disk_open_bare(path, &bare, &err) != ASR_OK) {
        if (loud)
            cli_error("%s", err.msg);
        return -1;
    }
    const struct asr_disk_desc *d = asr_disk_desc(bare);
    struct rescue_disk *c = &p->cand[p->ncand];
    *c = (struct rescue_disk){.size = d->size_bytes, .sector = d->logical_sector, .assigned = -1};
    snprintf(c->path, sizeof c->path, "%s", path);
    c->drive = is_drive(p, path, bare);
    asr_disk_close(bare);
    if (!c->size)
        return -1; /* a card reader without a card */
    return (int)p->ncand++;
}

int rescue_disks(const char *drive, const char *holder, struct rescue_plan *p)
{
    p->drive = drive;
    p->holder = holder;
    p->ncand = 0;
    const char *env = getenv("ASRIMG_RESCUE_DISKS");
    if (env && *env) {
        /* The candidates named explicitly (tests name loop devices so): each must be readable. */
        char *copy = strdup(env), *save = NULL;
        if (!copy)
            return cli_error("rescue: out of memory"), EXIT_FAIL;
        for (char *tok = strtok_r(copy, " ,:\t\n", &save); tok; tok = strtok_r(NULL, " ,:\t\n", &save))
            if (add_disk(p, tok, true) < 0 && p->ncand == RESCUE_DISKS_MAX)
                break;
        free(copy);
        return EXIT_OK;
    }
    DIR *d = opendir("/sys/block");
    if (!d)
        return cli_error("rescue: cannot list the disks: /sys/block: not readable"), EXIT_FAIL;
    struct dirent *e;
    char names[RESCUE_DISKS_MAX][64];
    size_t n = 0;
    while ((e = readdir(d)) && n < RESCUE_DISKS_MAX)
        if (e->d_name[0] != '.' && !not_a_disk(e->d_name) && strlen(e->d_name) < 64)
            snprintf(names[n++], 64, "%.63s", e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (size_t i = 0; i < n; i++) {
        char path[80];
        snprintf(path, sizeof path, "/dev/%.63s", names[i]);
        for (char *s = path; *s; s++)
            if (*s == '!') /* sysfs writes cciss/c0d0 as cciss!c0d0 */
                *s = '/';
        add_disk(p, path, false);
    }
    return EXIT_OK;
}

/* ---- matching ---------------------------------------------------------------------------- */

int rescue_add_target(struct rescue_plan *p, const char *v, const char *cmd)
{
    if (p->nto == RESCUE_TARGETS_MAX)
        return cli_error("%s: too many targets", cmd), EXIT_USAGE;
    const char *eq = strchr(v, '=');
    unsigned long disk = p->nto;
    const char *path = v;
    if (eq && eq > v && strspn(v, "0123456789") == (size_t)(eq - v)) {
        char num[16] = "";
        if ((size_t)(eq - v) >= sizeof num || (memcpy(num, v, (size_t)(eq - v)), !cli_parse_uint(num, ASR_MAX_DISKS - 1, &disk)))
            return cli_error("%s: --target %s: no image disk %.*s", cmd, v, (int)(eq - v), v), EXIT_USAGE;
        path = eq + 1;
    }
    if (!*path || strlen(path) >= sizeof p->to[0].path)
        return cli_error("%s: --target %s: not a device", cmd, v), EXIT_USAGE;
    for (size_t i = 0; i < p->nto; i++)
        if (p->to[i].disk == disk)
            return cli_error("%s: --target %s: image disk %lu already has a target (%s)", cmd, v, disk, p->to[i].path),
                   EXIT_USAGE;
    p->to[p->nto] = (struct rescue_target){.disk = (uint32_t)disk};
    snprintf(p->to[p->nto].path, sizeof p->to[0].path, "%s", path);
    p->nnamed = ++p->nto;
    return EXIT_OK;
}

/* The candidate that is path's storage (the same device under another name counts), adding it
 * when it is none of them: its index, or -1 after saying why. */
static int find_disk(struct rescue_plan *p, const char *path)
{
    for (size_t i = 0; i < p->ncand; i++) {
        struct asr_error err = {0};
        const char *both[2] = {p->cand[i].path, path};
        if (!strcmp(p->cand[i].path, path) || asr_check_distinct_storage(both, 2, "disk", &err) != ASR_OK)
            return (int)i;
    }
    return add_disk(p, path, true);
}

static int check_target(const struct asr_image *im, struct rescue_plan *p, const struct rescue_target *t)
{
    if (t->disk >= asr_image_disk_count(im))
        return cli_error("rescue: --target %s: the image has no disk %u (it holds %u, numbered from 0)", t->path,
                         t->disk, asr_image_disk_count(im)),
               EXIT_USAGE;
    const struct asr_disk_desc *want = asr_image_disk(im, t->disk);
    int i = find_disk(p, t->path);
    if (i < 0)
        return EXIT_FAIL;
    struct rescue_disk *c = &p->cand[i];
    char a[32], b[32];
    if (c->drive)
        return cli_error("rescue: target %s is the recovery drive (it holds the images): it is never a target", t->path),
               EXIT_FAIL;
    if (c->assigned >= 0)
        return cli_error("rescue: target %s given twice (image disks %d and %u)", t->path, c->assigned, t->disk), EXIT_FAIL;
    if (c->size < want->size_bytes)
        return cli_error("rescue: target %s is smaller than image disk %u: %llu bytes (%s) < %llu bytes (%s): a restore "
                         "needs a disk at least as large",
                         t->path, t->disk, (unsigned long long)c->size, cli_bytes(c->size, a, sizeof a),
                         (unsigned long long)want->size_bytes, cli_bytes(want->size_bytes, b, sizeof b)),
               EXIT_FAIL;
    if (c->sector != want->logical_sector)
        return cli_error("rescue: target %s has %u-byte sectors, image disk %u had %u-byte sectors", t->path, c->sector,
                         t->disk, want->logical_sector),
               EXIT_FAIL;
    c->assigned = (int)t->disk;
    p->how[t->disk] = t->asked ? "chosen when asked" : "named (--target)";
    return EXIT_OK;
}

static bool fits(const struct rescue_disk *c, const struct asr_disk_desc *d)
{
    return !c->drive && c->assigned == -1 && c->sector == d->logical_sector && c->size >= d->size_bytes;
}

/* The best free candidate for disk d (exact: only one of its size), ties recorded; -1 for none. */
static int best(struct rescue_plan *p, const struct asr_image *im, uint32_t d, bool exact)
{
    const struct asr_disk_desc *dd = asr_image_disk(im, d);
    int pick = -1;
    for (size_t i = 0; i < p->ncand; i++) {
        const struct rescue_disk *c = &p->cand[i];
        if (!fits(c, dd) || (exact && c->size != dd->size_bytes))
            continue;
        if (pick < 0 || c->size < p->cand[pick].size) {
            pick = (int)i;
            p->ntie[d] = 0;
        }
        if (c->size == p->cand[pick].size && p->ntie[d] < 8)
            p->tie[d][p->ntie[d]++] = i;
    }
    if (pick >= 0 && p->ntie[d] > 1) {
        p->ambiguous[d] = true;
        p->how[d] = "ambiguous: equally good disks";
        for (size_t k = 0; k < p->ntie[d]; k++)
            p->cand[p->tie[d][k]].assigned = -2; /* held for the answer: offered to no other disk */
        return -1;
    }
    return pick;
}

static void assign(struct rescue_plan *p, uint32_t d, int i, const char *how)
{
    p->cand[i].assigned = (int)d;
    p->how[d] = how;
    p->to[p->nto] = (struct rescue_target){.disk = d};
    _Static_assert(sizeof p->to[0].path == sizeof p->cand[0].path, "paths of one size");
    memcpy(p->to[p->nto].path, p->cand[i].path, sizeof p->to[0].path);
    p->nto++;
}

static bool has_target(const struct rescue_plan *p, uint32_t d)
{
    for (size_t i = 0; i < p->nto; i++)
        if (p->to[i].disk == d)
            return true;
    return false;
}

int rescue_match(const struct asr_image *im, struct rescue_plan *p)
{
    uint32_t n = asr_image_disk_count(im);
    p->nto = p->nnamed; /* a match again (after an answer) starts from the named targets */
    for (uint32_t d = 0; d < n; d++) {
        p->how[d] = NULL;
        p->ambiguous[d] = false;
        p->ntie[d] = 0;
    }
    for (size_t i = 0; i < p->ncand; i++)
        p->cand[i].assigned = -1;
    for (size_t i = 0; i < p->nto; i++) {
        int rc = check_target(im, p, &p->to[i]);
        if (rc)
            return rc;
    }
    /* Exact sizes first, over every disk, so that a smaller disk's "smallest that fits" never
     * takes the disk of exactly another's size; then the rest, largest first. */
    for (uint32_t d = 0; d < n; d++) {
        int i = has_target(p, d) ? -1 : best(p, im, d, true);
        if (i >= 0)
            assign(p, d, i, "exact size");
    }
    uint32_t order[ASR_MAX_DISKS];
    for (uint32_t d = 0; d < n; d++)
        order[d] = d;
    for (uint32_t a = 1; a < n; a++)
        for (uint32_t b = a; b > 0 && asr_image_disk(im, order[b])->size_bytes > asr_image_disk(im, order[b - 1])->size_bytes; b--) {
            uint32_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t d = order[k];
        if (has_target(p, d) || p->ambiguous[d])
            continue;
        int i = best(p, im, d, false);
        if (i >= 0)
            assign(p, d, i, "smallest that fits");
        else if (!p->ambiguous[d])
            p->how[d] = "no disk fits: none free at least as large with the same sector size";
    }
    p->complete = true;
    for (uint32_t d = 0; d < n; d++)
        p->complete = p->complete && has_target(p, d);
    return EXIT_OK;
}

/* ---- what the plan says ------------------------------------------------------------------- */

static const char *target_of(const struct rescue_plan *p, uint32_t d)
{
    for (size_t i = 0; i < p->nto; i++)
        if (p->to[i].disk == d)
            return p->to[i].path;
    return NULL;
}

static void role(const struct asr_image *im, const struct rescue_plan *p, size_t i, char *out, size_t len)
{
    const struct rescue_disk *c = &p->cand[i];
    if (c->drive) {
        snprintf(out, len, "recovery drive: never a target");
        return;
    }
    if (c->assigned >= 0) {
        snprintf(out, len, "target of image disk %d (%s)", c->assigned, p->how[c->assigned]);
        return;
    }
    for (uint32_t d = 0; d < asr_image_disk_count(im); d++)
        for (size_t k = 0; k < p->ntie[d] && p->ambiguous[d]; k++)
            if (p->tie[d][k] == i) {
                snprintf(out, len, "ambiguous for image disk %u", d);
                return;
            }
    bool fits_any = false, sector = false;
    for (uint32_t d = 0; d < asr_image_disk_count(im); d++) {
        const struct asr_disk_desc *dd = asr_image_disk(im, d);
        fits_any = fits_any || c->size >= dd->size_bytes;
        sector = sector || c->sector == dd->logical_sector;
    }
    snprintf(out, len, "%s", !sector ? "other sector size" : !fits_any ? "too small" : "not needed");
}

/* "'a b'" for a word the shell would split, else the word. */
static size_t quoted(const char *w, char *out, size_t len)
{
    if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,+@%") == strlen(w))
        return (size_t)snprintf(out, len, "%s", w);
    size_t n = (size_t)snprintf(out, len, "'");
    for (; *w && n < len; w++)
        n += (size_t)(*w == '\'' ? snprintf(out + n, len - n, "'\\''") : snprintf(out + n, len - n, "%c", *w));
    return n < len ? n + (size_t)snprintf(out + n, len - n, "'") : n;
}

void rescue_command_line(const char *const *argv, char *out, size_t len)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; argv[i] && n + 1 < len; i++) {
        if (i)
            out[n++] = ' ', out[n] = 0;
        n += quoted(argv[i], out + n, len - n);
    }
}

size_t rescue_restore_argv(const char *image, const struct asr_image *im, const struct rescue_plan *p, bool json,
                           bool boot_entries, const char **argv, size_t max)
{
    static char to[RESCUE_TARGETS_MAX][300];
    size_t n = 0;
    argv[n++] = "asrimg";
    argv[n++] = "restore";
    argv[n++] = image;
    for (uint32_t d = 0; d < asr_image_disk_count(im) && n + 8 < max; d++) {
        const char *t = target_of(p, d);
        if (!t || d >= RESCUE_TARGETS_MAX)
            continue;
        if (asr_image_disk_count(im) > 1)
            snprintf(to[d], sizeof to[d], "%u=%s", d, t);
        else
            snprintf(to[d], sizeof to[d], "%s", t);
        argv[n++] = "--to";
        argv[n++] = to[d];
    }
    argv[n++] = "--verify";
    argv[n++] = "--yes";
    if (boot_entries)
        argv[n++] = "--boot-entries";
    if (json)
        argv[n++] = "--json";
    argv[n] = NULL;
    return n;
}

static void machine_and_date(const char *image, const struct asr_image *im, char *machine, size_t mlen, char *date,
                             size_t dlen)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", image);
    rescue_machine_name(basename(copy), im, machine, mlen);
    time_t t = (time_t)asr_image_info(im)->created_unix;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(date, dlen, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(date, dlen, "?");
}

void rescue_plan_print(FILE *f, const char *image, const struct asr_image *im, const struct rescue_plan *p)
{
    char machine[256], date[64], a[32], b[32];
    machine_and_date(image, im, machine, sizeof machine, date, sizeof date);
    uint32_t n = asr_image_disk_count(im);
    fprintf(f, "image %s: machine %s, taken %s, %u disk%s\n", image, machine, date, n, n == 1 ? "" : "s");
    static const char *const headers[] = {"disk", "size", "sector", "role"};
    struct table t;
    table_init(&t, f, "  ", "lrrl", headers);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) {
            fprintf(f, "disks here:\n");
            table_header(&t);
        }
        for (size_t i = 0; i < p->ncand; i++) {
            char sector[16], what[160];
            snprintf(sector, sizeof sector, "%u", p->cand[i].sector);
            role(im, p, i, what, sizeof what);
            const char *cells[] = {p->cand[i].path, cli_bytes(p->cand[i].size, a, sizeof a), sector, what};
            pass ? table_row(&t, cells) : table_measure(&t, cells);
        }
    }
    if (!p->ncand)
        fprintf(f, "disks here: none\n");
    fprintf(f, "plan:\n");
    for (uint32_t d = 0; d < n; d++) {
        const struct asr_disk_desc *dd = asr_image_disk(im, d);
        const char *to = target_of(p, d);
        fprintf(f, "  image disk %u (%s, %u-byte sectors, was %s) -> ", d, cli_bytes(dd->size_bytes, a, sizeof a),
               dd->logical_sector, dd->source);
        if (to) {
            int i = -1;
            for (size_t k = 0; k < p->ncand; k++)
                if (p->cand[k].assigned == (int)d)
                    i = (int)k;
            fprintf(f, "%s (%s%s%s)\n", to, i >= 0 ? cli_bytes(p->cand[i].size, b, sizeof b) : "", i >= 0 ? ", " : "",
                   p->how[d]);
        } else if (p->ambiguous[d]) {
            fprintf(f, "ambiguous: ");
            for (size_t k = 0; k < p->ntie[d]; k++)
                fprintf(f, "%s%s", k ? (k + 1 == p->ntie[d] ? " or " : ", ") : "", p->cand[p->tie[d][k]].path);
            fprintf(f, " (equally good: %s each); name one with --target %s%s\n", cli_bytes(p->cand[p->tie[d][0]].size, b, sizeof b),
                   n > 1 ? "N=" : "", "DEV");
        } else {
            fprintf(f, "%s\n", p->how[d] ? p->how[d] : "no target");
        }
    }
    if (p->complete) {
        const char *argv[16 + 2 * RESCUE_TARGETS_MAX];
        char line[8192];
        rescue_restore_argv(image, im, p, false, false, argv, sizeof argv / sizeof argv[0]);
        rescue_command_line(argv, line, sizeof line);
        fprintf(f, "restore command:\n  %s\n", line);
    }
}

void rescue_plan_json(const char *image, const struct asr_image *im, const struct rescue_plan *p, const char *command)
{
    char machine[256], date[64], what[160];
    machine_and_date(image, im, machine, sizeof machine, date, sizeof date);
    struct json j;
    json_begin(&j, stdout);
    json_obj(&j, NULL);
    json_str(&j, "image", image);
    json_str(&j, "machine", machine);
    json_u64(&j, "created_unix", asr_image_info(im)->created_unix);
    const char *drive = p->drive;
    for (size_t i = 0; i < p->ncand && !drive; i++)
        if (p->cand[i].drive)
            drive = p->cand[i].path;
    drive ? json_str(&j, "drive", drive) : json_null(&j, "drive");
    json_arr(&j, "disks");
    for (size_t i = 0; i < p->ncand; i++) {
        role(im, p, i, what, sizeof what);
        json_obj(&j, NULL);
        json_str(&j, "path", p->cand[i].path);
        json_u64(&j, "size_bytes", p->cand[i].size);
        json_u64(&j, "logical_sector", p->cand[i].sector);
        json_bool(&j, "drive", p->cand[i].drive);
        json_str(&j, "role", what);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_arr(&j, "plan");
    for (uint32_t d = 0; d < asr_image_disk_count(im); d++) {
        const struct asr_disk_desc *dd = asr_image_disk(im, d);
        const char *to = target_of(p, d);
        json_obj(&j, NULL);
        json_u64(&j, "disk", d);
        json_u64(&j, "size_bytes", dd->size_bytes);
        json_u64(&j, "logical_sector", dd->logical_sector);
        to ? json_str(&j, "target", to) : json_null(&j, "target");
        json_str(&j, "how", p->how[d] ? p->how[d] : "no target");
        json_bool(&j, "ambiguous", p->ambiguous[d]);
        json_arr(&j, "candidates");
        for (size_t k = 0; p->ambiguous[d] && k < p->ntie[d]; k++)
            json_str(&j, NULL, p->cand[p->tie[d][k]].path);
        json_end_arr(&j);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    json_bool(&j, "complete", p->complete);
    command ? json_str(&j, "command", command) : json_null(&j, "command");
    json_end_obj(&j);
    json_finish(&j);
}

int rescue_check_targets(struct asr_image *im, const struct rescue_plan *p, bool show)
{
    struct asr_restore_target_spec spec[RESCUE_TARGETS_MAX];
    for (size_t i = 0; i < p->nto; i++)
        spec[i] = (struct asr_restore_target_spec){p->to[i].path, p->to[i].disk};
    struct asr_restore *rs = NULL;
    struct asr_error err = {0};
    if (asr_restore_open_image(im, spec, p->nto, false, &rs, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        asr_restore_free(rs);
        return EXIT_FAIL;
    }
    char b[32];
    for (size_t i = 0; show && i < asr_restore_target_count(rs); i++) {
        const struct asr_restore_target_info *t = asr_restore_target(rs, i);
        fprintf(stderr, "  %s (%s) holds %s\n    ALL OF IT WILL BE OVERWRITTEN by image disk %u\n", t->path,
                cli_bytes(t->size_bytes, b, sizeof b), t->holds, t->disk_index);
    }
    asr_restore_free(rs);
    return EXIT_OK;
}

/* ---- asrimg rescue plan ----------------------------------------------------------------------- */

int rescue_plan(int argc, char **argv)
{
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *image = NULL, *drive = NULL, *o;
    bool json = false;
    static struct rescue_plan p;
    p = (struct rescue_plan){0};
    for (int opt; (opt = cli_args_next(&args, &o));) {
        int rc = EXIT_OK;
        switch (opt) {
        case OPT_JSON: json = true; break;
        case OPT_DRIVE: drive = o; break;
        case OPT_TARGET: rc = rescue_add_target(&p, o, "rescue plan"); break;
        case ARG_WORD:
            if (image)
                return cli_error("rescue plan: one image at a time"), EXIT_USAGE;
            image = o;
            break;
        case ARG_HELP: return EXIT_OK;
        default: return EXIT_USAGE;
        }
        if (rc)
            return rc;
    }
    if (!image)
        return cli_error("rescue plan: no image given (see 'asrimg rescue plan --help')"), EXIT_USAGE;
    struct asr_image *im = NULL;
    struct asr_error err = {0};
    if (asr_image_open(image, &im, &err) != ASR_OK)
        return cli_error("%s", err.msg), EXIT_FAIL;
    int rc = rescue_disks(drive, image, &p);
    if (!rc)
        rc = rescue_match(im, &p);
    if (rc) {
        asr_image_free(im);
        return rc;
    }
    const char *argv2[16 + 2 * RESCUE_TARGETS_MAX];
    char line[8192] = "";
    if (p.complete) {
        rescue_restore_argv(image, im, &p, false, false, argv2, sizeof argv2 / sizeof argv2[0]);
        rescue_command_line(argv2, line, sizeof line);
    }
    json ? rescue_plan_json(image, im, &p, p.complete ? line : NULL) : rescue_plan_print(stdout, image, im, &p);
    fflush(stdout);
    if (p.complete && !json) {
        fprintf(stderr, "what the restore would overwrite:\n");
        rc = rescue_check_targets(im, &p, true);
    } else if (p.complete)
        rc = rescue_check_targets(im, &p, false);
    else
        rc = (cli_error("rescue plan: not every image disk has a target: see the plan above"), EXIT_FAIL);
    asr_image_free(im);
    return rc;
}
