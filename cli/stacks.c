/* cli/stacks.c: the storage stacks of an image for people and scripts (see stacks.h). */
#include "stacks.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

void cli_stacks_from_reader(const struct asr_reader *r, struct cli_stacks *out)
{
    out->n = 0;
    for (uint32_t i = 0; i < asr_reader_stack_count(r) && out->n < ASR_MAX_STACKS; i++)
        out->s[out->n++] = asr_reader_stack(r, i);
}

void cli_stacks_from_image(const struct asr_image *im, struct cli_stacks *out)
{
    out->n = 0;
    for (uint32_t i = 0; i < asr_image_stack_count(im) && out->n < ASR_MAX_STACKS; i++)
        out->s[out->n++] = asr_image_stack(im, i);
}

/* Stable names for --json; a later kind by number. */
static const char *kind_id(uint8_t kind, char *buf, size_t n)
{
    switch (kind) {
    case ASR_STACK_LVM_VG: return "lvm2";
    case ASR_STACK_MD: return "md";
    case ASR_STACK_LUKS: return "luks";
    default: snprintf(buf, n, "kind-%u", kind); return buf;
    }
}

static const char *kind_text(uint8_t kind, char *buf, size_t n)
{
    const char *name = asr_stack_kind_name(kind);
    if (name)
        return name;
    snprintf(buf, n, "stack of kind %u (not known to this asrimg)", kind);
    return buf;
}

/* What a member and a volume are called in each kind. */
static const char *member_word(uint8_t kind)
{
    return kind == ASR_STACK_LVM_VG ? "PV" : kind == ASR_STACK_LUKS ? "on" : "member";
}

static const char *volume_word(uint8_t kind)
{
    return kind == ASR_STACK_LVM_VG ? "LV" : kind == ASR_STACK_LUKS ? "opened as" : "volume";
}

static const char *stack_name(const struct asr_stack_desc *s) { return s->name[0] ? s->name : "(unnamed)"; }

void cli_stack_member_place(const struct cli_stacks *st, const struct asr_stack_member *m, char *buf, size_t n)
{
    if (m->on == ASR_MEMBER_PARTITION && m->partition == 0)
        snprintf(buf, n, "disk %u (whole disk)", m->disk);
    else if (m->on == ASR_MEMBER_PARTITION)
        snprintf(buf, n, "disk %u partition %u", m->disk, m->partition);
    else if (m->on == ASR_MEMBER_STACK && m->stack < st->n && m->volume < st->s[m->stack]->volume_count)
        snprintf(buf, n, "%s/%s", stack_name(st->s[m->stack]),
                 st->s[m->stack]->volumes[m->volume].name[0] ? st->s[m->stack]->volumes[m->volume].name : "(volume)");
    else
        snprintf(buf, n, "absent (on no disk of the image)");
}

void cli_stacks_print(FILE *f, const struct cli_stacks *st, const char *indent)
{
    char k[64], a[32], b[32], place[300];
    for (uint32_t i = 0; i < st->n; i++) {
        const struct asr_stack_desc *s = st->s[i];
        fprintf(f, "%sstack %u: %s %s", indent, i, kind_text(s->kind, k, sizeof k), stack_name(s));
        if (s->uuid[0])
            fprintf(f, ", uuid %s", s->uuid);
        if (s->kind == ASR_STACK_LVM_VG)
            fprintf(f, ", seqno %llu, extents of %s", (unsigned long long)s->seqno, cli_bytes(s->unit_bytes, a, sizeof a));
        else if (s->kind == ASR_STACK_MD)
            fprintf(f, ", raid%u", s->level);
        fprintf(f, "\n");
        for (uint32_t m = 0; m < s->member_count; m++) {
            const struct asr_stack_member *mb = &s->members[m];
            cli_stack_member_place(st, mb, place, sizeof place);
            fprintf(f, "%s  %-6s %s%s%s, data %s at %s\n", indent, member_word(s->kind), place,
                    mb->uuid[0] ? ", uuid " : "", mb->uuid, cli_bytes(mb->data_bytes, a, sizeof a),
                    cli_bytes(mb->data_offset, b, sizeof b));
        }
        for (uint32_t v = 0; v < s->volume_count; v++) {
            const struct asr_stack_volume *vo = &s->volumes[v];
            fprintf(f, "%s  %-6s %s: %s, fs %s%s%s, %s%s%s%s%s\n", indent, volume_word(s->kind),
                    vo->name[0] ? vo->name : "(unnamed)", cli_bytes(vo->size_bytes, a, sizeof a),
                    vo->fs_type[0] ? vo->fs_type : "unknown", vo->fs_uuid[0] ? " uuid " : "", vo->fs_uuid,
                    vo->capture == ASR_CAPTURE_SKIP ? "" : "capture ",
                    vo->capture == ASR_CAPTURE_SKIP ? "not captured" : cli_capture_name(vo->capture),
                    vo->critical ? ", critical" : "", vo->mount[0] ? ", mounted at " : "", vo->mount);
        }
    }
}

