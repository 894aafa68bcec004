/* The stack table (feature "stacks", SPEC.md section 6): the storage stacks the disks' partitions
 * hold (LVM2 volume groups now; md arrays and LUKS containers are defined for later writers), at
 * the end of the layout section. Encoding, decoding, and the rules the writer and every reader
 * apply to it, so that restore, info and verify can trust each member's place. */
#include "internal.h"
#include "le.h"

#include <stdlib.h>
#include <string.h>

#define TABLE_FIXED 8u
#define STACK_FIXED 32u
#define MEMBER_FIXED 32u
#define SVOL_FIXED 32u
#define SVOL_CRITICAL 0x01u

const char *asr_stack_kind_name(uint8_t kind)
{
    switch (kind) {
    case ASR_STACK_LVM_VG: return "LVM2 VG";
    case ASR_STACK_MD: return "md array";
    case ASR_STACK_LUKS: return "LUKS";
    default: return NULL;
    }
}

/* start + len <= limit without overflow */
static bool fits(uint64_t start, uint64_t len, uint64_t limit)
{
    return start <= limit && len <= limit - start;
}

/* A caller's fixed-size string ends inside its array (the reader's always do). */
#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

/* ---- rules --------------------------------------------------------------------------------- */

/* The bytes a member lies in: its partition, unpartitioned disk or earlier stack's volume.
 * *size stays UINT64_MAX for an absent member (nothing to bound its data area by). */
static int member_place(const struct asr_stack_member *m, const struct asr_stack_desc *s, uint32_t index,
                        const struct asr_disk_desc *disks, uint32_t disk_count, uint64_t *size, struct asr_error *err)
{
    *size = UINT64_MAX;
    if (m->on > ASR_MEMBER_ABSENT)
        return fmt_fail(err, ASR_E_CORRUPT, "place %u unknown", m->on);
    if (m->on != ASR_MEMBER_STACK && (m->stack || m->volume))
        return fmt_fail(err, ASR_E_CORRUPT, "stack and volume fields not zero");
    if (m->on != ASR_MEMBER_PARTITION && (m->disk || m->partition))
        return fmt_fail(err, ASR_E_CORRUPT, "disk and partition fields not zero");
    if (m->on == ASR_MEMBER_ABSENT)
        return ASR_OK;
    if (m->on == ASR_MEMBER_STACK) {
        if (m->stack >= index)
            return fmt_fail(err, ASR_E_CORRUPT, "stack %u is not an earlier stack", m->stack);
        if (m->volume >= s[m->stack].volume_count)
            return fmt_fail(err, ASR_E_CORRUPT, "stack %u has no volume %u", m->stack, m->volume);
        *size = s[m->stack].volumes[m->volume].size_bytes;
        return ASR_OK;
    }
    if (m->disk >= disk_count)
        return fmt_fail(err, ASR_E_CORRUPT, "disk %u not in the layout (%u disks)", m->disk, disk_count);
    const struct asr_disk_desc *d = &disks[m->disk];
    if (m->partition == 0) {
        if (d->label != ASR_LABEL_NONE)
            return fmt_fail(err, ASR_E_CORRUPT, "partition 0 (the whole disk) on disk %u, which has a partition table",
                            m->disk);
        *size = d->size_bytes;
        return ASR_OK;
    }
    for (uint32_t i = 0; i < d->partition_count; i++) {
        const struct asr_partition_desc *p = &d->partitions[i];
        if (p->number != m->partition)
            continue;
        if (p->kind == ASR_PART_EXTENDED)
            return fmt_fail(err, ASR_E_CORRUPT, "partition %u of disk %u is an extended partition", m->partition,
                            m->disk);
        *size = p->size_bytes;
        return ASR_OK;
    }
    return fmt_fail(err, ASR_E_CORRUPT, "partition %u not on disk %u", m->partition, m->disk);
}

static bool same_place(const struct asr_stack_member *a, const struct asr_stack_member *b)
{
    if (a->on != b->on || a->on == ASR_MEMBER_ABSENT)
        return false;
    return a->on == ASR_MEMBER_PARTITION ? a->disk == b->disk && a->partition == b->partition
                                         : a->stack == b->stack && a->volume == b->volume;
}

