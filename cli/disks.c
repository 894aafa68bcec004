/* The source disks of a command: each one once, opened, analysed, and the volume selection applied
 * across all of them (a selection like "1:2,2:1" spans disks). Shared by layout, backup and bench. */
#include "disks.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int cli_disks_open(struct cli_disks *s, const char *const *paths, uint32_t n, const char *selection,
                   struct asr_error *err)
{
    *s = (struct cli_disks){0};
    /* The same disk twice (under two names, or a loop device over another) would be two disks of
     * the image, each a copy of the other. */
    if (asr_check_distinct_storage(paths, n, "disk", err) != ASR_OK)
        return EXIT_FAIL;
    s->n = n;
    for (uint32_t i = 0; i < n; i++)
        if (asr_disk_open(paths[i], &s->disk[i], err) ||
            asr_disk_analyze(s->disk[i], i, &s->vols[i], &s->count[i], err))
            return EXIT_FAIL;
    if (asr_machine_analyze(s->disk, s->vols, s->count, n, &s->machine, err))
        return EXIT_FAIL;
    /* Gather the volumes into one list, apply the selection, scatter back. */
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += s->count[i];
    struct asr_volume_info *all = calloc(total + 1, sizeof *all);
    if (!all)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory"), EXIT_FAIL;
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++)
        memcpy(all + at, s->vols[i], s->count[i] * sizeof *all), at += s->count[i];
    int rc = asr_select_volumes(all, total, selection, err) == ASR_OK ? EXIT_OK : EXIT_FAIL;
    at = 0;
    for (uint32_t i = 0; i < n; i++)
        memcpy(s->vols[i], all + at, s->count[i] * sizeof *all), at += s->count[i];
    free(all);
    if (rc == EXIT_OK && asr_machine_select(s->machine, selection, err))
        rc = EXIT_FAIL;
    return rc;
}

void cli_disks_close(struct cli_disks *s)
{
    asr_machine_free(s->machine);
    for (uint32_t i = 0; i < s->n; i++) {
        asr_volume_infos_free(s->vols[i], s->count[i]);
        asr_disk_close(s->disk[i]);
    }
    *s = (struct cli_disks){0};
}
