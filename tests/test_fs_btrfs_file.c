/* Small files read by path from btrfs (engine/fs/fs_btrfs_file.c), on filesystems btrfs_file_fixture.sh
 * made with mkfs.btrfs and filled through the kernel: Fedora's layout (subvolumes root and home
 * at the top level, zstd, lzo and zlib compression, inline files, regular extents around holes,
 * a snapshot, a directory of 2000 entries) where every file reads equal to its source, from the
 * top level as /root/etc/fstab and from subvolume root as /etc/fstab; openSUSE's (a default
 * subvolume with one nested in it, explicit hole extents); the subvolume listing against
 * `btrfs subvolume list`; every answer that is not a file; and items damaged inside checksummed
 * leaves, each refused in one line naming the item. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asr_engine.h"
#include "crc32c.h"
#include "fs_btrfs_internal.h"
#include "fs_file.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

#define CAP (4u << 20) /* holds the largest file of the fixtures */
#define FIX BTRFS_FIXTURES

TestSuite(fs_btrfs_file, .fini = scratch_cleanup, .timeout = 120);

static const char *fixture(const char *name)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", FIX, name);
    struct stat st;
    if (stat(FIX "/fedora.img", &st))
        cr_skip_test("no btrfs fixtures in %s (btrfs_file_fixture.sh skipped: not root, or no mkfs.btrfs)", FIX);
    return p;
}

static struct fs_vol *open_vol(const char *img, uint64_t subvol, struct asr_window *w)
{
    *w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    struct fs_vol *v = NULL;
    struct asr_error err = {0};
    int rc = subvol == 5 ? fs_vol_open(w, "btrfs", &v, &err) : fs_btrfs_vol_open_subvol(w, subvol, &v, &err);
    cr_assert_eq(rc, ASR_OK, "%s: %s", img, err.msg);
    return v;
}

static void close_vol(struct fs_vol *v, struct asr_window *w)
{
    fs_vol_close(v);
    close(w->fd);
}

static void assert_reads(struct fs_vol *v, const char *path, const char *src)
{
    size_t want_len, len;
    uint8_t *want = read_file(src, &want_len), *got;
    struct asr_error err = {0};
    int rc = fs_vol_read(v, path, CAP, &got, &len, &err);
    cr_assert_eq(rc, ASR_OK, "%s: %s", path, err.msg);
    cr_assert_eq(len, want_len, "%s: %zu bytes read, the source has %zu", path, len, want_len);
    cr_assert_eq(memcmp(got, want, len), 0, "%s: read differently from its source %s", path, src);
    cr_assert_eq(got[len], 0, "not NUL-terminated");
    free(want);
    free(got);
}

/* A refusal: status rc, one line of message naming the path and holding `says`. */
static void assert_refused(struct fs_vol *v, const char *path, size_t cap, int rc, const char *says)
{
    uint8_t *got = (uint8_t *)"x";
    size_t len;
    struct asr_error err = {0};
    int got_rc = fs_vol_read(v, path, cap, &got, &len, &err);
    cr_assert_eq(got_rc, rc, "%s: status %d, expected %d (%s)", path, got_rc, rc, err.msg);
    cr_assert_null(got, "%s: a refusal left a buffer", path);
    cr_assert_eq((int)err.code, rc);
    cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "%s: message not one line: '%s'", path, err.msg);
    cr_assert(!strncmp(err.msg, "btrfs: ", 7), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, path), "message does not name the path: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, says), "message '%s' does not say '%s'", err.msg, says);
    cr_log_info("%s: %s", path, err.msg);
}

/* ---- every file -------------------------------------------------------------------------- */

Test(fs_btrfs_file, every_file_reads_as_its_source_from_the_top_level)
{
    const char *img = fixture("fedora.img");
    char *list = fsfix_sh_out("cd %s/src && find . -type f -o -type l | sort", FIX);
    cr_assert_not_null(list);
    struct asr_window w;
    struct fs_vol *v = open_vol(img, 5, &w);
    size_t n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n"), n++) {
        char src[1024];
        snprintf(src, sizeof src, "%s/src/%s", FIX, line + 2);
        assert_reads(v, line + 1, src); /* "./root/etc/fstab" -> "/root/etc/fstab" */
    }
    cr_assert_geq(n, 2000 * 2 + 10, "only %zu files in the sources", n);
    close_vol(v, &w);
    free(list);
}

