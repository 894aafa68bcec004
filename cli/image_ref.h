/* Opening what a reading command is given: an image file (or split set), or a store snapshot
 * "STORE::HOST/TIME" (include/asr_store.h), the same way for info, verify and mount. */
#ifndef ASR_CLI_IMAGE_REF_H
#define ASR_CLI_IMAGE_REF_H

#include "asr_store.h"

struct cli_image_ref {
    struct asr_reader *r;      /* the image's reader */
    struct asr_store_ref *ref; /* a snapshot's store and reader (r is its reader), else NULL */
};

int cli_image_ref_open(const char *path, struct cli_image_ref *out, struct asr_error *err);
/* The same with an image's index left in the file (asr_reader_open_lazy): for commands that look
 * up ranges (mount, info), not for those walking every extent. */
int cli_image_ref_open_lazy(const char *path, struct cli_image_ref *out, struct asr_error *err);
void cli_image_ref_close(struct cli_image_ref *im);

/* Whether -o names a chunk store: an s3:// URL, or a directory holding a store's config. */
bool cli_is_store(const char *path);

#endif