/* No place holds two members, in this stack or an earlier one. */
static int member_unique(const struct asr_stack_desc *s, uint32_t index, uint32_t k, struct asr_error *err)
{
    const struct asr_stack_member *m = &s[index].members[k];
    for (uint32_t j = 0; j <= index; j++)
        for (uint32_t i = 0; i < (j == index ? k : s[j].member_count); i++)
            if (same_place(m, &s[j].members[i]))
                return fmt_fail(err, ASR_E_CORRUPT, "lies where member %u of stack %u does", i, j);
    return ASR_OK;
}

static int member_check(const struct asr_stack_desc *s, uint32_t index, uint32_t k,
                        const struct asr_disk_desc *disks, uint32_t disk_count, struct asr_error *err)
{
    const struct asr_stack_desc *st = &s[index];
    const struct asr_stack_member *m = &st->members[k];
    uint64_t size;
    int rc = member_place(m, s, index, disks, disk_count, &size, err);
    if (rc || (rc = member_unique(s, index, k, err)))
        return rc;
    if (size != UINT64_MAX && !fits(m->data_offset, m->data_bytes, size))
        return fmt_fail(err, ASR_E_CORRUPT, "data area of %llu bytes at %llu outside its %llu bytes",
                        (unsigned long long)m->data_bytes, (unsigned long long)m->data_offset,
                        (unsigned long long)size);
    if (!TERMINATED(m->uuid) || strlen(m->uuid) > ASR_FSNAME_MAX)
        return fmt_fail(err, ASR_E_CORRUPT, "uuid too long");
    if (st->kind == ASR_STACK_LVM_VG) {
        if (!m->uuid[0])
            return fmt_fail(err, ASR_E_CORRUPT, "a PV without its uuid");
        if (m->role)
            return fmt_fail(err, ASR_E_CORRUPT, "role %u on a PV (0 for LVM)", m->role);
        if (st->unit_bytes && m->data_bytes % st->unit_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "data bytes %llu not whole extents of %llu bytes",
                            (unsigned long long)m->data_bytes, (unsigned long long)st->unit_bytes);
    }
    return ASR_OK;
}

static int volume_check(const struct asr_stack_desc *st, uint32_t k, struct asr_error *err)
{
    const struct asr_stack_volume *v = &st->volumes[k];
    if (!TERMINATED(v->name) || !TERMINATED(v->uuid) || !TERMINATED(v->fs_type) || !TERMINATED(v->fs_uuid) ||
        !TERMINATED(v->fs_label) || !TERMINATED(v->mount) || strlen(v->name) > ASR_STACK_NAME_MAX ||
        strlen(v->uuid) > ASR_FSNAME_MAX || strlen(v->fs_type) > ASR_FSNAME_MAX ||
        strlen(v->fs_uuid) > ASR_FSNAME_MAX || strlen(v->fs_label) > ASR_FSNAME_MAX || strlen(v->mount) > ASR_NAME_MAX)
        return fmt_fail(err, ASR_E_CORRUPT, "a name too long");
    if (v->size_bytes == 0)
        return fmt_fail(err, ASR_E_CORRUPT, "size 0");
    if (v->used_bytes > v->size_bytes)
        return fmt_fail(err, ASR_E_CORRUPT, "used bytes %llu over its size %llu", (unsigned long long)v->used_bytes,
                        (unsigned long long)v->size_bytes);
    if (v->capture > ASR_CAPTURE_HEADER)
        return fmt_fail(err, ASR_E_CORRUPT, "capture %u unknown", v->capture);
    for (uint32_t i = 0; v->name[0] && i < k; i++)
        if (!strcmp(st->volumes[i].name, v->name))
            return fmt_fail(err, ASR_E_CORRUPT, "name '%s' also volume %u's", v->name, i);
    if (st->kind == ASR_STACK_LVM_VG) {
        if (!v->name[0])
            return fmt_fail(err, ASR_E_CORRUPT, "an LV without a name");
        if (st->unit_bytes && v->size_bytes % st->unit_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "size %llu not whole extents of %llu bytes",
                            (unsigned long long)v->size_bytes, (unsigned long long)st->unit_bytes);
    }
    return ASR_OK;
}

