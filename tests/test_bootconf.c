/* What a Linux root's own files say it needs to boot (engine/analyze/bootconf.c): real-world
 * fstabs, crypttabs, mdadm.conf and boot loader configurations, device specs and their match
 * against volume identities, and hostile input answered with an error. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootconf.h"

static struct bootconf *bc_new(void)
{
    struct bootconf *bc = calloc(1, sizeof *bc);
    cr_assert_not_null(bc);
    return bc;
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        struct asr_error e_ = {0};                                                                 \
        int rc_ = (call);                                                                          \
        cr_assert_eq(rc_, 0, "%s: %s", #call, e_.msg);                                             \
    } while (0)

static int parse(int (*fn)(struct bootconf *, const char *, size_t, struct asr_error *),
                 struct bootconf *bc, const char *text, struct asr_error *err)
{
    return fn(bc, text, strlen(text), err);
}

static const struct bootmount *mount_at(const struct bootconf *bc, const char *target)
{
    for (size_t i = 0; i < bc->n_mounts; i++)
        if (strcmp(bc->mounts[i].target, target) == 0)
            return &bc->mounts[i];
    cr_assert_fail("no fstab entry for %s", target);
    return NULL;
}

static void spec_is(const struct bootspec *s, enum bootspec_kind kind, const char *value,
                    const char *lv)
{
    cr_assert_eq(s->kind, kind, "kind %s, want %s", bootspec_kind_name(s->kind),
                 bootspec_kind_name(kind));
    cr_assert_str_eq(s->value, value);
    if (lv)
        cr_assert_str_eq(s->lv, lv);
}

/* ---- fstab --------------------------------------------------------------------------------- */

static const char debian_lvm[] =
    "# /etc/fstab: static file system information.\n"
    "#\n"
    "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
    "/dev/mapper/vg-root /               ext4    errors=remount-ro 0       1\n"
    "# /boot was on /dev/sda2 during installation\n"
    "UUID=0C6B6E3A-1F5D-4B8E-9A3C-2D1E0F9A8B7C /boot           ext2    defaults        0       2\n"
    "# /boot/efi was on /dev/sda1 during installation\n"
    "UUID=A1B2-C3D4  /boot/efi       vfat    umask=0077      0       1\n"
    "/dev/mapper/vg-swap_1 none            swap    sw              0       0\n"
    "/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n"
    "\n";

Test(fstab, debian_guided_lvm)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_fstab, bc, debian_lvm, &e_));
    cr_assert_eq(bc->n_mounts, 5);
    const struct bootmount *root = mount_at(bc, "/");
    cr_assert_eq(root->role, BOOTROLE_CRITICAL);
    spec_is(&root->spec, BOOTSPEC_LV, "vg", "root");
    cr_assert_str_eq(root->fstype, "ext4");
    cr_assert_str_eq(root->options, "errors=remount-ro");
    const struct bootmount *boot = mount_at(bc, "/boot");
    cr_assert_eq(boot->role, BOOTROLE_CRITICAL);
    spec_is(&boot->spec, BOOTSPEC_FS_UUID, "0c6b6e3a-1f5d-4b8e-9a3c-2d1e0f9a8b7c", NULL);
    const struct bootmount *esp = mount_at(bc, "/boot/efi");
    cr_assert_eq(esp->role, BOOTROLE_CRITICAL);
    cr_assert_str_eq(esp->options, "umask=0077");
    spec_is(&esp->spec, BOOTSPEC_FS_UUID, "a1b2-c3d4", NULL);
    const struct bootmount *swap = mount_at(bc, "none");
    cr_assert_eq(swap->role, BOOTROLE_SWAP);
    spec_is(&swap->spec, BOOTSPEC_LV, "vg", "swap_1");
    cr_assert(strstr(swap->why, "header only"));
    const struct bootmount *cd = mount_at(bc, "/media/cdrom0");
    cr_assert_eq(cd->role, BOOTROLE_NOAUTO);
    cr_assert(strstr(cd->why, "noauto"));
    free(bc);
}

