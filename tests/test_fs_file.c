/* Small files read by path without mounting (engine/fs/fs_file.h): ext2/3/4 made by mke2fs -d,
 * FAT12/16/32 made by mkfs.vfat and filled by mtools, exFAT, XFS v4 (mkfs.xfs -p) and v5 (filled
 * through a loop mount) with directories of every format, every file read back equal to its
 * source; then each answer that is not a file (not found, too big, a directory, an unsupported
 * type) and damaged metadata on the way (entries pointing outside, chains that loop or end early,
 * symbolic links that loop, directories that repeat their blocks), each with its own status and
 * a one-line message. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"
#include "fs_file.h"
#include "fsfix.h"
#include "le.h"
#include "support.h"

/* exFAT volumes are filled through exfat-fuse on a loop device (as test_fs_exfat.c does):
 * whatever is still attached when a test ends is let go here. */
static char exfat_loop[64], exfat_mnt[512];

static void exfat_unmount(void)
{
    if (exfat_mnt[0])
        fsfix_sh("fusermount -u %s", exfat_mnt);
    if (exfat_loop[0])
        fsfix_sh("losetup -d %s", exfat_loop);
    exfat_mnt[0] = exfat_loop[0] = '\0';
}

static void xfs_unmount(void);

static void teardown(void)
{
    exfat_unmount();
    xfs_unmount();
    scratch_cleanup();
}

TestSuite(fs_file, .fini = teardown, .timeout = 120);

#define CAP (1u << 20) /* what the callers use */
#define MT "MTOOLS_SKIP_CHECK=1 "

/* ---- helpers ------------------------------------------------------------------------------- */

struct vol {
    char *img;
    const char *type;
    uint64_t size;
};

static uint64_t file_size(const char *path) { return fsfix_sh_number("stat -c %%s %s", path); }

/* fs_read_file on the whole of v's image. */
static int read_path(const struct vol *v, const char *path, size_t cap, uint8_t **out, size_t *len,
                     struct asr_error *err)
{
    struct asr_window w = fsfix_window(v->img, 0, v->size);
    *err = (struct asr_error){0};
    int rc = fs_read_file(&w, v->type, path, cap, out, len, err);
    close(w.fd);
    if (rc == ASR_OK)
        cr_assert_not_null(*out);
    else
        cr_assert_null(*out, "%s: a refusal left a buffer", path);
    return rc;
}

/* The file at path reads back equal to the source file src. */
static void assert_reads(const struct vol *v, const char *path, const char *src)
{
    size_t want_len, len;
    uint8_t *want = read_file(src, &want_len), *got;
    struct asr_error err;
    int rc = read_path(v, path, CAP, &got, &len, &err);
    cr_assert_eq(rc, ASR_OK, "%s %s: %s", v->type, path, err.msg);
    cr_assert_eq(len, want_len, "%s %s: %zu bytes read, the source has %zu", v->type, path, len, want_len);
    cr_assert_eq(memcmp(got, want, len), 0, "%s %s: read differently from its source", v->type, path);
    cr_assert_eq(got[len], 0, "not NUL-terminated");
    free(want);
    free(got);
}

/* A refusal: status rc, one line of message that names the path and holds `says`. */
static void assert_refused(const struct vol *v, const char *path, size_t cap, int rc, const char *says)
{
    uint8_t *got;
    size_t len;
    struct asr_error err;
    int got_rc = read_path(v, path, cap, &got, &len, &err);
    cr_assert_eq(got_rc, rc, "%s %s: status %d, expected %d (%s)", v->type, path, got_rc, rc, err.msg);
    cr_assert_eq((int)err.code, rc);
    cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "%s %s: message not one line: '%s'", v->type, path, err.msg);
    cr_assert_not_null(strstr(err.msg, path), "message does not name the path: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, says), "message '%s' does not say '%s'", err.msg, says);
    cr_log_info("%s %s: %s", v->type, path, err.msg);
}

/* A directory listing as "KIND NAME\n" lines in the order found (KIND: f d l o). */
struct listing {
    char text[8192];
    size_t n, stop_after;
};

static int collect(void *ctx, const char *name, enum fs_kind kind)
{
    struct listing *l = ctx;
    size_t at = strlen(l->text);
    snprintf(l->text + at, sizeof l->text - at, "%c %s\n", "fdlo"[kind], name);
    return ++l->n == l->stop_after;
}

static int list_path(const struct vol *v, const char *path, struct listing *l, struct asr_error *err)
{
    struct asr_window w = fsfix_window(v->img, 0, v->size);
    *err = (struct asr_error){0};
    int rc = fs_list_dir(&w, v->type, path, collect, l, err);
    close(w.fd);
    return rc;
}

static void assert_lists(const struct vol *v, const char *path, const char *const *want, size_t nwant)
{
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(v, path, &l, &err), ASR_OK, "%s %s: %s", v->type, path, err.msg);
    size_t lines = 0;
    for (const char *p = l.text; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, nwant, "%s %s lists:\n%s", v->type, path, l.text);
    for (size_t i = 0; i < nwant; i++) {
        char line[300];
        snprintf(line, sizeof line, "%s\n", want[i]);
        bool found = !strncmp(l.text, line, strlen(line));
        for (const char *p = l.text; !found && (p = strchr(p, '\n')); p++)
            found = !strncmp(p + 1, line, strlen(line));
        cr_assert(found, "%s %s: '%s' not listed in:\n%s", v->type, path, want[i], l.text);
    }
}

/* ---- ext2/3/4 ------------------------------------------------------------------------------- */

/* The files a root holds, and the ways to reach them: a relative symlink for os-release as
 * Debian and Fedora make it, an absolute one (from the filesystem's own root), a long one (its
 * target in a data block, not the inode), a symlinked directory on the way; nested directories,
 * a file of a single byte (inline with inline_data), a 300 KiB grub.cfg over many blocks and
 * extents' worth of a 1 KiB-block filesystem, a file just under the cap, one just over it. And
 * things that are not files: a dangling link, two links pointing at each other, a fifo. */
static void make_root_tree(const char *t)
{
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s; cd %1$s; mkdir -p etc/mdadm usr/lib boot/grub a/b/c/d/e/f"
                          " usr/lib/a-directory-with-a-name-long-enough-for-a-slow-symlink;"
                          "printf 'UUID=1234 / ext4 errors=remount-ro 0 1\\n' > etc/fstab;"
                          "head -c 3000 /dev/urandom > etc/crypttab; printf x > etc/one-byte;"
                          "head -c 700 /dev/urandom > etc/mdadm/mdadm.conf;"
                          "printf 'NAME=\"Debian GNU/Linux\"\\nID=debian\\n' > usr/lib/os-release;"
                          "cp usr/lib/os-release usr/lib/a-directory-with-a-name-long-enough-for-a-slow-symlink/;"
                          "ln -s ../usr/lib/os-release etc/os-release; ln -s /usr/lib/os-release etc/abs-release;"
                          "ln -s ../usr/lib/a-directory-with-a-name-long-enough-for-a-slow-symlink/os-release"
                          " etc/long-release;"
                          "ln -s ../usr/lib etc/lib; ln -s nowhere etc/dangling; ln -s loop2 etc/loop1;"
                          "ln -s loop1 etc/loop2; mkfifo etc/fifo;"
                          "head -c 300K /dev/urandom > boot/grub/grub.cfg; head -c 5000 /dev/urandom > a/b/c/d/e/f/deep;"
                          "head -c 1048576 /dev/urandom > at-cap.bin; head -c 1048577 /dev/urandom > over-cap.bin",
                          t),
                 0);
}

