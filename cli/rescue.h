/* cli/rescue.h: what the restore half of `asrimg rescue` shares between its files: the images
 * found on the recovery drive (rescue_images.c), the match of an image's disks to this machine's
 * disks (rescue_plan.c), and the whole flow the recovery environment runs (rescue_run.c). */
#ifndef ASR_CLI_RESCUE_H
#define ASR_CLI_RESCUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "asr_engine.h"

int rescue_images(int argc, char **argv); /* asrimg rescue images DIR [--json] */
int rescue_plan(int argc, char **argv);   /* asrimg rescue plan IMAGE [--drive DEV] [--target DEV]... */
int rescue_run(int argc, char **argv);    /* asrimg rescue run --images DIR ... */

/* ---- the images in a directory (rescue_images.c) ------------------------------------------ */

struct rescue_image {
    char *name, *path;    /* the file name in the directory (a split set's first part), and its path */
    char machine[256];    /* rescue_machine_name */
    uint64_t created;     /* the image header's created_unix; a damaged one: the file's mtime */
    bool opens;
    char why[ASR_ERROR_MSG_MAX]; /* why a damaged one does not open */
    uint32_t disks;
    uint64_t disk_bytes[ASR_MAX_DISKS];
    uint64_t image_bytes; /* every part, on disk */
    uint32_t parts;
};

struct rescue_skipped {
    char *name;
    const char *why;
    char detail[ASR_ERROR_MSG_MAX];
};

struct rescue_list {
    struct rescue_image *v; /* newest first */
    size_t n;
    struct rescue_skipped *skipped;
    size_t nskipped;
};

/* Every image in dir: single files and split sets that open, and damaged ones (listed, not
 * fatal); unfinished ones (.partial, a split set missing a part, a cut-off file) are skipped and
 * said so. EXIT_OK, or EXIT_FAIL after saying why the directory cannot be read. */
int rescue_list_dir(const char *dir, struct rescue_list *out);
void rescue_list_free(struct rescue_list *l);
void rescue_list_print(FILE *f, const struct rescue_list *l, bool numbered);
/* The machine an image was taken of: the hostname its machine record holds (im, when it opened),
 * else the HOST of the file name `backup --output-dir` gives (HOST-YYYYmmdd-HHMMSS.asrimg), else
 * "unknown". */
void rescue_machine_name(const char *file_name, const struct asr_image *im, char *out, size_t len);

/* ---- the plan (rescue_plan.c) ----------------------------------------------------------------- */

#define RESCUE_DISKS_MAX 128
#define RESCUE_TARGETS_MAX 64

struct rescue_disk {
    char path[256];
    uint64_t size;
    uint32_t sector;
    bool drive;        /* the recovery drive (or the disk holding the images): never a target */
    int assigned;      /* the image disk it receives, -1 */
};

struct rescue_target {
    uint32_t disk; /* image disk */
    char path[256];
    bool asked;    /* the user's answer to an ambiguity, not --target */
};

struct rescue_plan {
    const char *drive, *holder; /* --drive (or NULL), and a path in the images' directory */
    struct rescue_disk cand[RESCUE_DISKS_MAX];
    size_t ncand;
    struct rescue_target to[RESCUE_TARGETS_MAX];
    size_t nto, nnamed; /* the first nnamed were named (--target); the rest matched */
    /* Per image disk: how its target was found ("exact size", "smallest that fits", "--target"),
     * or why it has none; an ambiguous one lists the equally good candidates. */
    const char *how[ASR_MAX_DISKS];
    bool ambiguous[ASR_MAX_DISKS];
    size_t tie[ASR_MAX_DISKS][8]; /* indexes into cand */
    size_t ntie[ASR_MAX_DISKS];
    bool complete; /* every image disk has a target */
};

/* The candidate disks (ASRIMG_RESCUE_DISKS, else /sys/block less loop, ram, zram, sr ...), the
 * recovery drive marked (drive, else the disk holding `holder`, the images' directory): EXIT_OK,
 * or EXIT_FAIL after saying why. */
int rescue_disks(const char *drive, const char *holder, struct rescue_plan *p);
/* Matches each image disk without a target in p->to to a candidate, ASR-style. Targets already
 * in p->to (--target) are checked by the same rules first: EXIT_FAIL after saying why one is
 * refused (a smaller one names both sizes). */
int rescue_match(const struct asr_image *im, struct rescue_plan *p);
void rescue_plan_print(FILE *f, const char *image, const struct asr_image *im, const struct rescue_plan *p);
void rescue_plan_json(const char *image, const struct asr_image *im, const struct rescue_plan *p, const char *command);
/* Opens the planned targets as a restore would (size, sector size, in use, holding the image:
 * nothing written) and, with show, says on stderr what each holds now and that all of it will be
 * overwritten: EXIT_OK, or EXIT_FAIL after saying why one is refused. */
int rescue_check_targets(struct asr_image *im, const struct rescue_plan *p, bool show);
/* "asrimg restore IMAGE --to ... --verify --yes" as argv (NULL-terminated, at most max) and as a
 * line the user could type. */
size_t rescue_restore_argv(const char *image, const struct asr_image *im, const struct rescue_plan *p, bool json,
                           bool boot_entries, const char **argv, size_t max);
void rescue_command_line(const char *const *argv, char *out, size_t len);
/* Adds "DEV" (the next image disk without one) or "N=DEV": EXIT_OK or EXIT_USAGE. */
int rescue_add_target(struct rescue_plan *p, const char *v, const char *cmd);

#endif