void cli_stacks_print_disk(FILE *f, const struct cli_stacks *st, uint32_t disk, const char *indent)
{
    char k[64], place[300];
    for (uint32_t i = 0; i < st->n; i++) {
        const struct asr_stack_desc *s = st->s[i];
        for (uint32_t m = 0; m < s->member_count; m++) {
            const struct asr_stack_member *mb = &s->members[m];
            if (mb->on != ASR_MEMBER_PARTITION || mb->disk != disk)
                continue;
            cli_stack_member_place(st, mb, place, sizeof place);
            fprintf(f, "%s%s: %s of %s %s (stack %u), restored with its bytes%s%s\n", indent, place,
                    member_word(s->kind), kind_text(s->kind, k, sizeof k), stack_name(s), i,
                    mb->uuid[0] ? ", uuid " : "", mb->uuid);
        }
    }
}

void cli_stacks_json(struct json *j, const struct cli_stacks *st)
{
    char k[32];
    json_arr(j, "stacks");
    for (uint32_t i = 0; i < st->n; i++) {
        const struct asr_stack_desc *s = st->s[i];
        json_obj(j, NULL);
        json_str(j, "kind", kind_id(s->kind, k, sizeof k));
        json_str(j, "name", s->name);
        json_str(j, "uuid", s->uuid);
        json_u64(j, "seqno", s->seqno);
        json_u64(j, "level", s->level);
        json_u64(j, "unit_bytes", s->unit_bytes);
        json_arr(j, "members");
        for (uint32_t m = 0; m < s->member_count; m++) {
            const struct asr_stack_member *mb = &s->members[m];
            json_obj(j, NULL);
            json_str(j, "on", mb->on == ASR_MEMBER_PARTITION ? "partition" : mb->on == ASR_MEMBER_STACK ? "stack" : "absent");
            if (mb->on == ASR_MEMBER_PARTITION) {
                json_u64(j, "disk", mb->disk);
                json_u64(j, "partition", mb->partition);
            } else if (mb->on == ASR_MEMBER_STACK) {
                json_u64(j, "stack", mb->stack);
                json_u64(j, "volume", mb->volume);
            }
            json_str(j, "uuid", mb->uuid);
            json_u64(j, "role", mb->role);
            json_u64(j, "data_offset", mb->data_offset);
            json_u64(j, "data_bytes", mb->data_bytes);
            json_end_obj(j);
        }
        json_end_arr(j);
        json_arr(j, "volumes");
        for (uint32_t v = 0; v < s->volume_count; v++) {
            const struct asr_stack_volume *vo = &s->volumes[v];
            json_obj(j, NULL);
            json_str(j, "name", vo->name);
            json_str(j, "uuid", vo->uuid);
            json_u64(j, "size_bytes", vo->size_bytes);
            json_u64(j, "used_bytes", vo->used_bytes);
            json_str(j, "fs", vo->fs_type);
            json_str(j, "fs_uuid", vo->fs_uuid);
            json_str(j, "fs_label", vo->fs_label);
            json_str(j, "capture", cli_capture_name(vo->capture));
            json_bool(j, "critical", vo->critical);
            json_str(j, "mount", vo->mount);
            json_end_obj(j);
        }
        json_end_arr(j);
        json_end_obj(j);
    }
    json_end_arr(j);
}