static struct vol make_ext(const char *mke2fs_opts, const char *type)
{
    char *t = scratch_path("tree"), *img = scratch_path("ext.img");
    make_root_tree(t);
    cr_assert_eq(fsfix_sh("mke2fs -q -F %s -d %s %s 16M >/dev/null", mke2fs_opts, t, img), 0, "mke2fs %s", mke2fs_opts);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s >/dev/null 2>&1", img), 0);
    free(t);
    return (struct vol){img, type, file_size(img)};
}

/* Every file of the scratch tree the volume was made from reads back as in the tree, by plain,
 * symlinked (relative, absolute, long, through a directory link) and unclean paths. The tree's
 * path and its os-release (*t, *release: free them) are left for the caller's further checks. */
static void assert_tree_reads(const struct vol *v, char **t, char **release)
{
    *t = scratch_path("tree");
    static const char *const files[] = {"etc/fstab", "etc/crypttab", "etc/one-byte", "etc/mdadm/mdadm.conf",
                                        "boot/grub/grub.cfg", "a/b/c/d/e/f/deep", "at-cap.bin"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256], src[512];
        snprintf(path, sizeof path, "/%s", files[i]);
        snprintf(src, sizeof src, "%s/%s", *t, files[i]);
        assert_reads(v, path, src);
    }
    *release = scratch_path("tree/usr/lib/os-release");
    assert_reads(v, "/etc/os-release", *release);
    assert_reads(v, "/etc/abs-release", *release);
    assert_reads(v, "/etc/long-release", *release);
    assert_reads(v, "/etc/lib/os-release", *release);
    assert_reads(v, "//etc/./mdadm/../lib/os-release", *release);
}

