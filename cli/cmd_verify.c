/* asrimg verify: checks every checksum and structural rule of an image; exit 0 only when every
 * byte that matters checks out. Problems are listed one per line (or in --json), and so are the
 * ranges the source could not read: an image holding them is intact, but it lacks those bytes
 * and whoever restores it must know which. With --against DISK..., compares disks with the image
 * instead, through the same engine code as restore --verify, then reads the storage stacks the
 * image records from those disks and checks them layer by layer (asr_machine_check_stacks). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "disks.h"
#include "layers.h"
#include "image_ref.h"
#include "json.h"
#include "progress.h"
#include "targets.h"
#include "util.h"

#define UNREADABLE_LINES_MAX 100 /* text output; --json lists every range */

struct verify_out {
    bool json;
    struct json *j;
};

static void on_problem(const struct asr_problem *p, void *ctx)
{
    struct verify_out *o = ctx;
    if (!o->json) {
        if (p->part)
            fprintf(stderr, "asrimg: problem: %s: %s (part %u, file offset %llu)\n", p->what, p->message, p->part,
                    (unsigned long long)p->part_offset);
        else
            fprintf(stderr, "asrimg: problem: %s: %s\n", p->what, p->message);
        return;
    }
    json_obj(o->j, NULL);
    json_str(o->j, "status", asr_status_name(p->code));
    json_str(o->j, "what", p->what);
    json_u64(o->j, "part", p->part);
    json_u64(o->j, "part_offset", p->part_offset);
    json_str(o->j, "message", p->message);
    json_end_obj(o->j);
}

/* The unreadable extents of every volume, from the index verify has just checked. Nothing (no
 * JSON keys either) when the image does not open: its problems have been reported already. */
static void list_unreadable(const char *path, bool as_json, struct json *j)
{
    struct cli_image_ref im;
    if (cli_image_ref_open(path, &im, NULL) != ASR_OK)
        return;
    struct asr_reader *r = im.r;
    uint64_t total = 0, ranges = 0, listed = 0;
    for (uint32_t v = 0; v < asr_reader_volume_count(r); v++) {
        uint64_t n;
        const struct asr_extent *e = asr_reader_extents(r, v, &n);
        for (uint64_t i = 0; i < n; i++)
            if (e[i].ref == ASR_REF_UNREADABLE) {
                total += e[i].length;
                ranges++;
            }
    }
    if (as_json) {
        json_u64(j, "unreadable_bytes", total);
        json_arr(j, "unreadable");
    } else if (ranges) {
        char b[32];
        printf("%s: %s in %llu range%s unreadable on the source when imaged, not in the image:\n", path,
               cli_bytes(total, b, sizeof b), (unsigned long long)ranges, ranges == 1 ? "" : "s");
    }
    for (uint32_t v = 0; v < asr_reader_volume_count(r) && ranges; v++) {
        const struct asr_volume_desc *vd = asr_reader_volume(r, v);
        uint64_t n;
        const struct asr_extent *e = asr_reader_extents(r, v, &n);
        for (uint64_t i = 0; i < n; i++) {
            if (e[i].ref != ASR_REF_UNREADABLE)
                continue;
            if (as_json) {
                json_obj(j, NULL);
                json_u64(j, "volume", v);
                json_u64(j, "offset", e[i].offset);
                json_u64(j, "length", e[i].length);
                json_u64(j, "disk", vd->disk_index);
                json_u64(j, "disk_offset", vd->disk_offset + e[i].offset);
                json_end_obj(j);
            } else if (listed++ < UNREADABLE_LINES_MAX) {
                printf("  unreadable: volume %u offset %llu length %llu (disk %u offset %llu)\n", v,
                       (unsigned long long)e[i].offset, (unsigned long long)e[i].length, vd->disk_index,
                       (unsigned long long)(vd->disk_offset + e[i].offset));
            }
        }
    }
    if (as_json)
        json_end_arr(j);
    else if (ranges > UNREADABLE_LINES_MAX)
        printf("  ... and %llu more ranges (--json lists them all)\n",
               (unsigned long long)(ranges - UNREADABLE_LINES_MAX));
    cli_image_ref_close(&im);
}

/* ---- --against: disks compared with the image ------------------------------------------------ */

struct against_out {
    struct json *j;
    uint64_t shown;
};