/* The rules of each kind this version defines for the stack as a whole. */
static int kind_check(const struct asr_stack_desc *st, struct asr_error *err)
{
    switch (st->kind) {
    case 0:
        return fmt_fail(err, ASR_E_CORRUPT, "kind 0 is no stack kind");
    case ASR_STACK_LVM_VG:
        if (!st->name[0] || !st->uuid[0])
            return fmt_fail(err, ASR_E_CORRUPT, "a VG without its name or uuid");
        if (st->level)
            return fmt_fail(err, ASR_E_CORRUPT, "level %u on a VG (0 for LVM)", st->level);
        if (st->unit_bytes == 0 || st->unit_bytes % 512)
            return fmt_fail(err, ASR_E_CORRUPT, "extent size %llu not a multiple of 512",
                            (unsigned long long)st->unit_bytes);
        return ASR_OK;
    case ASR_STACK_MD:
        if (st->level != 0 && st->level != 1 && st->level != 4 && st->level != 5 && st->level != 6 &&
            st->level != 10 && st->level != UINT32_MAX)
            return fmt_fail(err, ASR_E_CORRUPT, "RAID level %u unknown", st->level);
        if (st->volume_count > 1)
            return fmt_fail(err, ASR_E_CORRUPT, "an md array with %u volumes (at most 1)", st->volume_count);
        return ASR_OK;
    case ASR_STACK_LUKS:
        if (st->member_count != 1 || st->volume_count > 1)
            return fmt_fail(err, ASR_E_CORRUPT, "a LUKS container with %u members and %u volumes (1 and at most 1)",
                            st->member_count, st->volume_count);
        if (st->level)
            return fmt_fail(err, ASR_E_CORRUPT, "level %u on a LUKS container (0)", st->level);
        if (st->unit_bytes < 512 || st->unit_bytes > 4096 || (st->unit_bytes & (st->unit_bytes - 1)))
            return fmt_fail(err, ASR_E_CORRUPT, "sector size %llu not a power of two from 512 to 4096",
                            (unsigned long long)st->unit_bytes);
        if (st->volume_count && st->volumes[0].size_bytes > st->members[0].data_bytes)
            return fmt_fail(err, ASR_E_CORRUPT, "its volume is larger than its data area");
        return ASR_OK;
    default:
        return ASR_OK; /* a later kind: its generic fields are checked, shown by number */
    }
}

static int stack_check(const struct asr_stack_desc *s, uint32_t index, const struct asr_disk_desc *disks,
                       uint32_t disk_count, struct asr_error *err)
{
    const struct asr_stack_desc *st = &s[index];
    struct asr_error why = {0};
    if (!TERMINATED(st->name) || !TERMINATED(st->uuid) || strlen(st->name) > ASR_STACK_NAME_MAX ||
        strlen(st->uuid) > ASR_FSNAME_MAX)
        return fmt_fail(err, ASR_E_CORRUPT, "stack %u: name or uuid too long", index);
    const char *name = st->name[0] ? st->name : "unnamed";
    if (st->member_count == 0 || st->member_count > ASR_MAX_STACK_MEMBERS || !st->members)
        return fmt_fail(err, ASR_E_CORRUPT, "stack %u (%s): member count %u out of range (1 to %u)", index, name,
                        st->member_count, ASR_MAX_STACK_MEMBERS);
    if (st->volume_count > ASR_MAX_STACK_VOLUMES || (st->volume_count && !st->volumes))
        return fmt_fail(err, ASR_E_CORRUPT, "stack %u (%s): volume count %u out of range (0 to %u)", index, name,
                        st->volume_count, ASR_MAX_STACK_VOLUMES);
    int rc = kind_check(st, &why);
    if (rc)
        return fmt_fail(err, rc, "stack %u (%s): %s", index, name, why.msg);
    for (uint32_t k = 0; k < st->volume_count; k++)
        if ((rc = volume_check(st, k, &why)))
            return fmt_fail(err, rc, "stack %u (%s): volume %u: %s", index, name, k, why.msg);
    for (uint32_t k = 0; k < st->member_count; k++)
        if ((rc = member_check(s, index, k, disks, disk_count, &why)))
            return fmt_fail(err, rc, "stack %u (%s): member %u: %s", index, name, k, why.msg);
    return ASR_OK;
}

int asr_stacks_valid(const struct asr_stack_desc *s, uint32_t n, const struct asr_disk_desc *disks,
                     uint32_t disk_count, struct asr_error *err)
{
    if (n > ASR_MAX_STACKS)
        return fmt_fail(err, ASR_E_CORRUPT, "%u stacks (at most %u)", n, ASR_MAX_STACKS);
    for (uint32_t i = 0; i < n; i++) {
        int rc = stack_check(s, i, disks, disk_count, err);
        if (rc)
            return rc;
    }
    return ASR_OK;
}