Test(fstab, ubuntu_swap_file_is_inside_root)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_fstab, bc,
             "# / was on /dev/nvme0n1p2 during curtin installation\n"
             "/dev/disk/by-uuid/5f0c3d2e-8a41-4b6f-9e0a-1c2d3e4f5a6b / ext4 defaults 0 1\n"
             "/dev/disk/by-uuid/7E3A-91BC /boot/efi vfat defaults 0 1\n"
             "/swap.img\tnone\tswap\tsw\t0\t0\n",
             &e_));
    cr_assert_eq(bc->n_mounts, 3);
    spec_is(&mount_at(bc, "/")->spec, BOOTSPEC_FS_UUID, "5f0c3d2e-8a41-4b6f-9e0a-1c2d3e4f5a6b",
            NULL);
    spec_is(&mount_at(bc, "/boot/efi")->spec, BOOTSPEC_FS_UUID, "7e3a-91bc", NULL);
    const struct bootmount *sw = mount_at(bc, "none");
    cr_assert_eq(sw->role, BOOTROLE_SWAPFILE);
    spec_is(&sw->spec, BOOTSPEC_FILE, "/swap.img", NULL);
    cr_assert(strstr(sw->why, "swap file inside a filesystem, not a device"), "%s", sw->why);
    free(bc);
}

Test(fstab, fedora_btrfs_subvolumes)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_fstab, bc,
             "UUID=3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b /                       btrfs   "
             "subvol=root,compress=zstd:1 0 0\n"
             "UUID=9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d /boot                   ext4    defaults"
             "        1 2\n"
             "UUID=3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b /home                   btrfs   "
             "subvol=home,compress=zstd:1 0 0\n",
             &e_));
    const struct bootmount *root = mount_at(bc, "/"), *home = mount_at(bc, "/home");
    cr_assert_eq(root->role, BOOTROLE_CRITICAL);
    cr_assert_str_eq(root->options, "subvol=root,compress=zstd:1");
    cr_assert_eq(home->role, BOOTROLE_DATA);
    cr_assert(strstr(home->why, "data volume: not needed to boot"));
    /* Both subvolumes live on one filesystem: the same key. */
    cr_assert_str_eq(root->spec.value, home->spec.value);
    free(bc);
}

Test(fstab, rhel_xfs_pseudo_bind_nofail_escapes)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_fstab, bc,
             "\n   \n# Created by anaconda\n"
             "/dev/mapper/rhel-root   /                       xfs     defaults        0 0\n"
             "UUID=6d1c0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f /boot xfs     defaults        0 0\n"
             "/dev/mapper/rhel-swap   none                    swap    defaults        0 0\n"
             "/dev/mapper/rhel-var_log /var/log/ xfs defaults 0 0\n"
             "proc /proc proc defaults 0 0\n"
             "tmpfs\t/tmp\ttmpfs\tdefaults,size=2G\t0\t0\n"
             "/srv/export /export none bind 0 0\n"
             "/mnt/data/www /var/www auto rbind 0 0\n"
             "LABEL=My\\040Data /mnt/my\\040data ext4 defaults,nofail 0 2\n"
             "server:/vol /net nfs defaults 0 0\n",
             &e_));
    spec_is(&mount_at(bc, "/")->spec, BOOTSPEC_LV, "rhel", "root");
    cr_assert_eq(mount_at(bc, "none")->role, BOOTROLE_SWAP);
    /* Below /var is system state; the trailing slash is the same mount point. */
    cr_assert_eq(mount_at(bc, "/var/log")->role, BOOTROLE_CRITICAL);
    spec_is(&mount_at(bc, "/var/log")->spec, BOOTSPEC_LV, "rhel", "var_log");
    for (size_t i = 0; i < 4; i++) {
        const char *t = (const char *[]){"/proc", "/tmp", "/export", "/var/www"}[i];
        cr_assert_eq(mount_at(bc, t)->role, BOOTROLE_IGNORED, "%s", t);
        cr_assert_eq(mount_at(bc, t)->spec.kind, BOOTSPEC_NONE, "%s", t);
    }
    cr_assert_eq(mount_at(bc, "/net")->role, BOOTROLE_IGNORED);
    const struct bootmount *d = mount_at(bc, "/mnt/my data");
    cr_assert_eq(d->role, BOOTROLE_DATA);
    cr_assert(d->nofail);
    cr_assert(strstr(d->why, "nofail"));
    spec_is(&d->spec, BOOTSPEC_FS_LABEL, "My Data", NULL);
    free(bc);
}

