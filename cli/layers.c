/* The storage stacks an image records, read again from restored disks and checked layer by layer
 * (layers.h). The disks are opened read-only as a backup's sources, so the check sees what a
 * backup of the restored machine would see. */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>

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
