/* cli/mount_readme.h: the README file `asrimg mount` shows beside the disk and volume files. */
#ifndef ASR_CLI_MOUNT_README_H
#define ASR_CLI_MOUNT_README_H

#include <stddef.h>

#include "asr_engine.h"

/* The README's text for the view v of image r mounted at dir (malloc'd, *len bytes), or NULL
 * when out of memory. */
char *cli_mount_readme(const char *image, const char *dir, const struct asr_reader *r, const struct asr_view *v,
                       size_t *len);

#endif