Test(fstab, critical_points_exactly)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_fstab, bc,
             "LABEL=a /efi vfat defaults 0 0\nLABEL=b /usr ext4 defaults 0 0\n"
             "LABEL=c /var ext4 defaults 0 0\nLABEL=d /usrdata ext4 defaults 0 0\n"
             "LABEL=e /srv ext4 defaults 0 0\nLABEL=f /boot/efi2 vfat defaults 0 0\n"
             "LABEL=g /boot ext4 noauto 0 0\n",
             &e_));
    cr_assert_eq(mount_at(bc, "/efi")->role, BOOTROLE_CRITICAL);
    cr_assert_eq(mount_at(bc, "/usr")->role, BOOTROLE_CRITICAL);
    cr_assert_eq(mount_at(bc, "/var")->role, BOOTROLE_CRITICAL);
    cr_assert_eq(mount_at(bc, "/usrdata")->role, BOOTROLE_DATA);
    cr_assert_eq(mount_at(bc, "/srv")->role, BOOTROLE_DATA);
    cr_assert_eq(mount_at(bc, "/boot/efi2")->role, BOOTROLE_DATA);
    cr_assert_eq(mount_at(bc, "/boot")->role, BOOTROLE_NOAUTO);
    free(bc);
}

Test(fstab, bad_lines_and_specs_refused)
{
    static const char *const bad[] = {
        "UUID=xyz-not-hex / ext4 defaults 0 0\n",
        "UUID= / ext4 defaults 0 0\n",
        "onlyonefield\n",
        "LABEL=a /a ext4 d 0 0\n# comment\n\ngarbage\n",
        "LABEL=a /a ext4 d 0 0\nLABEL=b\n",
    };
    static const char *const where[] = {"entry 1", "entry 1", "line 1", "line 4", "line 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct bootconf *bc = bc_new();
        struct asr_error err = {0};
        cr_assert_neq(parse(bootconf_fstab, bc, bad[i], &err), 0, "%s", bad[i]);
        cr_assert(strstr(err.msg, "fstab: "), "%s", err.msg);
        cr_assert(strstr(err.msg, where[i]), "%s: %s", bad[i], err.msg);
        free(bc);
    }
}

/* ---- crypttab, mdadm.conf ------------------------------------------------------------------ */

Test(crypttab, names_sources_keys_options)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_crypttab, bc,
             "# <target name> <source device> <key file> <options>\n"
             "luks-1D2C3B4A-5F6E-4789-9ABC-DEF012345678 UUID=1d2c3b4a-5f6e-4789-9abc-def012345678"
             " none discard\n"
             "sda5_crypt\t/dev/disk/by-partuuid/0A1B2C3D-0000-4000-8000-000000000005\tnone\t"
             "luks,discard\n"
             "swap /dev/sdb2 /dev/urandom swap,cipher=aes-xts-plain64\n"
             "data PARTLABEL=data\n",
             &e_));
    cr_assert_eq(bc->n_crypts, 4);
    cr_assert_str_eq(bc->crypts[0].name, "luks-1D2C3B4A-5F6E-4789-9ABC-DEF012345678");
    spec_is(&bc->crypts[0].spec, BOOTSPEC_FS_UUID, "1d2c3b4a-5f6e-4789-9abc-def012345678", NULL);
    cr_assert_str_eq(bc->crypts[0].key, "");
    cr_assert_str_eq(bc->crypts[0].options, "discard");
    spec_is(&bc->crypts[1].spec, BOOTSPEC_PART_UUID, "0a1b2c3d-0000-4000-8000-000000000005", NULL);
    cr_assert_str_eq(bc->crypts[1].options, "luks,discard");
    spec_is(&bc->crypts[2].spec, BOOTSPEC_KERNEL, "sdb2", NULL);
    cr_assert_str_eq(bc->crypts[2].key, "/dev/urandom");
    spec_is(&bc->crypts[3].spec, BOOTSPEC_PART_LABEL, "data", NULL);
    struct asr_error err = {0};
    cr_assert_neq(parse(bootconf_crypttab, bc, "lonely\n", &err), 0);
    cr_assert(strstr(err.msg, "crypttab: line 1"), "%s", err.msg);
    cr_assert_neq(parse(bootconf_crypttab, bc, "a b c d e\n", &err), 0);
    free(bc);
}

