/* The targets of restore (--to) and verify (--against): "TARGET" is the next image disk in order,
 * "N=TARGET" image disk N; matched to the image's disks once it is open. */
#include "targets.h"

#include <string.h>

#include "util.h"

/* "N=TARGET" names image disk N when N is all digits; anything else is the next disk in order. A
 * file whose name starts with digits and '=' is given with a directory, as ./1=x.img. */
int cli_targets_add(struct cli_targets *t, const char *v)
{
    if (t->n == CLI_TARGETS_MAX)
        return cli_error("%s: too many %s targets", t->cmd, t->opt), EXIT_USAGE;
    const char *eq = strchr(v, '=');
    size_t k = eq ? (size_t)(eq - v) : 0;
    t->arg[t->n] = v;
    if (!eq || k == 0 || strspn(v, "0123456789") != k) {
        t->to[t->n++] = (struct asr_restore_target_spec){v, 0};
        t->positional = true;
        return EXIT_OK;
    }
    /* The format's limit here; whether this image has disk N once it is open (cli_targets_map). */
    unsigned long disk;
    char num[16] = "";
    if (k < sizeof num)
        memcpy(num, v, k);
    if (k >= sizeof num || !cli_parse_uint(num, ASR_MAX_DISKS - 1, &disk))
        return cli_error("%s: %s %s: no image disk %.*s (an image holds at most %u; a file named so is given as ./%s)",
                         t->cmd, t->opt, v, (int)k, v, ASR_MAX_DISKS, v),
               EXIT_USAGE;
    if (!eq[1])
        return cli_error("%s: %s %s: no target after '='", t->cmd, t->opt, v), EXIT_USAGE;
    t->to[t->n++] = (struct asr_restore_target_spec){eq + 1, (uint32_t)disk};
    t->explicit_disks = true;
    return EXIT_OK;
}

/* Without N=, targets follow the image's disks: one disk takes them all as mirrors. With N=,
 * the image must have disk N: usage, not a file named "N=TARGET". */
int cli_targets_map(struct cli_targets *t, uint32_t disks)
{
    for (size_t i = 0; t->explicit_disks && i < t->n; i++)
        if (t->to[i].disk_index >= disks)
            return cli_error("%s: %s %s: no image disk %u (the image holds %u, numbered from 0; a file named so is "
                             "given as ./%s)",
                             t->cmd, t->opt, t->arg[i], t->to[i].disk_index, disks, t->arg[i]),
                   EXIT_USAGE;
    if (t->explicit_disks)
        return EXIT_OK;
    if (disks > 1 && t->n != disks)
        return cli_error("restore: the image holds %u disks: give one --to per disk in order, or --to N=TARGET", disks),
               EXIT_FAIL;
    for (size_t i = 0; i < t->n; i++)
        t->to[i].disk_index = disks > 1 ? (uint32_t)i : 0;
    return EXIT_OK;
}