static void on_mismatch(const struct asr_restore_mismatch *m, void *ctx)
{
    struct against_out *o = ctx;
    if (o->j) {
        json_obj(o->j, NULL);
        json_str(o->j, "target", m->target);
        if (m->volume != UINT32_MAX)
            json_u64(o->j, "volume", m->volume);
        json_u64(o->j, "offset", m->offset);
        json_str(o->j, "what", m->what);
        json_end_obj(o->j);
    } else if (o->shown++ < 100) {
        if (m->volume == UINT32_MAX)
            fprintf(stderr, "asrimg: mismatch: %s disk offset %llu: %s\n", m->target, (unsigned long long)m->offset,
                    m->what);
        else
            fprintf(stderr, "asrimg: mismatch: %s volume %u offset %llu: %s\n", m->target, m->volume,
                    (unsigned long long)m->offset, m->what);
    }
}

/* What a comparison cannot vouch for: bytes the image does not hold. A match says nothing of
 * them, and saying "matches" without this would claim more than was checked. In JSON (j not
 * NULL) the partitions not in the image; in text those, the captured bytes compared, and the
 * rest. */
static void report_not_compared(const struct asr_image *r, struct json *j)
{
    uint64_t captured = 0;
    bool used_maps = false;
    for (uint32_t v = 0; v < asr_image_volume_count(r); v++) {
        const struct asr_volume_stats *s = asr_image_volume_stats(r, v);
        uint64_t held = s->data_bytes + s->zero_bytes + s->unreadable_bytes;
        captured += held;
        used_maps |= held < asr_image_volume(r, v)->size_bytes;
    }
    char b[32];
    if (j)
        json_arr(j, "partitions_not_compared");
    else
        printf("  compared: %s captured in volumes, the raw boot regions and the partition tables\n"
               "  not compared (not in the image):", cli_bytes(captured, b, sizeof b));
    for (uint32_t d = 0; d < asr_image_disk_count(r); d++) {
        const struct asr_disk_desc *dd = asr_image_disk(r, d);
        for (uint32_t i = 0; i < dd->partition_count; i++) {
            const struct asr_partition_desc *p = &dd->partitions[i];
            if (p->capture != ASR_CAPTURE_SKIP || p->kind == ASR_PART_EXTENDED)
                continue;
            if (!j) {
                printf(" disk %u partition %u,", d, p->number);
                continue;
            }
            json_obj(j, NULL);
            json_u64(j, "disk", d);
            json_u64(j, "partition", p->number);
            json_end_obj(j);
        }
    }
    if (j)
        json_end_arr(j);
    else
        printf("%s the disks' space outside partitions and recorded regions\n",
               used_maps ? " free space inside volumes captured by their used blocks," : "");
}