Test(mdadm, arrays_with_colon_uuids)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_mdadm, bc,
             "# mdadm.conf\nDEVICE partitions\nHOMEHOST <system>\nMAILADDR root\n"
             "ARRAY /dev/md/0  metadata=1.2 UUID=3AAB4D2E:5F8B2C11:9D0E7F6A:12345678 name=host:0\n"
             "ARRAY /dev/md1 metadata=0.90\n   UUID=deadbeef:00112233:44556677:8899aabb\n"
             "MAILADDR root\n  UUID=ffffffff:ffffffff:ffffffff:ffffffff\n",
             &e_));
    cr_assert_eq(bc->n_arrays, 2);
    cr_assert_str_eq(bc->arrays[0].device, "/dev/md/0");
    cr_assert_str_eq(bc->arrays[0].name, "host:0");
    spec_is(&bc->arrays[0].spec, BOOTSPEC_MD_UUID, "3aab4d2e5f8b2c119d0e7f6a12345678", NULL);
    /* The continuation line belongs to md1; the one after MAILADDR to nothing. */
    spec_is(&bc->arrays[1].spec, BOOTSPEC_MD_UUID, "deadbeef00112233445566778899aabb", NULL);
    struct asr_error err = {0};
    cr_assert_neq(parse(bootconf_mdadm, bc, "ARRAY /dev/md2 UUID=1:2:3\n", &err), 0);
    cr_assert(strstr(err.msg, "mdadm.conf: line 1"), "%s", err.msg);
    /* What was kept of the refused line is never a half-read UUID (found by fuzz_bootconf). */
    cr_assert_eq(bc->arrays[bc->n_arrays - 1].spec.kind, BOOTSPEC_NONE);
    free(bc);
}

/* ---- kernel command lines ------------------------------------------------------------------ */

static const char grub_cfg[] =
    "set default=\"0\"\n"
    "menuentry 'Debian GNU/Linux' --class debian --class gnu-linux $menuentry_id_option "
    "'gnulinux-simple-0c6b' {\n"
    "\tload_video\n\tinsmod gzio\n"
    "\tsearch --no-floppy --fs-uuid --set=root 0c6b6e3a-1f5d-4b8e-9a3c-2d1e0f9a8b7c\n"
    "\techo\t'Loading Linux 6.1.0-18-amd64 ...'\n"
    "\techo\t\"Don't stop: a quote of the script's own, not ours to judge\n"
    "\tlinux\t/vmlinuz-6.1.0-18-amd64 root=UUID=5F0C3D2E-8A41-4B6F-9E0A-1C2D3E4F5A6B ro quiet "
    "rd.lvm.lv=vg/root rd.lvm.lv=vg/swap_1 rd.luks.uuid=luks-1d2c3b4a-5f6e-4789-9abc-def012345678"
    " rd.md.uuid=3aab4d2e:5f8b2c11:9d0e7f6a:12345678 resume=/dev/mapper/vg-swap_1 "
    "rootflags=subvol=root\n"
    "\tinitrd\t/initrd.img-6.1.0-18-amd64\n"
    "}\n"
    "submenu 'Advanced options' {\n"
    "\tmenuentry 'recovery' {\n"
    "\t\tlinux\t/vmlinuz-6.1.0-17-amd64 root=/dev/mapper/vg-old ro single rd.lvm.lv=vg/root "
    "rd.lvm.lv=vg/old \"dyndbg=file a.c +p\"\n"
    "\t}\n}\n";

Test(cmdline, grub_cfg_menuentries)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_grub, bc, grub_cfg, &e_));
    const struct bootcmdline *k = &bc->cmdline;
    cr_assert(k->have_root);
    spec_is(&k->root, BOOTSPEC_FS_UUID, "5f0c3d2e-8a41-4b6f-9e0a-1c2d3e4f5a6b", NULL);
    cr_assert(k->have_resume);
    spec_is(&k->resume, BOOTSPEC_LV, "vg", "swap_1");
    cr_assert_str_eq(k->rootflags, "subvol=root");
    cr_assert_eq(k->n_lvs, 3, "each LV once: %zu", k->n_lvs);
    spec_is(&k->lvs[0], BOOTSPEC_LV, "vg", "root");
    spec_is(&k->lvs[1], BOOTSPEC_LV, "vg", "swap_1");
    spec_is(&k->lvs[2], BOOTSPEC_LV, "vg", "old");
    cr_assert_eq(k->n_luks, 1);
    spec_is(&k->luks[0], BOOTSPEC_LUKS_UUID, "1d2c3b4a-5f6e-4789-9abc-def012345678", NULL);
    cr_assert_eq(k->n_mds, 1);
    spec_is(&k->mds[0], BOOTSPEC_MD_UUID, "3aab4d2e5f8b2c119d0e7f6a12345678", NULL);
    free(bc);
}