Test(fs_btrfs_file, compression_and_holes_are_in_the_fixture)
{
    /* What the reads above prove depends on the fixture holding these: the kernel chose. */
    fixture("fedora.img");
    char *dump = fsfix_sh_out("btrfs inspect-internal dump-tree -t 256 %s/fedora.img", FIX);
    cr_assert_not_null(dump);
    for (int c = 1; c <= 3; c++) {
        char want[32];
        snprintf(want, sizeof want, "compression %d", c);
        cr_assert_not_null(strstr(dump, want), "no extent with %s", want);
    }
    cr_assert_not_null(strstr(dump, "inline extent"), "no inline extent");
    free(dump);
    /* An item taking a compressed extent from an offset into its decompressed bytes. */
    dump = fsfix_sh_out("btrfs inspect-internal dump-tree -t 256 %s/fedora.img | grep -A1 'extent data offset [1-9]' |"
                        " grep -c 'extent compression [123]'", FIX);
    cr_assert(dump && atoi(dump) > 0, "no compressed extent read from an offset");
    free(dump);
    dump = fsfix_sh_out("btrfs inspect-internal dump-tree -t 256 %s/fedora.img", FIX);
    cr_assert_not_null(strstr(dump, "extent data disk byte"), "no regular extent");
    free(dump);
    dump = fsfix_sh_out("btrfs inspect-internal dump-tree -t 256 %s/suse.img", FIX);
    cr_assert_not_null(strstr(dump, "extent data disk byte 0 nr 0"), "no explicit hole extent in suse.img");
    free(dump);
}

/* ---- subvolumes -------------------------------------------------------------------------- */

Test(fs_btrfs_file, a_subvolume_opened_is_its_own_root)
{
    const char *img = fixture("fedora.img");
    struct fs_btrfs_subvol *s;
    size_t n;
    struct asr_window w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    struct asr_error err = {0};
    cr_assert_eq(fs_btrfs_subvols(&w, &s, &n, &err), ASR_OK, "%s", err.msg);
    close(w.fd);
    uint64_t root = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s[i].path, "/root"))
            root = s[i].id;
    fs_btrfs_subvols_free(s, n);
    cr_assert(root, "no subvolume /root");
    struct fs_vol *v = open_vol(img, root, &w);
    char src[512];
    snprintf(src, sizeof src, "%s/src/root/etc/fstab", FIX);
    assert_reads(v, "/etc/fstab", src);
    assert_reads(v, "/etc/fstab.abs", src); /* absolute: from this subvolume's root */
    assert_reads(v, "/etc/../etc/./fstab.link", src);
    snprintf(src, sizeof src, "%s/src/root/usr/lib/os-release", FIX);
    assert_reads(v, "/etc/os-release", src);
    assert_refused(v, "/root/etc/fstab", CAP, FS_E_NOT_FOUND, "not found");
    close_vol(v, &w);
    /* The default subvolume of Fedora's layout is the top level. */
    w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    cr_assert_eq(fs_btrfs_vol_open_subvol(&w, FS_BTRFS_DEFAULT, &v, &err), ASR_OK, "%s", err.msg);
    snprintf(src, sizeof src, "%s/src/root/etc/fstab", FIX);
    assert_reads(v, "/root/etc/fstab", src);
    fs_vol_close(v);
    cr_assert_eq(fs_btrfs_vol_open_subvol(&w, 4242, &v, &err), FS_E_NOT_FOUND, "%s", err.msg);
    cr_assert_null(v);
    cr_assert_not_null(strstr(err.msg, "subvolume 4242"), "%s", err.msg);
    close(w.fd);
}

/* fs_btrfs_subvols against what `btrfs subvolume list` said of each image ("ID n ... path p"). */
static void assert_subvols(const char *name, const char *default_path)
{
    const char *img = fixture(name);
    char tag[16];
    snprintf(tag, sizeof tag, "%.*s", (int)(strchr(name, '.') - name), name);
    struct fs_btrfs_subvol *s;
    size_t n;
    struct asr_window w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    struct asr_error err = {0};
    cr_assert_eq(fs_btrfs_subvols(&w, &s, &n, &err), ASR_OK, "%s: %s", name, err.msg);
    close(w.fd);
    uint64_t want_n = fsfix_sh_number("grep -c '^%s ' %s/ids.txt", tag, FIX);
    cr_assert_eq(n, want_n + 1, "%s: %zu subvolumes, btrfs lists %llu and the top level", name, n,
                 (unsigned long long)want_n);
    cr_assert(s[0].id == 5 && !strcmp(s[0].path, "/"), "%s: the top level first", name);
    for (size_t i = 1; i < n; i++) {
        uint64_t listed = fsfix_sh_number("grep -c '^%s ID %llu gen [0-9]* top level %llu path %s$' %s/ids.txt", tag,
                                          (unsigned long long)s[i].id, (unsigned long long)s[i].parent,
                                          s[i].path + 1, FIX);
        cr_assert_eq(listed, 1, "%s: subvolume %llu at %s (in %llu) is not what btrfs lists", name,
                     (unsigned long long)s[i].id, s[i].path, (unsigned long long)s[i].parent);
    }
    size_t defaults = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].is_default) {
            defaults++;
            cr_assert_str_eq(s[i].path, default_path, "%s: the default subvolume", name);
        }
    cr_assert_eq(defaults, 1);
    fs_btrfs_subvols_free(s, n);
}

