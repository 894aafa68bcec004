/* asr_machine_analyze: the disks of a backup looked at together, in two steps kept apart so
 * that neither calls the other: the storage stacks assembled and looked into (stacks.c), then
 * what the roots found there say the machine needs to boot (bootscan.c). */
#include "bootscan.h"
#include "stacks.h"

#include <stdlib.h>

int asr_machine_analyze(struct asr_disk *const *disks, struct asr_volume_info *const *vols, const size_t *counts,
                        uint32_t n, const struct asr_machine_options *opt, struct asr_machine **out,
                        struct asr_error *err)
{
    *out = NULL;
    struct asr_machine *m = calloc(1, sizeof *m);
    if (!m)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    *m = (struct asr_machine){.disks = disks, .vols = vols, .counts = counts, .ndisks = n, .opt = opt};
    int rc = stacks_assemble(m, err);
    if (rc == ASR_OK)
        rc = bootscan_analyze(m, err);
    if (rc == ASR_OK)
        rc = stacks_list(m, err);
    if (rc != ASR_OK) {
        asr_machine_free(m);
        return rc;
    }
    *out = m;
    return ASR_OK;
}