Test(cmdline, loader_entry_and_proc_cmdline)
{
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_loader_entry, bc,
             "title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition) o'clock\n"
             "version 6.5.6-300.fc39.x86_64\nlinux /vmlinuz-6.5.6-300.fc39.x86_64\n"
             "initrd /initramfs-6.5.6-300.fc39.x86_64.img\n"
             "options root=UUID=3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b ro rootflags=subvol=root "
             "rhgb quiet\ngrub_users $grub_users\n",
             &e_));
    spec_is(&bc->cmdline.root, BOOTSPEC_FS_UUID, "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b", NULL);
    cr_assert_str_eq(bc->cmdline.rootflags, "subvol=root");
    struct bootconf *b2 = bc_new();
    OK(parse(bootconf_cmdline, b2,
             "BOOT_IMAGE=/vmlinuz root=/dev/md/root ro rd.md.uuid=3AAB4D2E:5F8B2C11:9D0E7F6A:"
             "12345678 resume=PARTUUID=0a1b2c3d-05\n",
             &e_));
    spec_is(&b2->cmdline.root, BOOTSPEC_MD_NAME, "root", NULL);
    spec_is(&b2->cmdline.resume, BOOTSPEC_PART_UUID, "0a1b2c3d-05", NULL);
    free(bc);
    free(b2);
}

Test(cmdline, bad_arguments_refused)
{
    static const char *const bad[] = {
        "root=UUID=1234 ro \"quiet\n",  /* unterminated quote */
        "rd.lvm.lv=justavg\n",
        "rd.md.uuid=1234\n",             /* not 32 digits */
        "rd.luks.uuid=luks-zzzz\n",
        "root=\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct bootconf *bc = bc_new();
        struct asr_error err = {0};
        cr_assert_neq(parse(bootconf_cmdline, bc, bad[i], &err), 0, "%s", bad[i]);
        cr_assert(strstr(err.msg, "kernel command line: line 1"), "%s: %s", bad[i], err.msg);
        free(bc);
    }
    struct bootconf *bc = bc_new();
    struct asr_error err = {0};
    cr_assert_neq(parse(bootconf_grub, bc, "\tlinux /vmlinuz root='/dev/sda1\n", &err), 0);
    cr_assert(strstr(err.msg, "unterminated"), "%s", err.msg);
    free(bc);
}

/* ---- specs --------------------------------------------------------------------------------- */