void cli_partition_device(const char *disk, uint32_t number, char *out, size_t n)
{
    size_t len = strlen(disk);
    if (strncmp(disk, "/dev/", 5) || len == 5) {
        out[0] = '\0';
        return;
    }
    /* The kernel puts a 'p' between a disk name ending in a digit and the number (nvme0n1p2). */
    snprintf(out, n, "%s%s%u", disk, isdigit((unsigned char)disk[len - 1]) ? "p" : "", number);
}

/* What grows under a member that grew, and what to run for it. */
static void note_for(const struct asr_stack_desc *s, const struct asr_stack_member *mb, const char *device,
                     struct cli_grow_note *o)
{
    char k[64], a[32];
    const char *dev = device && device[0] ? device : NULL;
    o->stack = s;
    o->keeps_bytes = mb->data_bytes;
    const char *what = s->kind == ASR_STACK_LVM_VG ? "the PV" : s->kind == ASR_STACK_LUKS ? "the LUKS container"
                       : "the md member";
    if (s->kind == ASR_STACK_LVM_VG)
        snprintf(o->command, sizeof o->command, "pvresize %s", dev ? dev : "<its device>");
    else if (s->kind == ASR_STACK_LUKS)
        snprintf(o->command, sizeof o->command, "cryptsetup resize %s", s->name[0] ? s->name : "<its mapping>");
    else if (s->kind == ASR_STACK_MD)
        snprintf(o->command, sizeof o->command, "mdadm --grow /dev/md/%s --size=max (once every member has grown)",
                 s->name[0] ? s->name : "<array>");
    else
        o->command[0] = '\0';
    snprintf(o->text, sizeof o->text, "%s of %s %s on %s keeps its size (%s of data): asrimg does not rewrite its "
             "metadata%s%s%s", what, kind_text(s->kind, k, sizeof k), stack_name(s), dev ? dev : "it",
             cli_bytes(mb->data_bytes, a, sizeof a), o->command[0] ? "; at first boot run `" : "", o->command,
             o->command[0] ? "`" : "");
}

size_t cli_stack_grow_notes(const struct cli_stacks *st, uint32_t disk, uint32_t partition, const char *device,
                            struct cli_grow_note *out, size_t max)
{
    size_t n = 0;
    bool grows[ASR_MAX_STACKS] = {false}; /* its volumes grow once the command runs */
    for (uint32_t i = 0; i < st->n && n < max; i++) {
        const struct asr_stack_desc *s = st->s[i];
        for (uint32_t m = 0; m < s->member_count && n < max; m++) {
            const struct asr_stack_member *mb = &s->members[m];
            bool on_grown = mb->on == ASR_MEMBER_PARTITION && mb->disk == disk && mb->partition == partition;
            bool on_growing = mb->on == ASR_MEMBER_STACK && mb->stack < i && grows[mb->stack];
            if (!on_grown && !on_growing)
                continue;
            char mapped[200] = "";
            if (on_growing && st->s[mb->stack]->kind == ASR_STACK_LUKS && st->s[mb->stack]->name[0])
                snprintf(mapped, sizeof mapped, "/dev/mapper/%s", st->s[mb->stack]->name);
            char placeholder[64];
            snprintf(placeholder, sizeof placeholder, "<partition %u's device>", partition);
            note_for(s, mb, on_grown ? (device && device[0] ? device : placeholder) : mapped, &out[n++]);
            /* An LV does not grow with its PV; a LUKS container's or an array's volume does. */
            grows[i] = s->kind != ASR_STACK_LVM_VG;
        }
    }
    return n;
}