Test(fs_btrfs_file, subvolumes_listed_as_btrfs_lists_them)
{
    assert_subvols("fedora.img", "/");
    assert_subvols("suse.img", "/@");
}

Test(fs_btrfs_file, the_default_subvolume_and_nested_ones)
{
    const char *img = fixture("suse.img");
    struct asr_window w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    struct fs_vol *v;
    struct asr_error err = {0};
    cr_assert_eq(fs_btrfs_vol_open_subvol(&w, FS_BTRFS_DEFAULT, &v, &err), ASR_OK, "%s", err.msg);
    uint8_t *got;
    size_t len;
    cr_assert_eq(fs_vol_read(v, "/etc/fstab", CAP, &got, &len, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq((char *)got, "UUID=5678 / btrfs defaults 0 0\n");
    free(got);
    cr_assert_eq(fs_vol_read(v, "/var/log", CAP, &got, &len, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq((char *)got, "var data\n");
    free(got);
    assert_reads(v, "/holes", fixture("suse-holes")); /* hole extents of their own (no no-holes) */
    close_vol(v, &w);
    v = open_vol(img, 5, &w);
    assert_reads(v, "/@/holes", fixture("suse-holes"));
    cr_assert_eq(fs_vol_read(v, "/@/.snapshots/1/snapshot/etc/fstab", CAP, &got, &len, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq((char *)got, "UUID=5678 / btrfs defaults 0 0\n");
    free(got);
    close_vol(v, &w);
}

/* ---- directories ------------------------------------------------------------------------- */

struct names {
    char *seen; /* 2000 flags */
    size_t n, files, dirs;
    char text[512];
};

static int collect(void *ctx, const char *name, enum fs_kind kind)
{
    struct names *l = ctx;
    l->n++;
    l->files += kind == FS_KIND_FILE;
    l->dirs += kind == FS_KIND_DIR;
    int i;
    if (l->seen && sscanf(name, "file-%d", &i) == 1 && i >= 0 && i < 2000)
        l->seen[i]++;
    size_t at = strlen(l->text);
    snprintf(l->text + at, sizeof l->text - at, "%c %s\n", "fdlo"[kind], name);
    return 0;
}

Test(fs_btrfs_file, directories_list_every_entry_once)
{
    const char *img = fixture("fedora.img");
    struct asr_window w;
    struct fs_vol *v = open_vol(img, 5, &w);
    struct asr_error err = {0};
    struct names l = {.seen = calloc(2000, 1)};
    cr_assert_eq(fs_vol_list(v, "/root/big", collect, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.n, 2000);
    cr_assert_eq(l.files, 2000);
    for (int i = 0; i < 2000; i++)
        cr_assert_eq(l.seen[i], 1, "file-%d listed %d times", i, l.seen[i]);
    free(l.seen);
    l = (struct names){0};
    cr_assert_eq(fs_vol_list(v, "/", collect, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.dirs, 4, "the top level lists:\n%s", l.text); /* root, home, snap, home-snap */
    cr_assert_not_null(strstr(l.text, "d root\n"), "%s", l.text);
    cr_assert_not_null(strstr(l.text, "d snap\n"), "%s", l.text);
    l = (struct names){0};
    cr_assert_eq(fs_vol_list(v, "/root/etc", collect, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_not_null(strstr(l.text, "l fstab.link\n"), "%s", l.text);
    cr_assert_not_null(strstr(l.text, "f fstab\n"), "%s", l.text);
    /* A snapshot's placeholder for a subvolume nested in the one it copied: empty. */
    l = (struct names){0};
    cr_assert_eq(fs_vol_list(v, "/home-snap/nested", collect, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.n, 0, "%s", l.text);
    assert_refused(v, "/home-snap/nested/file", CAP, FS_E_NOT_FOUND, "not found");
    cr_assert_eq(fs_vol_list(v, "/home/nested", collect, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(l.text, "f file\n");
    cr_assert_eq(fs_vol_list(v, "/root/etc/fstab", collect, &l, &err), FS_E_NOT_DIR);
    cr_assert_eq(fs_vol_list(v, "/root/nope", collect, &l, &err), FS_E_NOT_FOUND);
    close_vol(v, &w);
}

/* ---- answers that are not a file ----------------------------------------------------------- */

Test(fs_btrfs_file, each_refusal_says_why)
{
    const char *img = fixture("fedora.img");
    struct asr_window w;
    struct fs_vol *v = open_vol(img, 5, &w);
    assert_refused(v, "/root/etc/nope", CAP, FS_E_NOT_FOUND, "/root/etc/nope: not found");
    assert_refused(v, "/nope/fstab", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(v, "/root/etc/fstab/x", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(v, "/root/etc", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(v, "/root", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(v, "/root/etc/zstd.txt", 1000, ASR_E_LIMIT, "over the 1000-byte limit");
    assert_refused(v, "/root/etc/loop.a", CAP, ASR_E_CORRUPT, "symbolic links (a loop?)");
    /* Absolute links resolve from the opened subvolume: the top level has no /etc. */
    assert_refused(v, "/root/etc/fstab.abs", CAP, FS_E_NOT_FOUND, "not found");
    close_vol(v, &w);
}

/* ---- damage ------------------------------------------------------------------------------ */

/* Where a leaf item is, found through the core, to damage it in every copy on the disk. */
struct found {
    struct btrfs_key want;
    uint64_t leaf;
    uint32_t slot, size;
    bool hit;
};

static int find_item(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    (void)err;
    struct found *f = ctx;
    f->leaf = it->leaf;
    f->slot = it->slot;
    f->size = it->size;
    f->hit = true;
    return BTRFS_STOP;
}

typedef void (*damage_fn)(uint8_t *data, uint32_t size);

/* Applies damage to the data of item key in tree `tree` of copy (a copy of img), in each of the
 * leaf's copies on the disk, each leaf's checksum written again: only the item is wrong. */
static void damage_item(const char *copy, uint64_t tree, struct btrfs_key key, damage_fn damage)
{
    struct asr_window w = fsfix_window(copy, 0, fsfix_sh_number("stat -c %%s %s", copy));
    struct btrfs_fs *fs;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    struct btrfs_root r = {.bytenr = fs->root, .level = fs->root_level};
    bool found = true;
    if (tree != BTRFS_ROOT_TREE_OBJECTID)
        cr_assert_eq(btrfs_find_root(fs, tree, &r, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    struct found f = {.want = key};
    cr_assert_eq(btrfs_search(fs, r.bytenr, r.level, &key, &key, find_item, &f, &err), ASR_OK, "%s", err.msg);
    cr_assert(f.hit, "no item (%llu %u %llu)", (unsigned long long)key.objectid, key.type,
              (unsigned long long)key.offset);
    const struct btrfs_chunk *c = btrfs_chunk_find(fs, f.leaf);
    cr_assert_not_null(c);
    struct btrfs_place at[BTRFS_MAX_COPIES];
    uint64_t run;
    unsigned copies = btrfs_chunk_place(c, f.leaf, at, &run);
    cr_assert_geq(copies, 1);
    uint32_t ns = fs->nodesize;
    uint8_t *block = malloc(ns);
    for (unsigned i = 0; i < copies; i++) {
        fsfix_read_at(copy, at[i].physical, block, ns);
        uint8_t *item = block + BTRFS_HEADER_SIZE + BTRFS_ITEM_SIZE * f.slot;
        damage(block + BTRFS_HEADER_SIZE + get_le32(item + 17), get_le32(item + 21));
        put_le32(block, asr_crc32c(block + 32, ns - 32));
        fsfix_write_at(copy, at[i].physical, block, ns);
    }
    free(block);
    btrfs_close(fs);
    close(w.fd);
}

static void bad_extent_type(uint8_t *data, uint32_t size)
{
    cr_assert_geq(size, 21);
    data[20] = 7;
}

static void name_past_item(uint8_t *data, uint32_t size)
{
    cr_assert_geq(size, 30);
    put_le16(data + 27, (uint16_t)(size + 1));
}

static void backref_past(uint8_t *data, uint32_t size)
{
    cr_assert_geq(size, 18);
    put_le16(data + 16, (uint16_t)(size - 18 + 1));
}

static void iref_empty_name(uint8_t *data, uint32_t size)
{
    cr_assert_geq(size, 10);
    put_le16(data + 8, 0);
}

/* The inode a name of directory dir (of subvolume tree) leads to, from its DIR_INDEX. */
struct lookup_ctx {
    const char *name;
    uint64_t ino;
};

static int find_entry(void *ctx, const struct btrfs_item *it, struct asr_error *err)
{
    (void)err;
    struct lookup_ctx *l = ctx;
    if (it->key.type != BTRFS_DIR_INDEX_KEY || it->size < 30)
        return ASR_OK;
    uint16_t n = get_le16(it->data + 27);
    if (n == strlen(l->name) && 30u + n <= it->size && !memcmp(it->data + 30, l->name, n)) {
        l->ino = get_le64(it->data);
        return BTRFS_STOP;
    }
    return ASR_OK;
}

static uint64_t entry_ino(const char *img, uint64_t tree, uint64_t dir, const char *name)
{
    struct asr_window w = fsfix_window(img, 0, fsfix_sh_number("stat -c %%s %s", img));
    struct btrfs_fs *fs;
    struct asr_error err = {0};
    cr_assert_eq(btrfs_open(&w, &fs, &err), ASR_OK, "%s", err.msg);
    struct btrfs_root r;
    bool found;
    cr_assert_eq(btrfs_find_root(fs, tree, &r, &found, &err), ASR_OK, "%s", err.msg);
    struct lookup_ctx l = {name, 0};
    struct btrfs_key min = {dir, BTRFS_DIR_INDEX_KEY, 0}, max = {dir, BTRFS_DIR_INDEX_KEY, UINT64_MAX};
    cr_assert_eq(btrfs_search(fs, r.bytenr, r.level, &min, &max, find_entry, &l, &err), ASR_OK, "%s", err.msg);
    cr_assert(l.ino, "%s not in directory %llu", name, (unsigned long long)dir);
    btrfs_close(fs);
    close(w.fd);
    return l.ino;
}

Test(fs_btrfs_file, a_damaged_item_is_refused_naming_it)
{
    const char *img = fixture("suse.img");
    char *copy = scratch_path("suse.img");
    /* Subvolume @ (256) of suse.img: /etc (in its root directory 256), then /etc/fstab. */
    uint64_t etc = entry_ino(img, 256, 256, "etc"), fstab = entry_ino(img, 256, etc, "fstab");

    copy_file(img, copy);
    damage_item(copy, 256, (struct btrfs_key){fstab, BTRFS_EXTENT_DATA_KEY, 0}, bad_extent_type);
    struct asr_window w;
    struct fs_vol *v = open_vol(copy, 256, &w);
    assert_refused(v, "/etc/fstab", CAP, ASR_E_CORRUPT, "EXTENT_DATA 0): extent type 7");
    close_vol(v, &w);

    /* A directory entry whose name runs past its item: found through the name's hash. */
    copy_file(img, copy);
    struct btrfs_key k = {etc, BTRFS_DIR_ITEM_KEY, asr_crc32c_update(~1u, "fstab", 5)};
    damage_item(copy, 256, k, name_past_item);
    v = open_vol(copy, 256, &w);
    assert_refused(v, "/etc/fstab", CAP, ASR_E_CORRUPT, "DIR_ITEM");
    close_vol(v, &w);

    /* The subvolume list: a ROOT_BACKREF whose name runs past its item (@/var's, 257 in 256),
     * then an INODE_REF on a snapshot's way (directory 1 of .snapshots) saying a name of 0 bytes. */
    struct fs_btrfs_subvol *s;
    size_t n;
    copy_file(img, copy);
    damage_item(copy, BTRFS_ROOT_TREE_OBJECTID, (struct btrfs_key){257, BTRFS_ROOT_BACKREF_KEY, 256}, backref_past);
    w = fsfix_window(copy, 0, fsfix_sh_number("stat -c %%s %s", copy));
    struct asr_error err = {0};
    cr_assert_eq(fs_btrfs_subvols(&w, &s, &n, &err), ASR_E_CORRUPT, "%s", err.msg);
    cr_assert(strstr(err.msg, "(257 ROOT_BACKREF 256): a name of") && !strchr(err.msg, '\n'), "%s", err.msg);
    cr_assert_null(s);
    close(w.fd);

    uint64_t snapshots = entry_ino(img, 256, 256, ".snapshots"); /* a subvolume: its id */
    uint64_t one = entry_ino(img, snapshots, 256, "1");
    copy_file(img, copy);
    damage_item(copy, snapshots, (struct btrfs_key){one, BTRFS_INODE_REF_KEY, 256}, iref_empty_name);
    w = fsfix_window(copy, 0, fsfix_sh_number("stat -c %%s %s", copy));
    cr_assert_eq(fs_btrfs_subvols(&w, &s, &n, &err), ASR_E_CORRUPT, "%s", err.msg);
    cr_assert(strstr(err.msg, "INODE_REF 256): a name of 0 bytes"), "%s", err.msg);
    close(w.fd);
    free(copy);
}