/* ---- encoding ---------------------------------------------------------------------------------- */

static int encode_member(const struct asr_stack_member *m, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, MEMBER_FIXED);
    if (!b)
        return -1;
    memset(b, 0, MEMBER_FIXED);
    b[0] = m->on;
    put_le32(b + 4, m->on == ASR_MEMBER_STACK ? m->stack : m->disk);
    put_le32(b + 8, m->on == ASR_MEMBER_STACK ? m->volume : m->partition);
    put_le32(b + 12, m->role);
    put_le64(b + 16, m->data_offset);
    put_le64(b + 24, m->data_bytes);
    return fmt_put_str(out, m->uuid, ASR_FSNAME_MAX);
}

static int encode_volume(const struct asr_stack_volume *v, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, SVOL_FIXED);
    if (!b)
        return -1;
    memset(b, 0, SVOL_FIXED);
    put_le64(b + 0, v->size_bytes);
    put_le64(b + 8, v->used_bytes);
    b[16] = v->capture;
    b[17] = v->critical ? SVOL_CRITICAL : 0;
    return fmt_put_str(out, v->name, ASR_STACK_NAME_MAX) || fmt_put_str(out, v->uuid, ASR_FSNAME_MAX) ||
                   fmt_put_str(out, v->fs_type, ASR_FSNAME_MAX) || fmt_put_str(out, v->fs_uuid, ASR_FSNAME_MAX) ||
                   fmt_put_str(out, v->fs_label, ASR_FSNAME_MAX) || fmt_put_str(out, v->mount, ASR_NAME_MAX)
               ? -1
               : 0;
}

int fmt_stacks_encode(const struct asr_stack_desc *s, uint32_t n, struct fmt_buf *out)
{
    uint8_t *b = fmt_buf_extend(out, TABLE_FIXED);
    if (!b)
        return -1;
    put_le32(b, n);
    put_le32(b + 4, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!(b = fmt_buf_extend(out, STACK_FIXED)))
            return -1;
        memset(b, 0, STACK_FIXED);
        b[0] = s[i].kind;
        put_le32(b + 4, s[i].level);
        put_le64(b + 8, s[i].seqno);
        put_le64(b + 16, s[i].unit_bytes);
        put_le32(b + 24, s[i].member_count);
        put_le32(b + 28, s[i].volume_count);
        if (fmt_put_str(out, s[i].name, ASR_STACK_NAME_MAX) || fmt_put_str(out, s[i].uuid, ASR_FSNAME_MAX))
            return -1;
        for (uint32_t k = 0; k < s[i].member_count; k++)
            if (encode_member(&s[i].members[k], out))
                return -1;
        for (uint32_t k = 0; k < s[i].volume_count; k++)
            if (encode_volume(&s[i].volumes[k], out))
                return -1;
    }
    return 0;
}

/* ---- decoding ---------------------------------------------------------------------------------- */

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int decode_member(struct fmt_cursor *c, struct asr_stack_member *m, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, MEMBER_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated");
    if (!zero(b + 1, 3))
        return fmt_fail(err, ASR_E_CORRUPT, "reserved bytes not zero");
    m->on = b[0];
    uint32_t a = get_le32(b + 4), z = get_le32(b + 8);
    if (m->on == ASR_MEMBER_STACK)
        m->stack = a, m->volume = z;
    else
        m->disk = a, m->partition = z;
    m->role = get_le32(b + 12);
    m->data_offset = get_le64(b + 16);
    m->data_bytes = get_le64(b + 24);
    return fmt_take_str(c, m->uuid, ASR_FSNAME_MAX, err);
}

static int decode_volume(struct fmt_cursor *c, struct asr_stack_volume *v, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, SVOL_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated");
    if ((b[17] & ~SVOL_CRITICAL) || !zero(b + 18, SVOL_FIXED - 18))
        return fmt_fail(err, ASR_E_CORRUPT, "reserved bits not zero");
    v->size_bytes = get_le64(b + 0);
    v->used_bytes = get_le64(b + 8);
    v->capture = b[16];
    v->critical = b[17] & SVOL_CRITICAL;
    int rc;
    if ((rc = fmt_take_str(c, v->name, ASR_STACK_NAME_MAX, err)) || (rc = fmt_take_str(c, v->uuid, ASR_FSNAME_MAX, err)) ||
        (rc = fmt_take_str(c, v->fs_type, ASR_FSNAME_MAX, err)) ||
        (rc = fmt_take_str(c, v->fs_uuid, ASR_FSNAME_MAX, err)) ||
        (rc = fmt_take_str(c, v->fs_label, ASR_FSNAME_MAX, err)) || (rc = fmt_take_str(c, v->mount, ASR_NAME_MAX, err)))
        return rc;
    return ASR_OK;
}

