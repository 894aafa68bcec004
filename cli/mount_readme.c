/* The README of a mounted image (asrimg mount): which file is which disk or volume (its
 * filesystem, label, UUID, and the mount points the stacks on it record), and the commands that
 * open each one read-only, with root or without, and boot the whole disk under qemu. */
#include "mount_readme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stacks.h"
#include "util.h"

/* How to look into a volume of filesystem fs, from the file at path. */
static void how_to_open(FILE *f, const char *fs, const char *path)
{
    if (!strcmp(fs, "xfs"))
        fprintf(f, "    mount -t xfs -o ro,norecovery,loop %s /mnt     (norecovery: its log cannot be replayed "
                   "read-only)\n", path);
    else if (!strcmp(fs, "ntfs"))
        fprintf(f, "    mount -o ro,loop %s /mnt     or, without root: ntfs-3g -o ro %s /mnt\n", path, path);
    else if (!strncmp(fs, "ext", 3))
        fprintf(f, "    mount -o ro,loop %s /mnt     or, without root: fuse2fs -o ro %s /mnt\n", path, path);
    else if (!strcmp(fs, "vfat") || !strncmp(fs, "fat", 3))
        fprintf(f, "    mount -o ro,loop %s /mnt     or, without root: mdir -i %s ::  (mtools)\n", path, path);
    else if (!strcmp(fs, "exfat"))
        fprintf(f, "    mount -o ro,loop %s /mnt     or, without root: mount.exfat-fuse -o ro %s /mnt\n", path,
                path);
    else if (!strcmp(fs, "btrfs"))
        fprintf(f, "    mount -t btrfs -o ro,loop %s /mnt\n", path);
    else if (fs[0])
        fprintf(f, "    mount -o ro,loop %s /mnt\n", path);
}

/* The stacks that have a member on partition `part` of disk `disk`, and what they hold. */
static void stacks_on(FILE *f, const struct cli_stacks *st, uint32_t disk, uint32_t part)
{
    for (uint32_t i = 0; i < st->n; i++) {
        const struct asr_stack_desc *s = st->s[i];
        bool here = false;
        for (uint32_t m = 0; m < s->member_count; m++)
            here |= s->members[m].on == ASR_MEMBER_PARTITION && s->members[m].disk == disk &&
                    s->members[m].partition == part;
        if (!here)
            continue;
        const char *kind = asr_stack_kind_name(s->kind);
        fprintf(f, "    holds %s %s (open it with losetup -r and the stack's own tools):\n", kind ? kind : "a stack",
                s->name);
        for (uint32_t v = 0; v < s->volume_count; v++) {
            const struct asr_stack_volume *sv = &s->volumes[v];
            fprintf(f, "      %s: fs %s%s%s%s%s%s%s\n", sv->name[0] ? sv->name : "volume",
                    sv->fs_type[0] ? sv->fs_type : "unknown", sv->fs_label[0] ? ", label " : "", sv->fs_label,
                    sv->fs_uuid[0] ? ", uuid " : "", sv->fs_uuid, sv->mount[0] ? ", mounted at " : "", sv->mount);
        }
    }
}

static void describe_file(FILE *f, const struct asr_reader *r, const struct asr_view_file *vf, const char *dir,
                          const struct cli_stacks *st)
{
    char a[32], b[32], path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, vf->name);
    if (vf->kind == ASR_VIEW_DISK) {
        const struct asr_disk_desc *d = asr_reader_disk(r, vf->disk);
        char id[37];
        cli_disk_id(d, id);
        fprintf(f, "%s\n    disk %u as it was (%s, %s, label %s, id %s): the partition table, the boot regions and "
                   "every captured byte at its place; what the image does not hold reads as zeros.\n",
                vf->name, vf->disk, d->source, cli_bytes(d->size_bytes, a, sizeof a), cli_label_name(d->label), id);
        fprintf(f, "    boot it: qemu-system-x86_64 -m 2G -drive file=%s,format=raw,snapshot=on\n"
                   "    (UEFI: add -bios /usr/share/ovmf/OVMF.fd; snapshot=on keeps the writes in memory)\n",
                path);
        return;
    }
    const struct asr_volume_desc *vd = asr_reader_volume(r, vf->volume);
    const struct asr_disk_desc *d = asr_reader_disk(r, vd->disk_index);
    uint8_t capture = ASR_CAPTURE_FULL;
    char fs[128];
    snprintf(fs, sizeof fs, "fs %s", vd->fs_type[0] ? vd->fs_type : "unknown");
    for (uint32_t p = 0; p < d->partition_count; p++)
        if (d->partitions[p].number == vd->partition_number) {
            capture = d->partitions[p].capture;
            if (!vd->fs_type[0]) { /* a BIOS boot partition, say: no filesystem, its type says what it is */
                char type[96];
                cli_part_type(d, &d->partitions[p], type);
                snprintf(fs, sizeof fs, "no filesystem (type %s)", type);
            }
        }
    fprintf(f, "%s\n    partition %u of disk %u: %s%s%s%s%s, size %s, used %s, captured %s\n", vf->name,
            vd->partition_number, vd->disk_index, fs,
            vd->fs_label[0] ? ", label " : "", vd->fs_label, vd->fs_uuid[0] ? ", uuid " : "", vd->fs_uuid,
            cli_bytes(vd->size_bytes, a, sizeof a), cli_bytes(vd->used_bytes, b, sizeof b), cli_capture_name(capture));
    if (capture == ASR_CAPTURE_USED)
        fprintf(f, "    (by its used blocks: its free space reads as zeros)\n");
    how_to_open(f, vd->fs_type, path);
    stacks_on(f, st, vd->disk_index, vd->partition_number);
}

char *cli_mount_readme(const char *image, const char *dir, const struct asr_reader *r, const struct asr_view *v,
                       size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    const struct asr_image_info *i = asr_reader_info(r);
    char id[37], when[64];
    time_t t = (time_t)i->created_unix;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    cli_uuid(i->uuid, false, id);
    fprintf(f, "%s, mounted read-only by asrimg %s\nimage %s, written by %s %s on %s\n\n", image, asr_version(), id,
            i->creator, i->creator_version, when);
    struct cli_stacks st;
    cli_stacks_from_reader(r, &st);
    for (uint32_t k = 0; k < asr_view_file_count(v); k++) {
        describe_file(f, r, asr_view_file(v, k), dir, &st);
        fputc('\n', f);
    }
    fprintf(f, "Every file is read-only. Reads come from the image as they are asked for: a damaged chunk of the "
               "image gives I/O errors for the ranges it covers (asrimg names it on its standard error), never "
               "other bytes.\n"
               "Unmount with: asrimg umount %s   (or fusermount3 -u %s; also after the asrimg process was "
               "killed)\n",
            dir, dir);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