static void check_ext(const char *mke2fs_opts, const char *type)
{
    fsfix_need("mke2fs");
    struct vol v = make_ext(mke2fs_opts, type);
    char *t, *release;
    assert_tree_reads(&v, &t, &release);

    assert_refused(&v, "/etc/nothere", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/nothere/fstab", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/etc/fstab/x", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/etc/dangling", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/over-cap.bin", CAP, ASR_E_LIMIT, "1048577 bytes, over the 1048576-byte limit");
    assert_refused(&v, "/etc/fstab", 10, ASR_E_LIMIT, "over the 10-byte limit");
    assert_refused(&v, "/etc", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/etc/fifo", CAP, FS_E_NOT_FILE, "a special file");
    assert_refused(&v, "/etc/loop1", CAP, ASR_E_CORRUPT, "symbolic links nest");
    assert_refused(&v, "etc/fstab", CAP, ASR_E_ARG, "not an absolute path");

    static const char *const grub[] = {"f grub.cfg"};
    assert_lists(&v, "/boot/grub", grub, 1);
    static const char *const etc[] = {"f fstab",       "f crypttab",    "f one-byte",     "d mdadm",  "l os-release",
                                      "l abs-release", "l long-release", "l lib",          "l dangling", "l loop1",
                                      "l loop2",       "o fifo"};
    assert_lists(&v, "/etc", etc, sizeof etc / sizeof etc[0]);
    static const char *const lib[] = {"f os-release", "d a-directory-with-a-name-long-enough-for-a-slow-symlink"};
    assert_lists(&v, "/etc/lib", lib, 2);
    struct listing l = {.stop_after = 2};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/etc", &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.n, 2, "the listing went on after its callback said stop");
    cr_assert_eq(list_path(&v, "/etc/fstab", &l, &err), FS_E_NOT_DIR);
    cr_assert_eq(list_path(&v, "/nothere", &l, &err), FS_E_NOT_FOUND);
    free(release);
    free(t);
    free(v.img);
}

Test(fs_file, ext2_4k_blocks) { check_ext("-t ext2 -b 4096", "ext2"); }
Test(fs_file, ext2_without_filetype) { check_ext("-t ext2 -b 1024 -O ^filetype", "ext2"); }
Test(fs_file, ext3_1k_blocks) { check_ext("-t ext3 -b 1024", "ext3"); }
Test(fs_file, ext4) { check_ext("-t ext4", "ext4"); }
Test(fs_file, ext4_1k_blocks) { check_ext("-t ext4 -b 1024", "ext4"); }
Test(fs_file, ext4_inline_data) { check_ext("-t ext4 -O inline_data", "ext4"); }
Test(fs_file, ext4dev_name) { check_ext("-t ext4 -E test_fs", "ext4dev"); }

/* Block pointers of a directory and of a file sent past the end of the filesystem (ext2: block
 * maps that debugfs edits directly): the window refuses the read, and the answer is corruption
 * naming the path, not "not found". */
Test(fs_file, ext_entry_pointing_outside)
{
    fsfix_need("debugfs");
    struct vol v = make_ext("-t ext2 -b 1024", "ext2");
    cr_assert_eq(fsfix_sh("debugfs -w -R 'sif /etc/crypttab block[0] 9999999' %s >/dev/null 2>&1", v.img), 0);
    assert_refused(&v, "/etc/crypttab", CAP, ASR_E_CORRUPT, "outside");
    cr_assert_eq(fsfix_sh("debugfs -w -R 'sif /etc block[0] 9999999' %s >/dev/null 2>&1", v.img), 0);
    assert_refused(&v, "/etc/fstab", CAP, ASR_E_CORRUPT, "outside");
    assert_refused(&v, "/etc/os-release", CAP, ASR_E_CORRUPT, "outside");
    free(v.img);
}

/* A directory whose triple-indirect block lists its one real block 1024^3 times (as in
 * test_fs_ext's content_check_stops_a_directory_looping_through_its_blocks): the lookup stops at
 * its read limit, in well under a second, and says corrupt, not "too big" (the window's refusal
 * is ASR_E_LIMIT, which must not read as a file over the cap). A lookup elsewhere still works. */
Test(fs_file, ext_directory_repeating_its_blocks)
{
    fsfix_need("debugfs");
    struct vol v = make_ext("-t ext2 -b 4096", "ext2");
    uint64_t dir = fsfix_sh_number("debugfs -R 'blocks /boot/grub' %s 2>/dev/null", v.img);
    uint64_t blocks = v.size / 4096, t = blocks - 3;
    cr_assert_eq(fsfix_sh("debugfs -R 'testb %llu 3' %s 2>/dev/null | grep -c 'not in use' | grep -qx 3",
                          (unsigned long long)t, v.img),
                 0, "the last three blocks are in use");
    const uint64_t chain[][2] = {{t, t + 1}, {t + 1, t + 2}, {t + 2, dir}};
    uint8_t block[4096];
    for (size_t k = 0; k < 3; k++) {
        for (size_t at = 0; at < sizeof block; at += 4)
            for (int b = 0; b < 4; b++)
                block[at + (size_t)b] = (uint8_t)(chain[k][1] >> 8 * b);
        fsfix_write_at(v.img, chain[k][0] * 4096, block, sizeof block);
    }
    cr_assert_eq(fsfix_sh("debugfs -w -R 'sif /boot/grub block[TIND] %llu' %s >/dev/null 2>&1", (unsigned long long)t,
                          v.img),
                 0);
    assert_refused(&v, "/boot/grub/nothere", CAP, ASR_E_CORRUPT, "read limit");
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/boot/grub", &l, &err), ASR_E_CORRUPT, "%s", err.msg);
    char *src = scratch_path("tree/etc/fstab");
    assert_reads(&v, "/etc/fstab", src);
    free(src);
    free(v.img);
}

/* A crash as jbd2 leaves it (fsfix_ext_crash): a new file's data in place, the metadata that
 * makes it a file (inode, directory, bitmaps) only in a committed transaction of the journal,
 * as a copy of a running root holds a just-edited file. The reader replays the journal in
 * memory and finds the file, as the root will hold it once mounted. */
Test(fs_file, ext_journal_replayed)
{
    fsfix_need("debugfs");
    struct vol v = make_ext("-t ext4 -b 4096", "ext4");
    char *after = scratch_path("after.img"), *src = scratch_path("new-fstab"), *cmds = scratch_path("write.cmd");
    cr_assert_eq(fsfix_sh("head -c 2000 /dev/urandom > %1$s; printf 'cd /etc\\nwrite %1$s fstab.new\\nmkdir new.d\\n' > %2$s",
                          src, cmds),
                 0);
    fsfix_ext_crash(v.img, after, 4096, cmds, "/etc/fstab.new", "");
    cr_assert_neq(fsfix_sh("debugfs -R 'stat /etc/fstab.new' %s 2>/dev/null | grep -q Inode:", v.img), 0,
                  "the fixture shows the file before recovery");
    assert_reads(&v, "/etc/fstab.new", src);
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/etc/new.d", &l, &err), ASR_OK, "%s", err.msg);
    char *tree = scratch_path("tree/etc/fstab");
    assert_reads(&v, "/etc/fstab", tree);
    free(tree);
    free(after);
    free(src);
    free(cmds);
    free(v.img);
}

/* A filesystem too large for the reader to hold (descriptors for 2^32 groups, as test_fs_ext's
 * refuses_descriptor_table_too_large makes it: only the superblock is read) is unreadable, not
 * a file over the cap: ASR_E_LIMIT is kept for that. */
Test(fs_file, ext_too_large_to_open_is_not_over_the_cap)
{
    struct vol v = make_ext("-t ext4 -b 1024 -O 64bit", "ext4");
    static const struct {
        uint64_t off;
        uint32_t value;
    } patch[] = {{1024 + 0x150, 0x100}, {1024 + 0x20, 256}}; /* s_blocks_count_hi, s_blocks_per_group */
    for (size_t i = 0; i < 2; i++) {
        uint8_t b[4] = {(uint8_t)patch[i].value, (uint8_t)(patch[i].value >> 8), (uint8_t)(patch[i].value >> 16),
                        (uint8_t)(patch[i].value >> 24)};
        fsfix_write_at(v.img, patch[i].off, b, 4);
    }
    v.size = 1ull << 51;
    uint8_t *got;
    size_t len;
    struct asr_error err;
    cr_assert_eq(read_path(&v, "/etc/fstab", CAP, &got, &len, &err), ASR_E_CORRUPT, "%s", err.msg);
    cr_assert_eq((int)err.code, ASR_E_CORRUPT);
    cr_assert_not_null(strstr(err.msg, "bytes of group descriptors, more than"), "%s", err.msg);
    free(v.img);
}

/* ---- FAT12/16/32 ---------------------------------------------------------------------------- */

/* What an ESP holds: grub.cfg under /EFI/debian, systemd-boot entries with a long name and a
 * mixed-case one, a name that is only 8.3, nested directories; a file spanning many clusters
 * and one fragmented around another (mtools takes the first free clusters: the hole a deleted
 * file left, then past the next file), checked with mshowfat. */
static struct vol make_fat(const char *mkfs_opts, unsigned kib, unsigned span_kib)
{
    fsfix_need("mkfs.vfat");
    fsfix_need("mcopy");
    char *t = scratch_path("esp"), *img = scratch_path("esp.img");
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/deep; cd %1$s;"
                          "head -c 3000 /dev/urandom > grub.cfg; head -c 300 /dev/urandom > 'Arch Linux.conf';"
                          "head -c 200 /dev/urandom > MixedCase-Entry.Conf; head -c 100 /dev/urandom > README.TXT;"
                          "head -c 1500 /dev/urandom > deep/nested.txt;"
                          "head -c %4$uK /dev/urandom > span.bin; head -c %4$uK /dev/urandom > over.bin;"
                          "head -c 6K /dev/urandom > a.bin; head -c 6K /dev/urandom > b.bin;"
                          "head -c 6K /dev/urandom > c.bin; head -c 20K /dev/urandom > frag.bin;"
                          "mkfs.vfat %3$s -C %2$s %5$u >/dev/null;"
                          MT "mmd -i %2$s ::/EFI ::/EFI/debian ::/loader ::/loader/entries ::/d1 ::/d1/d2 ::/d1/d2/d3;"
                          MT "mcopy -i %2$s grub.cfg ::/EFI/debian/;"
                          MT "mcopy -i %2$s 'Arch Linux.conf' MixedCase-Entry.Conf ::/loader/entries/;"
                          MT "mcopy -i %2$s README.TXT span.bin over.bin a.bin b.bin c.bin ::/;"
                          MT "mcopy -i %2$s deep/nested.txt ::/d1/d2/d3/;"
                          MT "mdel -i %2$s ::/b.bin;"
                          /* FAT32: the FSInfo sector's next-free hint made unknown, or mtools
                           * would carry on after c.bin instead of filling the hole. */
                          "if [ \"$(od -An -tu4 -j82 -N4 %2$s | tr -d ' ')\" = 861159750 ]; then"
                          "  bps=$(od -An -tu2 -j11 -N2 %2$s); fsi=$(od -An -tu2 -j48 -N2 %2$s);"
                          "  printf '\\377\\377\\377\\377' | dd of=%2$s bs=1 seek=$((fsi * bps + 492)) conv=notrunc status=none;"
                          "fi;"
                          MT "mcopy -i %2$s frag.bin ::/;"
                          "fsck.vfat -n %2$s >/dev/null",
                          t, img, mkfs_opts, span_kib, kib),
                 0, "mkfs.vfat %s", mkfs_opts);
    char *chain = fsfix_sh_out(MT "mshowfat -i %s ::/frag.bin", img);
    cr_assert_not_null(chain);
    cr_assert_not_null(strstr(chain, "> <"), "frag.bin is not fragmented: %s", chain);
    free(chain);
    free(t);
    return (struct vol){img, "vfat", file_size(img)};
}