/* One stack record; its arrays are allocated only once the bytes left could hold them. */
static int decode_stack(struct fmt_cursor *c, struct asr_stack_desc *s, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, STACK_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "truncated");
    if (!zero(b + 1, 3))
        return fmt_fail(err, ASR_E_CORRUPT, "reserved bytes not zero");
    s->kind = b[0];
    s->level = get_le32(b + 4);
    s->seqno = get_le64(b + 8);
    s->unit_bytes = get_le64(b + 16);
    uint32_t members = get_le32(b + 24), volumes = get_le32(b + 28);
    int rc = fmt_take_str(c, s->name, ASR_STACK_NAME_MAX, err);
    if (rc || (rc = fmt_take_str(c, s->uuid, ASR_FSNAME_MAX, err)))
        return rc;
    if (members == 0 || members > ASR_MAX_STACK_MEMBERS || volumes > ASR_MAX_STACK_VOLUMES ||
        (uint64_t)members * (MEMBER_FIXED + 2) + (uint64_t)volumes * (SVOL_FIXED + 12) > c->left)
        return fmt_fail(err, ASR_E_CORRUPT, "%u members / %u volumes out of range or past the section", members,
                        volumes);
    struct asr_stack_member *m = calloc(members, sizeof *m);
    struct asr_stack_volume *v = calloc(volumes + 1u, sizeof *v);
    s->members = m;
    s->volumes = v;
    if (!m || !v)
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    s->member_count = members;
    s->volume_count = volumes;
    struct asr_error why = {0};
    for (uint32_t k = 0; k < members; k++)
        if ((rc = decode_member(c, &m[k], &why)))
            return fmt_fail(err, rc, "member %u: %s", k, why.msg);
    for (uint32_t k = 0; k < volumes; k++)
        if ((rc = decode_volume(c, &v[k], &why)))
            return fmt_fail(err, rc, "volume %u: %s", k, why.msg);
    return ASR_OK;
}

int fmt_stacks_decode(struct fmt_cursor *c, struct fmt_layout *l, struct asr_error *err)
{
    const uint8_t *b = fmt_cursor_take(c, TABLE_FIXED);
    if (!b)
        return fmt_fail(err, ASR_E_CORRUPT, "stack table missing (feature stacks)");
    uint32_t n = get_le32(b);
    if (n == 0 || n > ASR_MAX_STACKS || (uint64_t)n * (STACK_FIXED + 4) > c->left || get_le32(b + 4) != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "stack count %u out of range (1 to %u)", n, ASR_MAX_STACKS);
    if (!(l->stacks = calloc(n, sizeof *l->stacks)))
        return fmt_fail(err, ASR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        l->stack_count = i + 1; /* so fmt_layout_free releases what was allocated */
        struct asr_error why = {0};
        int rc = decode_stack(c, &l->stacks[i], &why);
        if (rc)
            return fmt_fail(err, rc, "stack %u: %s", i, why.msg);
    }
    if (c->left != 0)
        return fmt_fail(err, ASR_E_CORRUPT, "%zu stray bytes after the last stack", c->left);
    return asr_stacks_valid(l->stacks, n, l->disks, l->disk_count, err);
}

/* ---- copies -------------------------------------------------------------------------------------- */

int fmt_stack_copy(struct asr_stack_desc *dst, const struct asr_stack_desc *src)
{
    *dst = *src;
    struct asr_stack_member *m = calloc(src->member_count + 1u, sizeof *m);
    struct asr_stack_volume *v = calloc(src->volume_count + 1u, sizeof *v);
    dst->members = m;
    dst->volumes = v;
    if (!m || !v)
        return -1;
    if (src->member_count)
        memcpy(m, src->members, src->member_count * sizeof *m);
    if (src->volume_count)
        memcpy(v, src->volumes, src->volume_count * sizeof *v);
    return 0;
}

void fmt_stack_free(struct asr_stack_desc *s)
{
    free((void *)s->members);
    free((void *)s->volumes);
    s->members = NULL;
    s->volumes = NULL;
}
