/* What a Linux root filesystem says it needs to boot, from the text of its configuration files
 * (/etc/fstab, /etc/crypttab, /etc/mdadm/mdadm.conf, the kernel command line in grub.cfg or a
 * loader entry), and the device specs found there (UUID=, LABEL=, /dev/mapper/VG-LV, ...) as
 * structured keys matched against a volume's identities. The caller reads the files; their bytes
 * are untrusted: every input is capped, NUL bytes and overlong lines are refused. Internal to the
 * engine (issue 14, "which volumes are critical, decided from the disks themselves"). */
#ifndef ASRIMG_BOOTCONF_H
#define ASRIMG_BOOTCONF_H

#include "asr_format.h"

#include <stdbool.h>
#include <stddef.h>

#define BOOTCONF_MAX_INPUT (1u << 20) /* one configuration file: 1 MiB */
#define BOOTCONF_MAX_LINE 4096u
#define BOOTCONF_MAX_ENTRIES 128u     /* per list (mounts, crypttab lines, arrays, cmdline specs) */
#define BOOTCONF_STR 256u             /* every stored string, NUL included */

/* What a device spec names. */
enum bootspec_kind {
    BOOTSPEC_NONE = 0,
    BOOTSPEC_FS_UUID,    /* UUID=, /dev/disk/by-uuid/: the filesystem's (or LUKS header's) UUID */
    BOOTSPEC_FS_LABEL,   /* LABEL=, /dev/disk/by-label/ */
    BOOTSPEC_PART_UUID,  /* PARTUUID=, /dev/disk/by-partuuid/: GPT partition GUID (or MBR id-N) */
    BOOTSPEC_PART_LABEL, /* PARTLABEL=, /dev/disk/by-partlabel/: GPT partition name */
    BOOTSPEC_LV,         /* /dev/VG/LV, /dev/mapper/VG-LV, rd.lvm.lv=VG/LV: vg, name */
    BOOTSPEC_DM_NAME,    /* /dev/mapper/NAME that is not VG-LV (a crypttab name, luks-UUID) */
    BOOTSPEC_MD_UUID,    /* rd.md.uuid=, mdadm.conf UUID=: 32 hex digits, no separators */
    BOOTSPEC_MD_NAME,    /* /dev/md/NAME */
    BOOTSPEC_MD_DEV,     /* /dev/mdN: value "mdN" */
    BOOTSPEC_LUKS_UUID,  /* rd.luks.uuid=: the LUKS header's UUID */
    BOOTSPEC_KERNEL,     /* /dev/sda1, /dev/nvme0n1p2: a kernel name, unstable across machines */
    BOOTSPEC_FILE,       /* a path outside /dev (a swap file inside a filesystem) */
    BOOTSPEC_OTHER,      /* anything else (ZFS=, nfs host:/path, ...): never matches */
};

/* A spec normalized: UUIDs lowercase (md UUIDs as 32 hex digits), \xHH escapes of
 * /dev/disk/by-* names decoded, LVM's "--" in /dev/mapper names unescaped. */
struct bootspec {
    enum bootspec_kind kind;
    char value[BOOTCONF_STR]; /* the UUID, label, name, path; the VG for BOOTSPEC_LV */
    char lv[BOOTCONF_STR];    /* the LV for BOOTSPEC_LV */
    char dm[BOOTCONF_STR];    /* /dev/mapper/NAME: NAME as written. "a-b" reads as VG a, LV b,
                                 but may as well be a crypttab name: it matches either way */
};

/* Parses spec (as written in fstab, crypttab or on the kernel command line). An empty spec, a
 * spec longer than BOOTCONF_STR - 1 or a malformed UUID is an error. */
int bootspec_parse(const char *spec, struct bootspec *out, struct asr_error *err);

/* Short stable name of a kind ("fs-uuid", "lv", ...). */
const char *bootspec_kind_name(enum bootspec_kind kind);

/* What a volume is known by; NULL or "" where it has no such identity. */
struct bootvol_ids {
    const char *fs_uuid, *fs_label;     /* the filesystem's (or LUKS header's) UUID and label */
    const char *part_uuid, *part_label; /* the partition's GPT GUID and name */
    const char *lv_vg, *lv_name;        /* the LV and its VG */
    const char *md_uuid, *md_name;      /* the array (any UUID spelling); its name ("host:0") */
    const char *md_dev;                 /* "md0" when known */
    const char *dm_name;                /* a crypttab name mapped over this volume */
    const char *kernel_name;            /* "sda1" on the live machine */
};

