/* Image or snapshot, opened for reading (image_ref.h). */
#include "image_ref.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int open_ref(const char *path, bool lazy, struct cli_image_ref *out, struct asr_error *err)
{
    *out = (struct cli_image_ref){0};
    if (!asr_store_is_ref(path))
        return lazy ? asr_reader_open_lazy(path, &out->r, err) : asr_reader_open(path, &out->r, err);
    int rc = asr_store_ref_open(path, &out->ref, err);
    if (rc == ASR_OK)
        out->r = asr_store_ref_reader(out->ref);
    return rc;
}

int cli_image_ref_open(const char *path, struct cli_image_ref *out, struct asr_error *err)
{
    return open_ref(path, false, out, err);
}

int cli_image_ref_open_lazy(const char *path, struct cli_image_ref *out, struct asr_error *err)
{
    return open_ref(path, true, out, err);
}

void cli_image_ref_close(struct cli_image_ref *im)
{
    if (im->ref)
        asr_store_ref_free(im->ref);
    else
        asr_reader_free(im->r);
    *im = (struct cli_image_ref){0};
}

bool cli_is_store(const char *path)
{
    if (!strncmp(path, "s3://", 5))
        return true;
    char config[4200], magic[8];
    snprintf(config, sizeof config, "%s/config", path);
    int fd = open(config, O_RDONLY | O_CLOEXEC);
    bool yes = fd >= 0 && read(fd, magic, sizeof magic) == (ssize_t)sizeof magic && !memcmp(magic, "ASRSTORE", 8);
    if (fd >= 0)
        close(fd);
    return yes;
}