static void check_fat(const char *mkfs_opts, unsigned kib, unsigned span_kib)
{
    struct vol v = make_fat(mkfs_opts, kib, span_kib);
    char *t = scratch_path("esp");
    static const char *const reads[][2] = {
        {"/EFI/debian/grub.cfg", "grub.cfg"},
        {"/efi/DEBIAN/Grub.Cfg", "grub.cfg"},
        {"/loader/entries/Arch Linux.conf", "Arch Linux.conf"},
        {"/LOADER/entries/arch linux.CONF", "Arch Linux.conf"},
        {"/loader/entries/ARCHLI~1.CON", "Arch Linux.conf"},
        {"/loader/entries/MixedCase-Entry.Conf", "MixedCase-Entry.Conf"},
        {"/loader/entries/mixedcase-entry.conf", "MixedCase-Entry.Conf"},
        {"/README.TXT", "README.TXT"},
        {"/readme.txt", "README.TXT"},
        {"/d1/d2/d3/nested.txt", "deep/nested.txt"},
        {"/d1/d2/../d2/./d3/nested.txt", "deep/nested.txt"},
        {"/span.bin", "span.bin"},
        {"/frag.bin", "frag.bin"},
        {"/a.bin", "a.bin"},
        {"/c.bin", "c.bin"},
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "%s/%s", t, reads[i][1]);
        assert_reads(&v, reads[i][0], src);
    }
    assert_refused(&v, "/b.bin", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/EFI/debian/grub.cfg.bak", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/README.TXT/x", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/EFI", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/", CAP, FS_E_NOT_FILE, "a directory");
    char over[32];
    snprintf(over, sizeof over, "%u bytes, over the", span_kib * 1024);
    assert_refused(&v, "/over.bin", span_kib * 1024 - 1, ASR_E_LIMIT, over);

    static const char *const entries[] = {"f Arch Linux.conf", "f MixedCase-Entry.Conf"};
    assert_lists(&v, "/loader/entries", entries, 2);
    static const char *const root[] = {"d EFI", "d loader", "d d1", "f README.TXT", "f span.bin",
                                       "f over.bin", "f a.bin", "f c.bin", "f frag.bin"};
    assert_lists(&v, "/", root, sizeof root / sizeof root[0]);
    static const char *const efi[] = {"d debian"};
    assert_lists(&v, "/efi", efi, 1);
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/README.TXT", &l, &err), FS_E_NOT_DIR);
    free(t);
    free(v.img);
}

Test(fs_file, fat12) { check_fat("-F 12", 2048, 100); }
Test(fs_file, fat16_small_clusters) { check_fat("-F 16 -s 1", 16384, 900); }
Test(fs_file, fat32_small_clusters) { check_fat("-F 32 -s 1 -S 512", 40960, 900); }
Test(fs_file, fat32_4k_sectors) { check_fat("-F 32 -s 1 -S 4096", 300 * 1024, 900); }

/* ---- damaged FAT ----------------------------------------------------------------------------- */

/* Where things are in a FAT16 image, read from its boot sector as the specification says. */
struct fat16 {
    uint64_t fat, root, root_bytes;
};

static struct fat16 fat16_geometry(const char *img)
{
    uint8_t b[512];
    fsfix_read_at(img, 0, b, sizeof b);
    uint64_t bps = get_le16(b + 11), reserved = get_le16(b + 14), fats = b[16], fatsz = get_le16(b + 22);
    return (struct fat16){reserved * bps, (reserved + fats * fatsz) * bps, (uint64_t)get_le16(b + 17) * 32};
}

/* The root directory entry with 8.3 name `name11`: its volume offset. */
static uint64_t root_entry(const char *img, const struct fat16 *g, const char *name11)
{
    uint8_t e[32];
    for (uint64_t at = 0; at < g->root_bytes; at += 32) {
        fsfix_read_at(img, g->root + at, e, sizeof e);
        if (!memcmp(e, name11, 11))
            return g->root + at;
    }
    cr_assert_fail("no %s in the root directory", name11);
    return 0;
}

static void set_fat16(const char *img, const struct fat16 *g, uint32_t cluster, uint16_t value)
{
    uint8_t b[2] = {(uint8_t)value, (uint8_t)(value >> 8)};
    fsfix_write_at(img, g->fat + 2ull * cluster, b, 2);
}

static uint32_t first_cluster(const char *img, const struct fat16 *g, const char *name11)
{
    uint8_t e[32];
    fsfix_read_at(img, root_entry(img, g, name11), e, sizeof e);
    return get_le16(e + 26);
}

/* A file's chain sent back on itself, then cut short: corruption saying which, never a read
 * that runs on or a short file. */
Test(fs_file, fat_file_chain_loops_or_ends)
{
    struct vol v = make_fat("-F 16 -s 1", 16384, 1100);
    struct fat16 g = fat16_geometry(v.img);
    uint32_t c = first_cluster(v.img, &g, "SPAN    BIN");
    set_fat16(v.img, &g, c + 100, (uint16_t)(c + 50));
    assert_refused(&v, "/span.bin", CAP * 2, ASR_E_CORRUPT, "loops");
    set_fat16(v.img, &g, c + 100, 0);
    assert_refused(&v, "/span.bin", CAP * 2, ASR_E_CORRUPT, "ends at cluster");
    set_fat16(v.img, &g, c + 100, 0xFFFF);
    assert_refused(&v, "/span.bin", CAP * 2, ASR_E_CORRUPT, "ends at cluster");
    free(v.img);
}

/* A directory's chain pointing at itself: the lookup through it ends, saying it loops, rather
 * than reading the same cluster up to the size limit and answering "not found". */
Test(fs_file, fat_directory_chain_loops)
{
    struct vol v = make_fat("-F 16 -s 1", 16384, 100);
    struct fat16 g = fat16_geometry(v.img);
    uint32_t c = first_cluster(v.img, &g, "EFI        ");
    set_fat16(v.img, &g, c, (uint16_t)c);
    assert_refused(&v, "/EFI/nothere", CAP, ASR_E_CORRUPT, "loops");
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/EFI", &l, &err), ASR_E_CORRUPT, "%s", err.msg);
    free(v.img);
}

/* Directory entries whose first cluster lies past the last cluster: a file's and a directory's. */
Test(fs_file, fat_entry_pointing_outside)
{
    struct vol v = make_fat("-F 16 -s 1", 16384, 100);
    struct fat16 g = fat16_geometry(v.img);
    const uint8_t outside[2] = {0xF0, 0xFF};
    fsfix_write_at(v.img, root_entry(v.img, &g, "README  TXT") + 26, outside, 2);
    assert_refused(&v, "/README.TXT", CAP, ASR_E_CORRUPT, "points outside the clusters");
    fsfix_write_at(v.img, root_entry(v.img, &g, "EFI        ") + 26, outside, 2);
    assert_refused(&v, "/EFI/debian/grub.cfg", CAP, ASR_E_CORRUPT, "points outside the clusters");
    char *src = scratch_path("esp/c.bin");
    assert_reads(&v, "/c.bin", src);
    free(src);
    free(v.img);
}