Test(spec, forms_normalized)
{
    struct bootspec s;
    OK(bootspec_parse("LABEL=root", &s, &e_));
    spec_is(&s, BOOTSPEC_FS_LABEL, "root", NULL);
    OK(bootspec_parse("/dev/disk/by-label/My\\x2fDisk\\x20A", &s, &e_));
    spec_is(&s, BOOTSPEC_FS_LABEL, "My/Disk A", NULL);
    OK(bootspec_parse("/dev/disk/by-partlabel/EFI\\x20System", &s, &e_));
    spec_is(&s, BOOTSPEC_PART_LABEL, "EFI System", NULL);
    OK(bootspec_parse("PARTLABEL=Linux root", &s, &e_));
    spec_is(&s, BOOTSPEC_PART_LABEL, "Linux root", NULL);
    OK(bootspec_parse("/dev/disk/by-partuuid/8C2E5A1F-0B3D-4E6A-9F70-112233445566", &s, &e_));
    spec_is(&s, BOOTSPEC_PART_UUID, "8c2e5a1f-0b3d-4e6a-9f70-112233445566", NULL);
    OK(bootspec_parse("/dev/mapper/my--vg-my--root--lv", &s, &e_));
    spec_is(&s, BOOTSPEC_LV, "my-vg", "my-root-lv");
    cr_assert_str_eq(s.dm, "my--vg-my--root--lv");
    OK(bootspec_parse("/dev/mapper/luks-1d2c3b4a-5f6e-4789-9abc-def012345678", &s, &e_));
    spec_is(&s, BOOTSPEC_DM_NAME, "luks-1d2c3b4a-5f6e-4789-9abc-def012345678", NULL);
    OK(bootspec_parse("/dev/mapper/cryptroot", &s, &e_));
    spec_is(&s, BOOTSPEC_DM_NAME, "cryptroot", NULL);
    OK(bootspec_parse("/dev/vg0/var", &s, &e_));
    spec_is(&s, BOOTSPEC_LV, "vg0", "var");
    OK(bootspec_parse("/dev/md127", &s, &e_));
    spec_is(&s, BOOTSPEC_MD_DEV, "md127", NULL);
    OK(bootspec_parse("/dev/md/boot", &s, &e_));
    spec_is(&s, BOOTSPEC_MD_NAME, "boot", NULL);
    OK(bootspec_parse("/dev/nvme0n1p2", &s, &e_));
    spec_is(&s, BOOTSPEC_KERNEL, "nvme0n1p2", NULL);
    OK(bootspec_parse("ZFS=rpool/ROOT/debian", &s, &e_));
    cr_assert_eq(s.kind, BOOTSPEC_OTHER);
    OK(bootspec_parse("uuid=ABCD-EF01", &s, &e_));
    spec_is(&s, BOOTSPEC_FS_UUID, "abcd-ef01", NULL);

    struct asr_error err = {0};
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "LABEL=", 6);
    cr_assert_eq(bootspec_parse(big, &s, &err), ASR_E_LIMIT);
    cr_assert_neq(bootspec_parse("UUID=12.4", &s, &err), 0);
    cr_assert_eq(s.kind, BOOTSPEC_NONE, "a refused spec is not half set");
    cr_assert_neq(bootspec_parse("", &s, &err), 0);
    cr_assert_neq(bootspec_parse("/dev/disk/by-label/a\\x00b", &s, &err), 0);
    cr_assert_neq(bootspec_parse("/dev/mapper/", &s, &err), 0);
}

Test(spec, match_identities)
{
    struct bootvol_ids root = {.fs_uuid = "5F0C3D2E-8A41-4B6F-9E0A-1C2D3E4F5A6B",
                               .fs_label = "root",
                               .lv_vg = "my-vg",
                               .lv_name = "root"};
    struct bootvol_ids part = {.part_uuid = "8c2e5a1f-0b3d-4e6a-9f70-112233445566",
                               .part_label = "EFI System"};
    struct bootvol_ids md = {.md_uuid = "3aab4d2e-5f8b-2c11-9d0e-7f6a12345678",
                             .md_name = "host:boot",
                             .md_dev = "md127"};
    struct bootvol_ids luks = {.fs_uuid = "1d2c3b4a-5f6e-4789-9abc-def012345678",
                               .dm_name = "cryptroot"};
    const struct {
        const char *spec;
        const struct bootvol_ids *yes, *no;
    } run[] = {
        {"UUID=5f0c3d2e-8a41-4b6f-9e0a-1c2d3e4f5a6b", &root, &luks},
        {"/dev/disk/by-uuid/5F0C3D2E-8A41-4B6F-9E0A-1C2D3E4F5A6B", &root, &part},
        {"LABEL=root", &root, &part},
        {"/dev/mapper/my--vg-root", &root, &md},
        {"/dev/my-vg/root", &root, &md},
        {"PARTUUID=8C2E5A1F-0B3D-4E6A-9F70-112233445566", &part, &root},
        {"/dev/disk/by-partlabel/EFI\\x20System", &part, &root},
        {"/dev/md/boot", &md, &root},
        {"/dev/md127", &md, &root},
        {"/dev/mapper/cryptroot", &luks, &root},
    };
    for (size_t i = 0; i < sizeof run / sizeof run[0]; i++) {
        struct bootspec s;
        OK(bootspec_parse(run[i].spec, &s, &e_));
        cr_assert(bootspec_match(&s, run[i].yes), "%s should match", run[i].spec);
        cr_assert_not(bootspec_match(&s, run[i].no), "%s should not match", run[i].spec);
    }
    /* rd.md.uuid's colon form against a dashed md UUID; rd.luks.uuid against the header. */
    struct bootconf *bc = bc_new();
    OK(parse(bootconf_cmdline, bc,
             "rd.md.uuid=3aab4d2e:5f8b2c11:9d0e7f6a:12345678 "
             "rd.luks.uuid=luks-1D2C3B4A-5F6E-4789-9ABC-DEF012345678\n",
             &e_));
    cr_assert(bootspec_match(&bc->cmdline.mds[0], &md));
    cr_assert(bootspec_match(&bc->cmdline.luks[0], &luks));
    cr_assert_not(bootspec_match(&bc->cmdline.luks[0], &root));
    /* A shorter UUID is not a prefix match. */
    struct bootspec s;
    OK(bootspec_parse("UUID=5f0c3d2e", &s, &e_));
    cr_assert_not(bootspec_match(&s, &root));
    struct bootvol_ids empty = {0};
    cr_assert_not(bootspec_match(&s, &empty));
    free(bc);
}