/* True when spec names the volume. UUIDs compare by their hex digits, any case or separators. */
bool bootspec_match(const struct bootspec *spec, const struct bootvol_ids *v);

/* Why an fstab entry is, or is not, needed to boot. */
enum bootrole {
    BOOTROLE_CRITICAL = 0, /* /, /boot, /boot/efi, /efi, /usr, /var and below /usr and /var */
    BOOTROLE_SWAP,         /* a swap device: critical, header only */
    BOOTROLE_SWAPFILE,     /* a swap file: inside a filesystem, not a device */
    BOOTROLE_DATA,         /* data volume: not needed to boot */
    BOOTROLE_NOAUTO,       /* noauto: not mounted at boot */
    BOOTROLE_IGNORED,      /* pseudo, network or bind mount: on no disk of its own */
};

struct bootmount {
    char source[BOOTCONF_STR], target[BOOTCONF_STR], fstype[BOOTCONF_STR], options[BOOTCONF_STR];
    struct bootspec spec; /* kind BOOTSPEC_NONE for ignored entries */
    enum bootrole role;
    bool nofail;
    char why[BOOTCONF_STR]; /* one line for layout: "/boot/efi: needed to boot", ... */
};

struct bootcrypt {
    char name[BOOTCONF_STR], source[BOOTCONF_STR], key[BOOTCONF_STR], options[BOOTCONF_STR];
    struct bootspec spec; /* the source */
};

struct bootarray {
    char device[BOOTCONF_STR]; /* "/dev/md0", "/dev/md/root" or "" */
    char name[BOOTCONF_STR];   /* name= or "" */
    struct bootspec spec;      /* BOOTSPEC_MD_UUID, or BOOTSPEC_NONE without UUID= */
};

struct bootcmdline {
    bool have_root;
    struct bootspec root;
    char rootflags[BOOTCONF_STR];
    bool have_resume;
    struct bootspec resume;
    struct bootspec lvs[BOOTCONF_MAX_ENTRIES]; /* rd.lvm.lv= */
    size_t n_lvs;
    struct bootspec luks[BOOTCONF_MAX_ENTRIES]; /* rd.luks.uuid= */
    size_t n_luks;
    struct bootspec mds[BOOTCONF_MAX_ENTRIES]; /* rd.md.uuid= */
    size_t n_mds;
};

/* Everything read so far; zero it (calloc: it is large) before the first call. */
struct bootconf {
    struct bootmount mounts[BOOTCONF_MAX_ENTRIES];
    size_t n_mounts;
    struct bootcrypt crypts[BOOTCONF_MAX_ENTRIES];
    size_t n_crypts;
    struct bootarray arrays[BOOTCONF_MAX_ENTRIES];
    size_t n_arrays;
    struct bootcmdline cmdline;
    bool array_open; /* mdadm.conf parser: the last keyword line was ARRAY */
};

/* Each parser takes a file's bytes (not NUL-terminated) and adds to bc. On error bc may hold
 * what came before the bad line; err names the file's kind and the line. */
int bootconf_fstab(struct bootconf *bc, const char *text, size_t len, struct asr_error *err);
int bootconf_crypttab(struct bootconf *bc, const char *text, size_t len, struct asr_error *err);
int bootconf_mdadm(struct bootconf *bc, const char *text, size_t len, struct asr_error *err);
/* One kernel command line (/proc/cmdline style). root= and resume= are taken from the first
 * command line that has them; rd.* specs from all, each once. */
int bootconf_cmdline(struct bootconf *bc, const char *text, size_t len, struct asr_error *err);
/* grub.cfg: the arguments of every linux/linux16/linuxefi line, as bootconf_cmdline (the first
 * menu entry, usually the default, gives root=). */
int bootconf_grub(struct bootconf *bc, const char *text, size_t len, struct asr_error *err);
/* A Boot Loader Specification entry (loader/entries/NAME.conf): its options lines. */
int bootconf_loader_entry(struct bootconf *bc, const char *text, size_t len,
                          struct asr_error *err);

#endif