/* A long name holding '/' (damage: the name is stored as counted UTF-16) is left out of a
 * listing, so that a caller joining a listed name to its directory cannot be led elsewhere;
 * the other entries are listed as before. */
Test(fs_file, fat_listing_leaves_out_names_with_a_slash)
{
    struct vol v = make_fat("-F 16 -s 1", 16384, 100);
    char *bytes = fsfix_sh_out("grep -obUaP 'A\\x00r\\x00c\\x00h\\x00 \\x00' %s | cut -d: -f1", v.img);
    cr_assert(bytes && bytes[0], "no long-name entry for 'Arch Linux.conf'");
    uint64_t at = strtoull(bytes, NULL, 10) + 8;
    free(bytes);
    const uint8_t slash[2] = {'/', 0};
    fsfix_write_at(v.img, at, slash, 2);
    static const char *const entries[] = {"f MixedCase-Entry.Conf"};
    assert_lists(&v, "/loader/entries", entries, 1);
    free(v.img);
}

/* ---- exFAT ------------------------------------------------------------------------------------ */

/* An ESP-like tree on exFAT, written through exfat-fuse: files that fill whole clusters and end
 * inside one, nested directories, long and mixed-case names, a file written around a hole
 * (exfat-fuse then chains it through the FAT instead of marking it contiguous). */
static struct vol make_exfat(const char *mkfs_opts, unsigned mib)
{
    fsfix_need("mkfs.exfat");
    fsfix_need("mount.exfat-fuse");
    fsfix_need("fusermount");
    fsfix_need("losetup");
    if (geteuid() != 0)
        cr_skip_test("exfat-fuse needs a loop device, and loop devices need root");
    char *t = scratch_path("xtree"), *img = scratch_path("exfat.img"), *mnt = scratch_path("xmnt");
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/EFI/debian '%1$s/loader/entries' %1$s/d1/d2/d3 %3$s; cd %1$s;"
                          "head -c 3000 /dev/urandom > EFI/debian/grub.cfg;"
                          "head -c 300 /dev/urandom > 'loader/entries/Arch Linux.conf';"
                          "head -c 200 /dev/urandom > loader/entries/MixedCase-Entry.Conf;"
                          "head -c 65536 /dev/urandom > whole.bin; head -c 1500 /dev/urandom > d1/d2/d3/nested.txt;"
                          "head -c 700K /dev/urandom > span.bin; head -c 40K /dev/urandom > a.bin;"
                          "head -c 40K /dev/urandom > b.bin; head -c 200K /dev/urandom > frag.bin;"
                          "truncate -s %4$uM %2$s; mkfs.exfat %5$s %2$s >/dev/null",
                          t, img, mnt, mib, mkfs_opts),
                 0);
    char *dev = fsfix_sh_out("losetup -f --show %s 2>/dev/null", img);
    if (!dev)
        cr_skip_test("losetup cannot attach a loop device here");
    snprintf(exfat_loop, sizeof exfat_loop, "%.*s", (int)strcspn(dev, "\n"), dev);
    free(dev);
    if (fsfix_sh("mount.exfat-fuse %s %s >/dev/null 2>&1", exfat_loop, mnt) != 0) {
        exfat_unmount();
        cr_skip_test("mount.exfat-fuse cannot mount here (FUSE unavailable?)");
    }
    snprintf(exfat_mnt, sizeof exfat_mnt, "%s", mnt);
    int rc = fsfix_sh("set -e; cd %1$s; cp -r EFI loader d1 whole.bin span.bin a.bin b.bin %2$s/; sync;"
                      "rm %2$s/a.bin; sync; cp frag.bin %2$s/; sync", t, mnt);
    exfat_unmount();
    cr_assert_eq(rc, 0);
    cr_assert_eq(fsfix_sh("fsck.exfat -n %s >/dev/null 2>&1", img), 0);
    free(t);
    free(mnt);
    return (struct vol){img, "exfat", file_size(img)};
}

static void check_exfat(const char *mkfs_opts, unsigned mib)
{
    struct vol v = make_exfat(mkfs_opts, mib);
    char *t = scratch_path("xtree");
    static const char *const reads[][2] = {
        {"/EFI/debian/grub.cfg", "EFI/debian/grub.cfg"},
        {"/efi/DEBIAN/GRUB.cfg", "EFI/debian/grub.cfg"},
        {"/loader/entries/Arch Linux.conf", "loader/entries/Arch Linux.conf"},
        {"/loader/entries/mixedcase-entry.conf", "loader/entries/MixedCase-Entry.Conf"},
        {"/d1/d2/d3/nested.txt", "d1/d2/d3/nested.txt"},
        {"/d1/d2/../../d1/d2/d3/nested.txt", "d1/d2/d3/nested.txt"},
        {"/whole.bin", "whole.bin"},
        {"/span.bin", "span.bin"},
        {"/b.bin", "b.bin"},
        {"/frag.bin", "frag.bin"},
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "%s/%s", t, reads[i][1]);
        assert_reads(&v, reads[i][0], src);
    }
    assert_refused(&v, "/a.bin", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/whole.bin/x", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/loader", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/span.bin", 700 * 1024 - 1, ASR_E_LIMIT, "716800 bytes, over the");
    static const char *const entries[] = {"f Arch Linux.conf", "f MixedCase-Entry.Conf"};
    assert_lists(&v, "/loader/entries", entries, 2);
    static const char *const root[] = {"d EFI", "d loader", "d d1", "f whole.bin", "f span.bin", "f b.bin",
                                       "f frag.bin"};
    assert_lists(&v, "/", root, sizeof root / sizeof root[0]);
    struct listing l = {0};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/span.bin", &l, &err), FS_E_NOT_DIR);
    free(t);
    free(v.img);
}

Test(fs_file, exfat_4k_clusters) { check_exfat("-c 4096", 32); }
Test(fs_file, exfat_512_byte_clusters) { check_exfat("-c 512", 16); }

/* A stream extension sending a contiguous file past the heap; then the same file, its
 * NoFatChain flag cleared, chained through a FAT entry pointing back at itself: each is
 * corruption naming the file, never a read that runs on. */