static int verify_against(const char *image, const char *const *targets, size_t n, bool new_ids, bool grow,
                          struct cli_keys *keys, bool json)
{
    struct cli_targets t = {.cmd = "verify", .opt = "--against"};
    for (size_t i = 0; i < n; i++)
        if (cli_targets_add(&t, targets[i]))
            return EXIT_USAGE;
    if (t.explicit_disks && t.positional)
        return cli_error("verify: give every --against as N=DISK, or none"), EXIT_USAGE;
    struct asr_error err = {0};
    struct asr_image *r = NULL;
    struct asr_restore *rs = NULL;
    if (asr_image_open(image, &r, &err) != ASR_OK)
        return cli_error("%s", err.msg), EXIT_FAIL;
    int rc = cli_targets_map(&t, asr_image_disk_count(r));
    if (!rc && asr_restore_open_image(r, t.to, t.n, true, &rs, &err) != ASR_OK) {
        cli_error("%s", err.msg);
        rc = EXIT_FAIL;
    }
    struct json j;
    struct against_out o = {json ? &j : NULL, 0};
    if (!rc) {
        if (json) {
            json_begin(&j, stdout);
            json_obj(&j, NULL);
            json_str(&j, "image", image);
            json_arr(&j, "mismatches");
        }
        struct progress pr;
        progress_init(&pr, "verify", json);
        struct cli_cleared *cl = cli_cleared_open(r, &t);
        struct asr_compare_options co = {new_ids, grow, on_mismatch, &o, progress_restore, &pr, cli_cleared, cl};
        int vr = asr_restore_compare(rs, &co, &err);
        cli_cleared_close(cl);
        progress_done(&pr);
        asr_restore_free(rs); /* the disks are read again below, as a backup reads them */
        rs = NULL;
        if (json) {
            json_end_arr(&j);
            int lr = cli_check_layers(r, &t, grow, keys, &j);
            json_bool(&j, "ok", vr == ASR_OK && lr == EXIT_OK);
            if (vr)
                json_str(&j, "error", err.msg);
            report_not_compared(r, &j);
            json_end_obj(&j);
            json_finish(&j);
            rc = vr || lr ? EXIT_FAIL : EXIT_OK;
        } else {
            if (vr)
                cli_error("%s", err.msg);
            else
                printf("%s: OK: %zu disk%s the image\n", image, n, n == 1 ? " matches" : "s match");
            int lr = cli_check_layers(r, &t, grow, keys, NULL);
            if (!vr)
                report_not_compared(r, NULL);
            rc = vr || lr ? EXIT_FAIL : EXIT_OK;
        }
    }
    asr_restore_free(rs);
    asr_image_free(r);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------------- */

int cmd_verify(int argc, char **argv)
{
    const char *path = NULL;
    struct verify_out o = {0};
    const char *against[256];
    size_t nagainst = 0;
    bool new_ids = false, grow = false, disks_follow = false;
    struct cli_keys keys = {0};
    int krc = EXIT_OK;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    const char *v;
    for (int opt; (opt = cli_args_next(&args, &v));) {
        if (opt == OPT_JSON)
            o.json = true;
        else if (opt == OPT_NEW_IDS)
            new_ids = true;
        else if (opt == OPT_GROW)
            grow = true;
        else if (opt == ARG_HELP)
            return EXIT_OK;
        else if (cli_keys_option(&keys, opt, v, &krc)) {
            if (krc)
                return krc;
        } else if (opt != ARG_WORD && opt != OPT_AGAINST)
            return EXIT_USAGE;
        else if (opt == OPT_AGAINST || disks_follow) {
            /* --against DISK...: its value and every later word is a disk */
            disks_follow = true;
            if (nagainst == sizeof against / sizeof against[0])
                return cli_error("verify: more than %zu disks", sizeof against / sizeof against[0]), EXIT_USAGE;
            against[nagainst++] = v;
        } else if (!path)
            path = v;
        else
            return cli_error("verify: one image at a time (the disks to compare follow --against)"), EXIT_USAGE;
    }
    if (!path)
        return cli_error("verify: no image given (see 'asrimg verify --help')"), EXIT_USAGE;
    if ((keys.n || keys.prompt) && !nagainst)
        return cli_error("verify: --key-file and --unlock go with --against (an image holds no plaintext to unlock)"),
               EXIT_USAGE;
    if (nagainst)
        return verify_against(path, against, nagainst, new_ids, grow, &keys, o.json);
    struct json j;
    o.j = &j;
    if (o.json) {
        json_begin(&j, stdout);
        json_obj(&j, NULL);
        json_str(&j, "path", path);
        json_arr(&j, "problems");
    }
    struct progress pr;
    progress_init(&pr, "verify", o.json);
    struct asr_verify_report rep;
    struct asr_error err = {0};
    int rc = asr_store_is_ref(path)
                 ? asr_store_verify_snapshot(path, on_problem, &o, progress_update, &pr, &rep, &err)
                 : asr_verify(path, on_problem, &o, progress_update, &pr, &rep, &err);
    progress_done(&pr);
    if (o.json) {
        json_end_arr(&j);
        json_bool(&j, "ok", rc == ASR_OK);
        if (rc != ASR_OK && rep.problems == 0)
            json_str(&j, "error", err.msg);
        json_bool(&j, "complete", rep.complete);
        json_u64(&j, "structures", rep.structures);
        json_u64(&j, "chunks", rep.chunks);
        json_u64(&j, "volumes", rep.volumes);
        json_u64(&j, "bytes_checked", rep.bytes_checked);
        if (asr_store_is_ref(path))
            json_u64(&j, "store_bytes_checked", rep.store_bytes);
        json_u64(&j, "problem_count", rep.problems);
        list_unreadable(path, true, &j);
        json_end_obj(&j);
        json_finish(&j);
    } else if (rc == ASR_OK && asr_store_is_ref(path)) {
        char b[32], c[32];
        printf("%s: OK: %llu structures (%s), %llu chunks (%s read from the store), %llu volumes\n", path,
               (unsigned long long)rep.structures, cli_bytes(rep.bytes_checked, b, sizeof b),
               (unsigned long long)rep.chunks, cli_bytes(rep.store_bytes, c, sizeof c), (unsigned long long)rep.volumes);
    } else if (rc == ASR_OK) {
        char b[32];
        printf("%s: OK: %llu structures, %llu chunks, %llu volumes, %s checked\n", path,
               (unsigned long long)rep.structures, (unsigned long long)rep.chunks, (unsigned long long)rep.volumes,
               cli_bytes(rep.bytes_checked, b, sizeof b));
    } else if (rep.problems == 0) {
        cli_error("%s", err.msg);
    } else {
        cli_error("%s: verification failed with %llu problem%s; first: %s", path, (unsigned long long)rep.problems,
                  rep.problems == 1 ? "" : "s", err.msg);
    }
    if (!o.json)
        list_unreadable(path, false, NULL);
    return rc == ASR_OK ? EXIT_OK : EXIT_FAIL;
}
