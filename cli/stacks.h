/* cli/stacks.h: the storage stacks an image records (SPEC.md section 6, feature stacks), said
 * the same way by info, restore and verify: in text, in --json, and what --grow leaves to do at
 * first boot for a stack on the grown partition. */
#ifndef ASR_CLI_STACKS_H
#define ASR_CLI_STACKS_H

#include <stdio.h>

#include "asr_engine.h"
#include "json.h"

struct cli_stacks {
    uint32_t n;
    const struct asr_stack_desc *s[ASR_MAX_STACKS];
};
void cli_stacks_from_reader(const struct asr_reader *r, struct cli_stacks *out);
void cli_stacks_from_image(const struct asr_image *im, struct cli_stacks *out);

/* Where a member lies, for people: "disk 0 partition 2", "disk 1 (whole disk)", "vg0/home",
 * "absent (on no disk of the image)". */
void cli_stack_member_place(const struct cli_stacks *st, const struct asr_stack_member *m, char *buf, size_t n);

/* Every stack, a few lines each, each line starting with indent. */
void cli_stacks_print(FILE *f, const struct cli_stacks *st, const char *indent);
/* The "stacks" array. */
void cli_stacks_json(struct json *j, const struct cli_stacks *st);
/* One line per member on disk `disk`, for the restore plan under that disk. */
void cli_stacks_print_disk(FILE *f, const struct cli_stacks *st, uint32_t disk, const char *indent);

/* --grow extends partition `partition` of disk `disk` (device: what the machine will call it,
 * "/dev/sdb2", or NULL when not known): what each stack on it keeps and what to run at first
 * boot, following stacks inside whose volume then grows (a PV inside a LUKS container). */
struct cli_grow_note {
    const struct asr_stack_desc *stack;
    uint64_t keeps_bytes; /* the stack's data area on the member, as recorded */
    char command[320];    /* "pvresize /dev/sdb2" */
    char text[1024];      /* the sentence for people */
};
size_t cli_stack_grow_notes(const struct cli_stacks *st, uint32_t disk, uint32_t partition, const char *device,
                            struct cli_grow_note *out, size_t max);
/* The device name of partition `number` of the disk at path, as the kernel names it
 * ("/dev/sdb" 2: "/dev/sdb2"; "/dev/nvme0n1" 2: "/dev/nvme0n1p2"); "" when the path is not under /dev. */
void cli_partition_device(const char *disk, uint32_t number, char *out, size_t n);

#endif