Test(fs_file, exfat_damaged_extent_and_chain)
{
    struct vol v = make_exfat("-c 4096", 32);
    uint8_t b[512];
    fsfix_read_at(v.img, 0, b, sizeof b);
    uint64_t sector = 1ull << b[108], cluster = sector << b[109];
    uint64_t fat = get_le32(b + 80) * sector, heap = get_le32(b + 88) * sector;
    uint32_t root = get_le32(b + 96);
    /* whole.bin's name entry in the root: its stream extension is the entry before. */
    uint8_t *dir = malloc(cluster);
    fsfix_read_at(v.img, heap + (uint64_t)(root - 2) * cluster, dir, cluster);
    uint64_t at = UINT64_MAX;
    static const uint8_t name[] = {'w', 0, 'h', 0, 'o', 0, 'l', 0, 'e', 0, '.', 0};
    for (uint64_t i = 32; i < cluster && at == UINT64_MAX; i += 32)
        if (dir[i] == 0xC1 && !memcmp(dir + i + 2, name, sizeof name))
            at = i - 32;
    cr_assert_neq(at, UINT64_MAX, "no name entry for whole.bin in the root's first cluster");
    uint8_t stream[32];
    memcpy(stream, dir + at, sizeof stream);
    free(dir);
    cr_assert_eq(stream[0], 0xC0);
    cr_assert(stream[1] & 2, "whole.bin is not marked contiguous (NoFatChain)");
    uint64_t entry = heap + (uint64_t)(root - 2) * cluster + at;
    uint32_t first = get_le32(stream + 20);

    const uint8_t outside[4] = {0xF0, 0xFF, 0xFF, 0x0F};
    fsfix_write_at(v.img, entry + 20, outside, 4);
    assert_refused(&v, "/whole.bin", CAP, ASR_E_CORRUPT, "leave the heap");

    fsfix_write_at(v.img, entry + 20, stream + 20, 4);
    const uint8_t chained = stream[1] & ~2u;
    fsfix_write_at(v.img, entry + 1, &chained, 1);
    uint8_t self[4] = {(uint8_t)first, (uint8_t)(first >> 8), (uint8_t)(first >> 16), (uint8_t)(first >> 24)};
    fsfix_write_at(v.img, fat + 4ull * first, self, 4);
    assert_refused(&v, "/whole.bin", CAP, ASR_E_CORRUPT, "loops");
    free(v.img);
}

/* ---- XFS -------------------------------------------------------------------------------------- */

static char xfs_mnt[512];

static void xfs_unmount(void)
{
    if (xfs_mnt[0])
        fsfix_sh("umount %s", xfs_mnt);
    xfs_mnt[0] = '\0';
}

/* Directories of every format XFS has, by their entry counts on 4 KiB blocks: short-form (in the
 * inode), block (one directory block), leaf (data blocks and one leaf block), node (a hash
 * B+tree of leaves) and, past the extents an inode holds, a B+tree-mapped one. Each holds empty
 * files and one last file with content, looked up by name. */
static const struct {
    const char *name;
    unsigned entries;
} xfs_dirs[] = {{"d3", 3}, {"d50", 50}, {"d400", 400}, {"d700", 700}, {"d1500", 1500}, {"d20000", 20000}};

/* v5 is filled through the kernel (a loop mount), as a running system writes it, with what only
 * a kernel makes: a file whose data fork is a B+tree (more extents than the inode holds), a
 * file with a hole, one with unwritten (preallocated) extents, a symbolic link whose target is
 * in a block (longer than the inode holds). Their contents are saved under "xsaved". v4, which
 * this kernel no longer mounts, is written by mkfs.xfs -p from a protofile of the same tree. */
static struct vol make_xfs(const char *mkfs_opts, bool v4)
{
    fsfix_need("mkfs.xfs");
    fsfix_need("xfs_db");
    if (!v4 && geteuid() != 0)
        cr_skip_test("filling XFS through the kernel needs root (a loop mount)");
    char *t = scratch_path("tree"), *img = scratch_path("xfs.img"), *mnt = scratch_path("xfsmnt");
    char *saved = scratch_path("xsaved"), *proto = scratch_path("xfs.proto");
    make_root_tree(t);
    for (size_t i = 0; i < sizeof xfs_dirs / sizeof xfs_dirs[0]; i++)
        cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/dirs/%2$s; cd %1$s/dirs/%2$s;"
                              "seq -f 'entry-with-a-longer-name-%%.0f' 1 %3$u | xargs touch;"
                              "echo %2$s > entry-with-a-longer-name-%3$u",
                              t, xfs_dirs[i].name, xfs_dirs[i].entries),
                     0);
    if (v4) {
        cr_assert_eq(fsfix_sh("set -e; gen() { for e in \"$1\"/*; do n=${e##*/};"
                              " if [ -L \"$e\" ]; then echo \"$n l--777 0 0 $(readlink \"$e\")\";"
                              " elif [ -p \"$e\" ]; then echo \"$n p--644 0 0\";"
                              " elif [ -d \"$e\" ]; then echo \"$n d--755 0 0\"; gen \"$e\"; echo '$';"
                              " else echo \"$n ---644 0 0 $e\"; fi; done; };"
                              "{ echo /dev/null; echo 0 0; echo d--755 0 0; gen %1$s; echo '$'; } > %2$s;"
                              "truncate -s 300M %3$s; mkfs.xfs -q -f %4$s -p %2$s %3$s 2>/dev/null",
                              t, proto, img, mkfs_opts),
                     0, "mkfs.xfs %s -p", mkfs_opts);
    } else {
        cr_assert_eq(fsfix_sh("set -e; truncate -s 300M %1$s; mkfs.xfs -q -f %2$s %1$s; mkdir -p %3$s %4$s;"
                              "mount -o loop %1$s %3$s",
                              img, mkfs_opts, mnt, saved),
                     0, "mkfs.xfs %s and mount", mkfs_opts);
        snprintf(xfs_mnt, sizeof xfs_mnt, "%s", mnt);
        int rc = fsfix_sh(
            "set -e; cp -a %1$s/. %2$s/; cd %2$s;"
            "for i in $(seq 0 2 200); do head -c 4096 /dev/urandom | dd of=fragmented.bin bs=4096 seek=$i"
            " conv=notrunc status=none; done;"
            "truncate -s 900K holes.bin; head -c 5000 /dev/urandom | dd of=holes.bin bs=1 seek=400000 conv=notrunc"
            " status=none;"
            "fallocate -l 65536 prealloc.bin; head -c 100 /dev/urandom | dd of=prealloc.bin conv=notrunc status=none;"
            "n=$(printf 'a-directory-name-that-is-long-%%.0s' 1 2 3 4 5 6); mkdir -p usr/lib/$n/$n/$n;"
            "cp usr/lib/os-release usr/lib/$n/$n/$n/; ln -s lib/$n/$n/$n/os-release usr/remote-release;"
            "cp fragmented.bin holes.bin prealloc.bin %3$s/",
            t, mnt, saved);
        xfs_unmount();
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(fsfix_sh("xfs_repair -n %s >/dev/null 2>&1", img), 0);
    free(t);
    free(mnt);
    free(saved);
    free(proto);
    return (struct vol){img, "xfs", file_size(img)};
}

/* What xfs_db says of the inode at path: "print FIELD" (after an optional block of the
 * directory, dblock BLOCK, as XFS's directory type), its value after " = ". */