/* ---- hostile input ------------------------------------------------------------------------- */

typedef int (*parser)(struct bootconf *, const char *, size_t, struct asr_error *);

static const parser parsers[] = {bootconf_fstab,   bootconf_crypttab,   bootconf_mdadm,
                                 bootconf_cmdline, bootconf_grub, bootconf_loader_entry};

Test(hostile, nul_bytes_overlong_lines_and_huge_input)
{
    size_t big = 10u << 20;
    char *buf = malloc(big);
    cr_assert_not_null(buf);
    memset(buf, '#', big);
    for (size_t i = 0; i < sizeof parsers / sizeof parsers[0]; i++) {
        struct bootconf *bc = bc_new();
        struct asr_error err = {0};
        cr_assert_eq(parsers[i](bc, buf, big, &err), ASR_E_LIMIT);
        cr_assert(strstr(err.msg, "more than"), "%s", err.msg);

        static const char nul[] = "/dev/sda1 / ext4 defaults 0 0\n\0UUID=1 /x ext4 d 0 0\n";
        cr_assert_eq(parsers[i](bc, nul, sizeof nul - 1, &err), ASR_E_CORRUPT);
        cr_assert(strstr(err.msg, "NUL byte at offset 30"), "%s", err.msg);

        /* A line just over the cap (a comment: the parsers would take it otherwise). */
        size_t n = BOOTCONF_MAX_LINE + 40;
        memcpy(buf, "ok 1\n", 5);
        buf[n] = '\n';
        cr_assert_eq(parsers[i](bc, buf, n + 1, &err), ASR_E_LIMIT);
        cr_assert(strstr(err.msg, "line 2 longer than"), "%s", err.msg);
        memset(buf, '#', 5);
        buf[n] = '#';

        /* Empty and comment-only files are valid and say nothing. */
        cr_assert_eq(parsers[i](bc, "", 0, &err), 0);
        cr_assert_eq(parsers[i](bc, "# nothing\n\n", 11, &err), 0);
        cr_assert_eq(bc->n_mounts + bc->n_crypts + bc->n_arrays, 0);
        free(bc);
    }
    free(buf);
}

Test(hostile, too_many_entries_and_long_fields)
{
    size_t n = BOOTCONF_MAX_ENTRIES + 1, cap = n * 40 + 1, o = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "LABEL=l%zu /d%zu ext4 d 0 0\n", i, i);
    struct bootconf *bc = bc_new();
    struct asr_error err = {0};
    cr_assert_eq(bootconf_fstab(bc, buf, o, &err), ASR_E_LIMIT);
    cr_assert(strstr(err.msg, "more than"), "%s", err.msg);
    free(bc);

    /* A field longer than a stored string, on a line within the cap. */
    char line[1200];
    memset(line, 'x', sizeof line);
    memcpy(line, "name ", 5);
    memcpy(line + sizeof line - 6, " none\n", 6);
    bc = bc_new();
    cr_assert_eq(bootconf_crypttab(bc, line, sizeof line, &err), ASR_E_LIMIT, "%s", err.msg);
    free(bc);
    free(buf);
}
