/* Placeholder: the exfat used-map parser is being written. */
#include "asr_engine.h"

int asr_exfat_used(const struct asr_window *w, struct asr_usedmap *out, struct asr_error *err)
{
    (void)w, (void)out;
    return asr_fail_public(err, ASR_E_UNSUPPORTED, "exfat used-map not implemented yet");
}