static char *xfs_db_field(const char *img, const char *path, const char *dblock, const char *field)
{
    bool v4 = dblock && fsfix_sh("xfs_db -r -c 'version' %s 2>/dev/null | grep -q CRC", img) != 0;
    char *out = fsfix_sh_out("xfs_db -r -c 'path %s' %s%s%s%s -c 'print %s' %s 2>/dev/null | sed 's/.* = //'", path,
                             dblock ? "-c 'dblock " : "", dblock ? dblock : "", dblock ? "' -c 'type " : "",
                             dblock ? (v4 ? "dir2'" : "dir3'") : "", field, img);
    cr_assert_not_null(out, "xfs_db %s", path);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

struct count {
    size_t n;
    bool last_seen;
    const char *last;
};

static int count_entry(void *ctx, const char *name, enum fs_kind kind)
{
    struct count *c = ctx;
    cr_assert_eq(kind, FS_KIND_FILE, "%s", name);
    c->n++;
    c->last_seen |= !strcmp(name, c->last);
    return 0;
}

static void check_xfs(const char *mkfs_opts, bool v4)
{
    struct vol v = make_xfs(mkfs_opts, v4);
    char *t, *release;
    assert_tree_reads(&v, &t, &release);

    /* Every directory format: which one each directory has is what xfs_db says (how many
     * entries make which format depends on the block sizes and on how the blocks were
     * allocated), and together they must have all five. Every entry is listed, and the last one
     * is found by name. */
    unsigned formats = 0;
    char *bs = xfs_db_field(v.img, "/", NULL, "core.format"); /* any inode: xfs_db needs one */
    free(bs);
    uint64_t leaf_block = (32ull << 30) / fsfix_sh_number("xfs_db -r -c 'sb 0' -c 'print blocksize' %s | sed 's/.* = //'",
                                                          v.img);
    char leaf[32];
    snprintf(leaf, sizeof leaf, "%llu", (unsigned long long)leaf_block);
    for (size_t i = 0; i < sizeof xfs_dirs / sizeof xfs_dirs[0]; i++) {
        char path[300], last[64];
        snprintf(path, sizeof path, "/dirs/%s", xfs_dirs[i].name);
        char *format = xfs_db_field(v.img, path, NULL, "core.format");
        unsigned kind = 0; /* 1 short-form, 2 block, 4 leaf, 8 node, 16 B+tree */
        if (!strcmp(format, "1 (local)")) {
            kind = 1;
        } else if (!strcmp(format, "3 (btree)")) {
            kind = 16;
        } else if (!strcmp(format, "2 (extents)")) {
            /* v4's headers have no CRC part: the magic is one level up. */
            char *magic = xfs_db_field(v.img, path, leaf, v4 ? "lhdr.info.magic" : "lhdr.info.hdr.magic");
            char *nmagic = xfs_db_field(v.img, path, leaf, v4 ? "nhdr.info.magic" : "nhdr.info.hdr.magic");
            kind = strstr(magic, "unmapped") ? 2 : !strcmp(magic, v4 ? "0xd2f1" : "0x3df1") ? 4
                   : !strcmp(nmagic, v4 ? "0xfebe" : "0x3ebe")                            ? 8
                                                                                           : 0;
            cr_log_info("%s: leaf magic %s, node magic %s", path, magic, nmagic);
            free(magic);
            free(nmagic);
        }
        cr_log_info("%s: format %s, kind %u", path, format, kind);
        cr_assert_neq(kind, 0, "%s: a directory format xfs_db does not show as expected", path);
        formats |= kind;
        free(format);
        snprintf(last, sizeof last, "entry-with-a-longer-name-%u", xfs_dirs[i].entries);
        struct count c = {0, false, last};
        struct asr_window w = fsfix_window(v.img, 0, v.size);
        struct asr_error err = {0};
        cr_assert_eq(fs_list_dir(&w, "xfs", path, count_entry, &c, &err), ASR_OK, "%s: %s", path, err.msg);
        close(w.fd);
        cr_assert_eq(c.n, xfs_dirs[i].entries, "%s lists %zu entries", path, c.n);
        cr_assert(c.last_seen, "%s: %s not listed", path, last);
        char src[600];
        snprintf(src, sizeof src, "%s%s/%s", t, path, last);
        snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", last);
        assert_reads(&v, path, src);
    }
    cr_assert_eq(formats, 31u, "directory formats made: %#x of 0x1f", formats);
    if (!v4) {
        char *saved = scratch_path("xsaved");
        char *format = xfs_db_field(v.img, "/fragmented.bin", NULL, "core.format");
        cr_assert_str_eq(format, "3 (btree)", "fragmented.bin: format %s", format);
        free(format);
        static const char *const made[] = {"fragmented.bin", "holes.bin", "prealloc.bin"};
        for (size_t i = 0; i < 3; i++) {
            char path[64], src[600];
            snprintf(path, sizeof path, "/%s", made[i]);
            snprintf(src, sizeof src, "%s/%s", saved, made[i]);
            assert_reads(&v, path, src);
        }
        char *remote = xfs_db_field(v.img, "/usr/remote-release", NULL, "core.format");
        cr_assert_str_eq(remote, "2 (extents)", "the long symbolic link is in the inode: %s", remote);
        free(remote);
        assert_reads(&v, "/usr/remote-release", release);
        free(saved);
    }

    assert_refused(&v, "/etc/nothere", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/nothere/fstab", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/etc/fstab/x", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/etc/dangling", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/dirs/d20000/entry-with-a-longer-name-20001", CAP, FS_E_NOT_FOUND, "not found");
    assert_refused(&v, "/over-cap.bin", CAP, ASR_E_LIMIT, "1048577 bytes, over the 1048576-byte limit");
    assert_refused(&v, "/etc/fstab", 10, ASR_E_LIMIT, "over the 10-byte limit");
    assert_refused(&v, "/etc", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/", CAP, FS_E_NOT_FILE, "a directory");
    assert_refused(&v, "/etc/fifo", CAP, FS_E_NOT_FILE, "a special file");
    assert_refused(&v, "/etc/loop1", CAP, ASR_E_CORRUPT, "symbolic links nest");

    static const char *const grub[] = {"f grub.cfg"};
    assert_lists(&v, "/boot/grub", grub, 1);
    static const char *const etc[] = {"f fstab",       "f crypttab",    "f one-byte", "d mdadm",  "l os-release",
                                      "l abs-release", "l long-release", "l lib",      "l dangling", "l loop1",
                                      "l loop2",       "o fifo"};
    assert_lists(&v, "/etc", etc, sizeof etc / sizeof etc[0] - 0);
    struct listing l = {.stop_after = 2};
    struct asr_error err;
    cr_assert_eq(list_path(&v, "/etc", &l, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(l.n, 2, "the listing went on after its callback said stop");
    cr_assert_eq(list_path(&v, "/etc/fstab", &l, &err), FS_E_NOT_DIR);
    cr_assert_eq(list_path(&v, "/nothere", &l, &err), FS_E_NOT_FOUND);
    free(release);
    free(t);
    free(v.img);
}

Test(fs_file, xfs_v5) { check_xfs("", false); }
Test(fs_file, xfs_v5_1k_blocks_8k_dir_blocks) { check_xfs("-b size=1024 -n size=8192", false); }
Test(fs_file, xfs_v4) { check_xfs("-m crc=0", true); }
Test(fs_file, xfs_v4_no_ftype) { check_xfs("-m crc=0 -n ftype=0", true); }

/* A small XFS written by mkfs.xfs -p (no kernel needed): /etc/fstab, and a directory of 60
 * entries (one directory block) holding another file. */
static struct vol make_small_xfs(const char *opts)
{
    fsfix_need("mkfs.xfs");
    fsfix_need("xfs_db");
    char *t = scratch_path("stree"), *proto = scratch_path("s.proto"), *img = scratch_path("small-xfs.img");
    cr_assert_eq(fsfix_sh("set -e; mkdir -p %1$s/etc %1$s/many; echo 'UUID=1 / xfs defaults 0 0' > %1$s/etc/fstab;"
                          "seq 1 60 | while read i; do echo $i > %1$s/many/entry-$i; done;"
                          "{ echo /dev/null; echo 0 0; echo d--755 0 0; echo 'etc d--755 0 0';"
                          " echo 'fstab ---644 0 0 %1$s/etc/fstab'; echo '$'; echo 'many d--755 0 0';"
                          " for i in $(seq 1 60); do echo \"entry-$i ---644 0 0 %1$s/many/entry-$i\"; done; echo '$';"
                          " echo '$'; } > %2$s; truncate -s 300M %3$s; mkfs.xfs -q -f %4$s -p %2$s %3$s 2>/dev/null",
                          t, proto, img, opts),
                 0, "mkfs.xfs %s -p", opts);
    free(t);
    free(proto);
    return (struct vol){img, "xfs", file_size(img)};
}

/* The byte offset xfs_db's stack shows after the commands cmds (e.g. "-c 'path /etc/fstab'"). */
static uint64_t xfs_db_offset(const char *img, const char *cmds)
{
    return fsfix_sh_number("xfs_db -r %s -c stack %s | sed -n 's/.*byte offset \\([0-9]*\\),.*/\\1/p'", cmds, img);
}

/* Damage on the way to a file, each refused as corruption that names what and where: an inode
 * and a directory block failing their CRCs (v5), an extent sent past its AG (v4, where no CRC
 * would catch it first), an inode that is not one. */
Test(fs_file, xfs_damaged_inode_directory_and_extent)
{
    struct vol v = make_small_xfs("");
    char *src = scratch_path("stree/many/entry-42");
    assert_reads(&v, "/many/entry-42", src);
    free(src);
    uint64_t dirblock = xfs_db_offset(v.img, "-c 'path /many' -c 'dblock 0'");
    patch_byte(v.img, dirblock + 200, 0x5a);
    assert_refused(&v, "/many/entry-42", CAP, ASR_E_CORRUPT, "fails its CRC");
    uint64_t inode = xfs_db_offset(v.img, "-c 'path /etc/fstab'");
    patch_byte(v.img, inode + 56 + 7, 0x7f); /* di_size's low byte */
    assert_refused(&v, "/etc/fstab", CAP, ASR_E_CORRUPT, "CRC mismatch");
    free(v.img);

    v = make_small_xfs("-m crc=0");
    inode = xfs_db_offset(v.img, "-c 'path /etc/fstab'");
    uint8_t ext[16];
    fsfix_read_at(v.img, inode + 100, ext, sizeof ext); /* the one extent, right after a v2 core */
    ext[8] = 0x7f; /* startblock's high bits: an AG far past the last */
    fsfix_write_at(v.img, inode + 100, ext, sizeof ext);
    assert_refused(&v, "/etc/fstab", CAP, ASR_E_CORRUPT, "leaves its AG");
    patch_byte(v.img, inode, 'X');
    struct asr_window w = fsfix_window(v.img, 0, v.size);
    struct asr_error err = {0};
    uint8_t *got = NULL;
    size_t len;
    cr_assert_eq(fs_read_file(&w, "xfs", "/etc/fstab", CAP, &got, &len, &err), ASR_E_CORRUPT);
    close(w.fd);
    cr_assert(strstr(err.msg, "not an inode of this filesystem"), "%s", err.msg);
    free(v.img);
}

/* What this reader does not read is still a volume it cannot look into (ASR_E_CORRUPT), never
 * "no reader for the type" (ASR_E_UNSUPPORTED, which bootscan takes as nothing to find): a file
 * whose data is on the realtime device, a superblock version past 5. v4: no CRC to redo. */
Test(fs_file, xfs_what_is_not_read_is_corrupt_not_unsupported)
{
    struct vol v = make_small_xfs("-m crc=0");
    uint64_t inode = xfs_db_offset(v.img, "-c 'path /etc/fstab'");
    uint8_t flags[2];
    fsfix_read_at(v.img, inode + 90, flags, 2);
    patch_byte(v.img, inode + 91, flags[1] | 1); /* XFS_DIFLAG_REALTIME */
    assert_refused(&v, "/etc/fstab", CAP, ASR_E_CORRUPT, "realtime device");
    patch_byte(v.img, inode + 91, flags[1]);
    uint8_t version[2];
    fsfix_read_at(v.img, 100, version, 2);
    patch_byte(v.img, 101, (uint8_t)((version[1] & 0xF0) | 6));
    struct asr_window w = fsfix_window(v.img, 0, v.size);
    struct fs_vol *fv = NULL;
    struct asr_error err = {0};
    cr_assert_eq(fs_vol_open(&w, "xfs", &fv, &err), ASR_E_CORRUPT, "%s", err.msg);
    close(w.fd);
    cr_assert_eq(err.code, ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "superblock version 6"), "%s", err.msg);
    free(v.img);
}

/* ---- what the interface does not read ----------------------------------------------------- */

Test(fs_file, unsupported_types_and_garbage)
{
    char *img = scratch_path("zero.img");
    cr_assert_eq(fsfix_sh("truncate -s 4M %s", img), 0);
    struct vol v = {img, "exfat", 4u << 20};
    static const char *const types[] = {"ntfs", "swap", "swsuspend", ""};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        v.type = types[i];
        uint8_t *got;
        size_t len;
        struct asr_error err;
        cr_assert_eq(read_path(&v, "/etc/fstab", CAP, &got, &len, &err), ASR_E_UNSUPPORTED, "%s: %s", types[i], err.msg);
        cr_assert(err.msg[0] && !strchr(err.msg, '\n'));
    }
    /* Types it reads, on zeros: the boot sector or superblock fails its checks. */
    static const char *const read_types[][2] = {
        {"vfat", "fat: boot sector signature"}, {"ext4", "ext: no superblock"}, {"exfat", "exfat: "},
        {"btrfs", "btrfs: no superblock magic"}, {"xfs", "xfs: superblock magic"}};
    for (size_t i = 0; i < sizeof read_types / sizeof read_types[0]; i++) {
        v.type = read_types[i][0];
        uint8_t *got;
        size_t len;
        struct asr_error err;
        cr_assert_eq(read_path(&v, "/etc/fstab", CAP, &got, &len, &err), ASR_E_CORRUPT, "%s: %s", v.type, err.msg);
        cr_assert(!strncmp(err.msg, read_types[i][1], strlen(read_types[i][1])) && !strchr(err.msg, '\n'), "%s",
                  err.msg);
    }
    free(img);
}
