/* The storage stacks an image records, read again from restored disks and checked layer by layer
 * (layers.h). The disks are opened read-only as a backup's sources, so the check sees what a
 * backup of the restored machine would see. */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct layers_out {
    struct json *j;
    const struct asr_image *r;
    const char *round; /* "" or " (mirror 2)" */
};

static void on_layer(void *ctx, const struct asr_stack_check *c)
{
    struct layers_out *o = ctx;
    const struct asr_stack_desc *s = asr_image_stack(o->r, c->stack);
    const char *kind = asr_stack_kind_name(s->kind) ? asr_stack_kind_name(s->kind) : "stack";
    const char *name = s->name[0] ? s->name : s->uuid;
    if (!o->j) {
        printf("  %s %s%s: %s%s\n", kind, name, o->round,
               c->status == ASR_OK ? "" : c->status == ASR_E_UNSUPPORTED ? "" : "DIFFERS: ", c->message);
        return;
    }
    json_obj(o->j, NULL);
    json_str(o->j, "kind", kind);
    json_str(o->j, "name", s->name);
    json_str(o->j, "uuid", s->uuid);
    json_str(o->j, "result", c->status == ASR_OK ? "ok" : c->status == ASR_E_UNSUPPORTED ? "not_checked" : "differs");
    json_str(o->j, "message", c->message);
    json_end_obj(o->j);
}

/* The k-th target given for each image disk (the last one where fewer were given): mirrors are
 * checked one set at a time. false when k is past every disk's targets. */
static bool target_set(const struct cli_targets *t, uint32_t disks, size_t k, const char **paths)
{
    bool any = false;
    for (uint32_t d = 0; d < disks; d++) {
        size_t seen = 0;
        paths[d] = NULL;
        for (size_t i = 0; i < t->n; i++)
            if (t->to[i].disk_index == d) {
                paths[d] = t->to[i].path;
                if (seen++ == k) {
                    any = true;
                    break;
                }
            }
        if (!paths[d])
            return false;
    }
    return any;
}

int cli_check_layers(const struct asr_image *r, const struct cli_targets *t, bool grow, struct cli_keys *keys,
                        struct json *j)
{
    uint32_t n = asr_image_stack_count(r), disks = asr_image_disk_count(r);
    if (!n)
        return EXIT_OK;
    if (j)
        json_arr(j, "layers");
    else
        printf("  storage stacks, read again from the disks:\n");
    struct asr_stack_desc *want = calloc(n, sizeof *want);
    if (!want)
        return cli_error("out of memory"), EXIT_FAIL;
    for (uint32_t i = 0; i < n; i++)
        want[i] = *asr_image_stack(r, i); /* shallow: members and volumes stay the image's */
    int rc = EXIT_OK;
    const char *paths[ASR_MAX_DISKS];
    for (size_t k = 0; disks <= ASR_MAX_DISKS && target_set(t, disks, k, paths); k++) {
        struct cli_disks s;
        struct asr_error err = {0};
        char round[32] = "";
        if (k)
            snprintf(round, sizeof round, " (mirror %zu)", k + 1);
        struct layers_out o = {j, r, round};
        if (cli_disks_open(&s, paths, disks, NULL, keys, &err) != EXIT_OK ||
            asr_machine_check_stacks(s.machine, want, n, grow, on_layer, &o, &err) != ASR_OK) {
            if (!j)
                cli_error("%s", err.msg);
            rc = EXIT_FAIL;
        }
        cli_disks_close(&s);
    }
    free(want);
    if (j)
        json_end_arr(j);
    return rc;
}

/* ---- cleared ranges of the disks compared (verify --against) ------------------------------- */

struct cli_cleared {
    struct cli_disks set[8]; /* one per set of targets (mirrors), as cli_check_layers walks them */
    bool opened[8];
    size_t n;
};

struct cli_cleared *cli_cleared_open(const struct asr_image *r, const struct cli_targets *t)
{
    uint32_t disks = asr_image_disk_count(r);
    struct cli_cleared *c = calloc(1, sizeof *c);
    if (!c || !asr_image_stack_count(r) || disks > ASR_MAX_DISKS)
        return c;
    const char *paths[ASR_MAX_DISKS];
    for (size_t k = 0; k < sizeof c->set / sizeof *c->set && target_set(t, disks, k, paths); k++, c->n++) {
        struct asr_error err = {0};
        c->opened[k] = cli_disks_open(&c->set[k], paths, disks, "all", NULL, &err) == EXIT_OK;
        if (!c->opened[k])
            cli_disks_close(&c->set[k]);
    }
    return c;
}

/* A stack's volume on the disk w reads: its cleared ranges as its set of disks has them. */
static const struct asr_ranges *stacked_cleared(const struct cli_cleared *c, const struct asr_volume_desc *vd,
                                                const char *path)
{
    for (size_t k = 0; c && k < c->n; k++) {
        const struct cli_disks *s = &c->set[k];
        if (!c->opened[k] || vd->disk_index >= s->n || strcmp(asr_disk_path(s->disk[vd->disk_index]), path))
            continue;
        for (size_t i = 0; i < s->count[vd->disk_index]; i++)
            if (s->vols[vd->disk_index][i].partition_number == vd->partition_number)
                return &s->vols[vd->disk_index][i].map.cleared;
    }
    return NULL;
}

int cli_cleared(void *ctx, const struct asr_volume_desc *vd, const struct asr_window *w, struct asr_ranges *out,
                struct asr_error *err)
{
    const struct asr_ranges *have = stacked_cleared(ctx, vd, w->path);
    if (!have || !have->n)
        return asr_fs_cleared(w, vd->fs_type, out, err);
    *out = (struct asr_ranges){0};
    for (size_t i = 0; i < have->n; i++)
        if (asr_ranges_add(out, have->v[i].offset, have->v[i].length) != ASR_OK) {
            asr_ranges_free(out);
            return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
        }
    return ASR_OK;
}

void cli_cleared_close(struct cli_cleared *c)
{
    for (size_t k = 0; c && k < c->n; k++)
        if (c->opened[k])
            cli_disks_close(&c->set[k]);
    free(c);
}
