/* The S3 backend's entry point when asrimg is built without it: an s3:// store is refused by
 * name. backend_s3.c replaces this file. */
#include "backend.h"

__attribute__((weak)) int store_backend_s3_open(const char *url, const struct asr_store_options *opt, struct store_backend **out,
                          struct asr_error *err)
{
    (void)opt;
    *out = NULL;
    return asr_fail_public(err, ASR_E_UNSUPPORTED, "%s: built without S3", url);
}
