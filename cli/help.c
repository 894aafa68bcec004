/* The documentation of asrimg: one table of commands (synopsis, description, options, examples)
 * printed three ways: the overview (`asrimg help`), a command's full help (`asrimg CMD --help`,
 * `asrimg help CMD`) and the man page (`asrimg help --man`, built into asrimg.8). The option
 * parser reads the same table, so an option cannot be parsed and undocumented, or the reverse. */
#include "help.h"

#include <stdbool.h>
#include <string.h>

#include "asr_engine.h"

#define WIDTH 100 /* help text wraps here */
#define OPT_COL 26 /* where an option's help starts */

/* ---- the table ------------------------------------------------------------------------------ */

#define SELECTION_HELP                                                                                                \
    "which volumes: critical (the default: what the machine needs to boot), all, or a list such as "                 \
    "1,3 or 0:1,1:2 (PART of the first disk, or DISK:PART; DISK from 0, PART as the partition number, 0 for a "     \
    "disk without a partition table) and names of volumes inside storage stacks (vg0/home, md/0), as layout lists " \
    "them"

#define KEY_FILE_HELP                                                                                                 \
    "a key file (read whole, as cryptsetup reads one) tried on every LUKS container; what an opened one holds is "  \
    "looked into, and only the ciphertext of its used sectors is stored. Repeatable"
#define UNLOCK_HELP "ask on the terminal for a passphrase, tried on every LUKS container like a key file"

static const struct cli_option layout_opts[] = {
    {OPT_VOLUMES, 0, "volumes", "SEL", SELECTION_HELP},
    {OPT_KEY_FILE, 0, "key-file", "FILE", KEY_FILE_HELP},
    {OPT_UNLOCK, 0, "unlock", NULL, UNLOCK_HELP},
    {OPT_JSON, 0, "json", NULL, "print the layout as JSON on standard output, for scripts"},
    {OPT_EXTENTS, 0, "extents", NULL, "with --json: each volume captured by its used blocks lists them as [offset, length] pairs"},
    {0},
};
_Static_assert(sizeof layout_opts / sizeof layout_opts[0] <= CLI_OPTIONS_MAX + 1, "too many layout options");
static const struct cli_example layout_examples[] = {
    {"layout /dev/sda", "what a backup of /dev/sda would take, and why"},
    {"layout /dev/nvme0n1 /dev/sdb --volumes all --json", "every volume of two disks, for a script"},
    {0},
};

#define STORE_KEY_HELP                                                                                                \
    "the store's key file (default: ASRIMG_STORE_KEY_FILE, else ~/.config/asrimg/store-UUID.key, as store init "     \
    "wrote it)"
#define ENDPOINT_HELP "an S3 endpoint other than AWS (default: AWS_ENDPOINT_URL), for s3:// stores"

static const struct cli_option backup_opts[] = {
    {OPT_OUTPUT, 'o', "output", "IMAGE|STORE",
     "the image to write (this or --output-dir); '-' writes it to standard output; a store (a directory store init "
     "made, or s3://bucket/prefix) takes a snapshot HOST/TIME"},
    {OPT_OUTPUT_DIR, 0, "output-dir", "DIR",
     "write the image into DIR as HOST-YYYYmmdd-HHMMSS.asrimg (the hostname, and the time in UTC), never over an "
     "existing one, so regular backups accumulate"},
    {OPT_VOLUMES, 0, "volumes", "SEL", SELECTION_HELP},
    {OPT_KEY_FILE, 0, "key-file", "FILE", KEY_FILE_HELP},
    {OPT_UNLOCK, 0, "unlock", NULL, UNLOCK_HELP},
    {OPT_LEVEL, 0, "level", "N", "zstd level, 0 (store) to 19; default 3"},
    {OPT_THREADS, 0, "threads", "N", "compression threads, 1 to 256; default: one per core"},
    {OPT_SPLIT, 0, "split", "SIZE", "write parts of at most SIZE (4G, 700M, 1048576, or fat32 for 4 GiB - 1): IMAGE, "
                                     "IMAGE.002, ...; not with -o -"},
    {OPT_FORCE, 0, "force", NULL, "replace an existing IMAGE"},
    {OPT_IGNORE_READ_ERRORS, 0, "ignore-read-errors", NULL,
     "record data sectors that stay unreadable as unreadable ranges instead of stopping (never for the partition "
     "table or boot regions)"},
    {OPT_FREEZE, 0, "freeze", NULL,
     "freeze (FIFREEZE) each selected volume mounted read-write while it is read, and thaw it after"},
    {OPT_JSON, 0, "json", NULL, "print a summary as JSON on standard output: volumes, how each was taken, warnings"},
    {OPT_AVG_CHUNK, 0, "avg-chunk", "SIZE", "average size of the content-defined chunks (for experiments)"},
    {OPT_HOST, 0, "host", "HOST", "into a store: the snapshot's HOST (default: this machine's hostname)"},
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_NO_HINTS, 0, "no-hints", NULL,
     "into a store: hash and chunk every byte again instead of checking it against what the last backup of this "
     "machine into the store recorded (~/.cache/asrimg, or ASRIMG_CACHE_DIR); and record nothing"},
    {OPT_NO_PATCHES, 0, "no-patches", NULL,
     "into a store, with hints: store a chunk whose bytes changed since the last backup as new chunks, not as a "
     "patch of the chunk it was (a patch stores only its changed 4 KiB blocks)"},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {0},
};
_Static_assert(sizeof backup_opts / sizeof backup_opts[0] <= CLI_OPTIONS_MAX + 1, "too many backup options");
static const struct cli_example backup_examples[] = {
    {"backup /dev/sda -o /mnt/usb/pc.asrimg", "the volumes /dev/sda needs to boot, and its layout"},
    {"backup /dev/sda /dev/sdb --volumes all -o pc.asrimg --split fat32",
     "every volume of two disks, in parts a FAT32 stick can hold"},
    {"backup /dev/sda -o - | ssh host 'cat >pc.asrimg'", "the image over a pipe"},
    {"backup /dev/nvme0n1 --output-dir /media/RESCUE/images", "pc-20261205-142500.asrimg, say, beside the older ones"},
    {"backup /dev/sda -o /srv/asrstore", "a snapshot into a store: only chunks it does not hold yet are added"},
    {0},
};

static const struct cli_option bench_opts[] = {
    {OPT_VOLUMES, 0, "volumes", "SEL", SELECTION_HELP},
    {OPT_KEY_FILE, 0, "key-file", "FILE", KEY_FILE_HELP},
    {OPT_UNLOCK, 0, "unlock", NULL, UNLOCK_HELP},
    {OPT_LEVEL, 0, "level", "N", "zstd level to measure, 0 (store) to 19; default 3"},
    {OPT_THREADS, 0, "threads", "N", "compression threads, 1 to 256; default: one per core"},
    {OPT_JSON, 0, "json", NULL, "print the measurements as JSON on standard output"},
    {0},
};
_Static_assert(sizeof bench_opts / sizeof bench_opts[0] <= CLI_OPTIONS_MAX + 1, "too many bench options");
static const struct cli_example bench_examples[] = {
    {"bench /dev/sda", "how fast, and how large, a backup of /dev/sda would be"},
    {0},
};

static const struct cli_option restore_opts[] = {
    {OPT_TO, 0, "to", "TARGET",
     "a disk or file to restore onto (repeat for mirrors, or for each disk of the image in order); N=TARGET: image "
     "disk N (a file named so is given as ./N=TARGET); a file that does not exist is created"},
    {OPT_YES, 0, "yes", NULL, "do not ask before overwriting the targets (needed when not on a terminal)"},
    {OPT_NEW_IDS, 0, "new-ids", NULL, "give the disks and partitions new identifiers instead of the image's"},
    {OPT_GROW, 0, "grow", NULL,
     "extend the last partition (and an extended one around it) to the end of a larger target; not its filesystem"},
    {OPT_VERIFY, 0, "verify", NULL,
     "read every target back and compare it with the image, then check the storage stacks it records on them"},
    {OPT_DISCARD, 0, "discard", NULL, "discard (TRIM) the space the image does not hold"},
    {OPT_ZERO_UNUSED, 0, "zero-unused", NULL, "write zeros over the space the image does not hold"},
    {OPT_KEEP_GOING, 0, "keep-going", NULL, "zero the ranges of a damaged chunk, list them, and go on"},
    {OPT_BOOT_ENTRIES, 0, "boot-entries", NULL,
     "after the restore, make the UEFI boot entries the image records again, pointing at the restored partitions "
     "(once, however often the restore runs), first in BootOrder; needs a machine booted through UEFI"},
    {OPT_THREADS, 0, "threads", "N", "decompression threads, 1 to 64; default: one per core"},
    {OPT_JSON, 0, "json", NULL, "print a summary as JSON on standard output, with each target's state"},
    {0},
};
_Static_assert(sizeof restore_opts / sizeof restore_opts[0] <= CLI_OPTIONS_MAX + 1, "too many restore options");
static const struct cli_example restore_examples[] = {
    {"restore /mnt/usb/pc.asrimg --to /dev/sda", "shows the plan, asks, restores"},
    {"restore pc.asrimg --to /dev/sda --to /dev/sdb --yes --verify", "two mirrors of a one-disk image, read back"},
    {"restore - --to 1=/dev/sdb --to 0=/dev/sda --yes <pc.asrimg", "from standard input, image disk 1 onto /dev/sdb"},
    {"restore pc.asrimg --to /dev/nvme0n1 --yes --verify --boot-entries", "and the machine's UEFI boot entries"},
    {0},
};

static const struct cli_option info_opts[] = {
    {OPT_JSON, 0, "json", NULL, "print it as JSON on standard output"},
    {0},
};
_Static_assert(sizeof info_opts / sizeof info_opts[0] <= CLI_OPTIONS_MAX + 1, "too many info options");
static const struct cli_example info_examples[] = {
    {"info pc.asrimg", "what the image holds"},
    {0},
};

static const struct cli_option verify_opts[] = {
    {OPT_AGAINST, 0, "against", "DISK",
     "compare DISK with the image instead; every later argument is a disk too (N=DISK: image disk N)"},
    {OPT_NEW_IDS, 0, "new-ids", NULL, "with --against: the disks were restored with --new-ids"},
    {OPT_GROW, 0, "grow", NULL, "with --against: the disks were restored with --grow"},
    {OPT_KEY_FILE, 0, "key-file", "FILE",
     "with --against: a key file tried on every LUKS container, so that what an opened one holds is checked too. "
     "Repeatable"},
    {OPT_UNLOCK, 0, "unlock", NULL, "with --against: " UNLOCK_HELP},
    {OPT_JSON, 0, "json", NULL, "print the result as JSON on standard output"},
    {0},
};
_Static_assert(sizeof verify_opts / sizeof verify_opts[0] <= CLI_OPTIONS_MAX + 1, "too many verify options");
static const struct cli_example verify_examples[] = {
    {"verify pc.asrimg", "is every byte of the image intact?"},
    {"verify pc.asrimg --against /dev/sda /dev/sdb", "do two restored mirrors hold what the image does?"},
    {0},
};

static const struct cli_option mount_opts[] = {
    {OPT_ALLOW_OTHER, 0, "allow-other", NULL,
     "let other users read the files (FUSE's allow_other; for a user other than root, /etc/fuse.conf must say "
     "user_allow_other)"},
    {OPT_CACHE, 0, "cache", "SIZE", "decoded chunks kept in memory, 32M at least; default 256M"},
    {OPT_DAEMON, 'd', "daemon", NULL, "go to the background once mounted (errors then go to syslog)"},
    {0},
};
_Static_assert(sizeof mount_opts / sizeof mount_opts[0] <= CLI_OPTIONS_MAX + 1, "too many mount options");
static const struct cli_example mount_examples[] = {
    {"mount pc.asrimg /mnt/img", "serve the image until Ctrl-C or asrimg umount; DIR/README says what is what"},
    {"mount pc.asrimg /mnt/img -d && mount -o ro,loop /mnt/img/disk0p2.img /mnt/root",
     "look into partition 2 as it was imaged"},
    {"mount pc.asrimg /mnt/img -d && qemu-system-x86_64 -m 2G -drive file=/mnt/img/disk0.img,format=raw,snapshot=on",
     "boot the backed-up machine in a VM, to prove the backup boots"},
    {0},
};

static const struct cli_option umount_opts[] = {
    {0},
};
static const struct cli_example umount_examples[] = {
    {"umount /mnt/img", "unmount it (also after the asrimg process was killed)"},
    {0},
};

#define SYSTEM_ROOT_HELP                                                                                              \
    "take the kernel (the running one, else the newest in DIR/boot), its modules, shim and GRUB from DIR laid out "    \
    "like a root filesystem (default /; scripts/bootkit.sh unpacks Debian's into one)"
#define KERNEL_ARGS_HELP                                                                                              \
    "more words for the environment's kernel command line, e.g. 'asrimg.probe' (say ready, print asrimg --version, " \
    "power off) or rescue run's 'asrimg.restore=IMAGE asrimg.target=/dev/sda asrimg.yes'; update keeps them"

static const struct cli_option rescue_make_opts[] = {
    {OPT_SIZE, 0, "size", "SIZE", "create FILE.img of SIZE (4G, 512M) when it does not exist, or resize it"},
    {OPT_DATA_FS, 0, "data-fs", "FS", "the data partition's filesystem: exfat (the default: opens on every system), "
                                        "ext4, or fat32 (images on it in parts: backup --split fat32)"},
    {OPT_LABEL, 0, "label", "LABEL", "the data partition's label (default ASRIMG; 1 to 11 letters, digits, - or _)"},
    {OPT_SYSTEM_ROOT, 0, "system-root", "DIR", SYSTEM_ROOT_HELP},
    {OPT_KERNEL_ARGS, 0, "kernel-args", "ARGS", KERNEL_ARGS_HELP},
    {OPT_YES, 0, "yes", NULL, "do not ask before overwriting the drive (needed when not on a terminal)"},
    {OPT_JSON, 0, "json", NULL, "print what was done as JSON on standard output: partitions, environment sizes, times"},
    {0},
};
_Static_assert(sizeof rescue_make_opts / sizeof rescue_make_opts[0] <= CLI_OPTIONS_MAX + 1, "too many rescue make options");
static const struct cli_example rescue_make_examples[] = {
    {"rescue make /dev/sdX", "shows what it will overwrite, asks, makes the recovery drive"},
    {"rescue make rescue.img --size 8G --yes", "a recovery drive as an image file, for a VM or for dd"},
    {0},
};

static const struct cli_option rescue_update_opts[] = {
    {OPT_SYSTEM_ROOT, 0, "system-root", "DIR", SYSTEM_ROOT_HELP},
    {OPT_KERNEL_ARGS, 0, "kernel-args", "ARGS", KERNEL_ARGS_HELP},
    {OPT_JSON, 0, "json", NULL, "print what was done as JSON on standard output: environment sizes, times"},
    {0},
};
_Static_assert(sizeof rescue_update_opts / sizeof rescue_update_opts[0] <= CLI_OPTIONS_MAX + 1, "too many rescue update options");
static const struct cli_example rescue_update_examples[] = {
    {"rescue update /dev/sdX", "the environment of this asrimg and kernel onto the drive; the images stay"},
    {0},
};

#define RESCUE_DISKS_HELP                                                                                             \
    "the disks are /sys/block's less loop, ram, zram, sr, fd, nbd, dm- and md devices, or those ASRIMG_RESCUE_DISKS " \
    "lists (space- or comma-separated)"

static const struct cli_option rescue_images_opts[] = {
    {OPT_JSON, 0, "json", NULL, "print the list as JSON on standard output"},
    {0},
};
static const struct cli_example rescue_images_examples[] = {
    {"rescue images /mnt/rescue/images", "the images on the recovery drive, newest first"},
    {0},
};

static const struct cli_option rescue_plan_opts[] = {
    {OPT_DRIVE, 0, "drive", "DEV", "the recovery drive, never a target (default: the disk holding IMAGE)"},
    {OPT_TARGET, 0, "target", "DEV",
     "the disk for the next image disk in order, or N=DEV for image disk N; checked like a matched one. Repeatable"},
    {OPT_JSON, 0, "json", NULL, "print the plan as JSON on standard output"},
    {0},
};
static const struct cli_example rescue_plan_examples[] = {
    {"rescue plan /mnt/rescue/images/pc-20260101-120000.asrimg", "which disk each image disk would go onto"},
    {0},
};

static const struct cli_option rescue_run_opts[] = {
    {OPT_IMAGES, 0, "images", "DIR", "the images directory on the recovery drive (required)"},
    {OPT_IMAGE, 0, "image", "NAME", "the image: a file name in DIR, or latest (default: ask, or asrimg.restore=)"},
    {OPT_DRIVE, 0, "drive", "DEV", "the recovery drive, never a target (default: the disk holding DIR)"},
    {OPT_TARGET, 0, "target", "DEV", "the disk for the next image disk in order, or N=DEV. Repeatable"},
    {OPT_YES, 0, "yes", NULL, "unattended: ask nothing (needs the image named)"},
    {OPT_NEXT_FILE, 0, "next-file", "PATH", "write what to do next (reboot, poweroff or shell) into PATH, for the init"},
    {OPT_CMDLINE_FILE, 0, "cmdline-file", "PATH", "read the asrimg.* settings from PATH instead of /proc/cmdline"},
    {OPT_JSON, 0, "json", NULL, "print the report as JSON on standard output (the rest goes to standard error)"},
    {0},
};
static const struct cli_example rescue_run_examples[] = {
    {"rescue run --images /mnt/rescue/images --next-file /run/asrimg-next", "pick, plan, confirm, restore, report"},
    {"rescue run --images /mnt/rescue/images --image latest --target /dev/nvme0n1 --yes", "unattended"},
    {0},
};

static const struct cli_option store_common_opts[] = {
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print the result as JSON on standard output"},
    {0},
};
static const struct cli_option store_init_opts[] = {
    {OPT_STORE_KEY, 0, "store-key", "FILE", "where to write the new key (default: ~/.config/asrimg/store-UUID.key)"},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print the store and its key file as JSON on standard output"},
    {0},
};
static const struct cli_option store_list_opts[] = {
    {OPT_HOST, 0, "host", "HOST", "only this machine's snapshots"},
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print the snapshots as JSON on standard output"},
    {0},
};
static const struct cli_option store_prune_opts[] = {
    {OPT_KEEP_LAST, 0, "keep-last", "N", "keep the newest N snapshots"},
    {OPT_KEEP_DAILY, 0, "keep-daily", "N", "keep the newest snapshot of each of the newest N days (UTC) that have one"},
    {OPT_KEEP_WEEKLY, 0, "keep-weekly", "N", "the same per ISO week"},
    {OPT_KEEP_MONTHLY, 0, "keep-monthly", "N", "the same per month"},
    {OPT_HOST, 0, "host", "HOST", "only this machine's snapshots (default: each machine's, by the same rules)"},
    {OPT_DRY_RUN, 0, "dry-run", NULL, "say what would be removed, remove nothing"},
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print the counts as JSON on standard output"},
    {0},
};
static const struct cli_option store_verify_opts[] = {
    {OPT_READ_DATA, 0, "read-data", NULL, "read every chunk and check it against its id (default: check they exist)"},
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print the problems and counts as JSON on standard output"},
    {0},
};
static const struct cli_option move_opts[] = {
    {OPT_OUTPUT, 'o', "output", "FILE", "the image file to write (or give it after the snapshot)"},
    {OPT_FORCE, 0, "force", NULL, "replace an existing FILE"},
    {OPT_HOST, 0, "host", "HOST", "import: the snapshot's HOST (default: the hostname the image records)"},
    {OPT_STORE_KEY, 0, "store-key", "FILE", STORE_KEY_HELP},
    {OPT_ENDPOINT, 0, "endpoint", "URL", ENDPOINT_HELP},
    {OPT_JSON, 0, "json", NULL, "print a summary as JSON on standard output"},
    {0},
};
static const struct cli_example store_init_examples[] = {
    {"store init /srv/asrstore", "an empty store in a directory, and its key in ~/.config/asrimg"},
    {"store init s3://backups/asr --endpoint https://s3.example.net", "a store under an S3 bucket prefix"},
    {0},
};
static const struct cli_example store_list_examples[] = {
    {"store list /srv/asrstore", "every snapshot: logical size, stored size, and bytes no other snapshot shares"},
    {0},
};
static const struct cli_example store_prune_examples[] = {
    {"store prune /srv/asrstore --keep-daily 7 --keep-weekly 4 --keep-monthly 12", "a week of dailies, ..."},
    {0},
};
static const struct cli_example store_gc_examples[] = {
    {"store gc /srv/asrstore", "frees what pruned snapshots alone used; safe while backups run"},
    {0},
};
static const struct cli_example store_verify_examples[] = {
    {"store verify /srv/asrstore --read-data", "reads every chunk; names damaged ones and the snapshots they hurt"},
    {0},
};
static const struct cli_example export_examples[] = {
    {"export /srv/asrstore::pc/latest -o /media/RESCUE/images/pc.asrimg", "pc's newest snapshot as an image file"},
    {0},
};
static const struct cli_example import_examples[] = {
    {"import pc.asrimg /srv/asrstore", "the image as a snapshot HOST/TIME of the store"},
    {0},
};

#define STORE_REF_HELP                                                                                                \
    "A snapshot is named STORE::HOST/TIME, STORE::HOST/latest or STORE::latest, and read by restore, verify, info, " \
    "mount and export. The store's key comes from --store-key, ASRIMG_STORE_KEY_FILE, or the file store init wrote."

static const struct cli_command commands[] = {
    {"layout",
     {"layout DISK... [--volumes critical|all|LIST] [--key-file FILE] [--unlock] [--json [--extents]]"},
     "disks, partitions, filesystems, used bytes, critical volumes",
     "Shows each DISK (a block device or an image file) as a backup would see it: its partition table, partitions, "
     "filesystems and used bytes, which volumes are critical (needed to boot) and why, how each selected volume "
     "would be captured (used: by its used blocks; full; header), and which way the disk was read and why. A FAT, "
     "exFAT or NTFS made on the whole disk is read as that filesystem, one volume numbered 0.",
     layout_opts, layout_examples},
    {"backup",
     {"backup DISK... -o IMAGE|STORE|--output-dir DIR [--volumes critical|all|LIST] [--key-file FILE] [--unlock] [--level N] [--threads N] [--split SIZE|fat32] "
      "[--force] [--ignore-read-errors] [--freeze] [--json]"},
     "image the selected volumes and every disk's layout ('-o -': stdout)",
     "Images the selected volumes (by default the critical ones) and the layout of every DISK: partition tables, "
     "boot code and the gap before the first partition. Filesystems asrimg reads (FAT12/16/32, exFAT, NTFS, "
     "ext2/3/4, swap) are captured by their used blocks, others whole; data is deduplicated in content-defined "
     "chunks and compressed with zstd on every core.\n\n"
     "The image is written as IMAGE.partial and renamed when complete. backup refuses to write onto a source disk, "
     "to replace an image without --force, and a disk given twice. It warns of a volume mounted read-write, which "
     "--freeze freezes while it is read.\n\n"
     "The image records the machine: its hostname, whether it booted through UEFI or BIOS, and on UEFI the boot "
     "entries (Boot####) that load from a partition of DISK, with BootOrder (restore --boot-entries makes them "
     "again).\n\n"
     "Into a store (-o STORE), the backup is a snapshot named HOST/TIME: chunks the store already holds, from this "
     "machine's earlier snapshots or from other machines, are neither compressed nor uploaded again; restore, "
     "verify, info, mount and export read it as STORE::HOST/TIME (or STORE::HOST/latest).",
     backup_opts, backup_examples},
    {"bench",
     {"bench DISK... [--volumes critical|all|LIST] [--key-file FILE] [--unlock] [--level N] [--threads N] [--json]"},
     "measure read, hash and compression speed; project image size and time",
     "Measures read, hash and compression speed on this machine and DISK, and projects the image's size, the "
     "backup's time and the stage that bounds it. Nothing is written.",
     bench_opts, bench_examples},
    {"restore",
     {"restore IMAGE|- --to TARGET [--to TARGET ...] [--yes] [--new-ids] [--grow] [--verify] "
      "[--discard|--zero-unused] [--keep-going] [--boot-entries] [--threads N] [--json]"},
     "lay the image onto replacement disks as large or larger",
     "Lays the image onto replacement disks at least as large, with the same sector size: boot code, the partition "
     "table with the same disk and partition ids (new ones with --new-ids), a GPT's backup moved to the end of a "
     "larger disk, every captured byte. IMAGE - reads the image from standard input (a split set's parts "
     "concatenated in order).\n\n"
     "Every target is checked first (size, sector size, not mounted or in use, not holding the image), then the "
     "plan is shown and confirmed (or --yes). Several --to for a one-disk image are mirrors, written in one pass; "
     "an image of several disks takes its targets in disk order, or as --to N=TARGET. A failed restore says on a "
     "note: line what each target holds and what to do next.\n\n"
     "--boot-entries makes the UEFI boot entries the image records again on this machine, each pointing at its "
     "partition as restored (HD() with the restored partition's number, start, size and GUID, then the recorded "
     "file), reusing an entry already there for the same partition and file, and puts them first in BootOrder. An "
     "image without entries boots through the removable-media path \\EFI\\BOOT\\BOOTX64.EFI: restore says whether "
     "the restored ESP holds it. Without UEFI variables (not booted through UEFI) the disks are restored and the "
     "entries reported as not made.",
     restore_opts, restore_examples},
    {"mount",
     {"mount IMAGE DIR [--allow-other] [--cache SIZE] [-d|--daemon]"},
     "browse and boot an image without restoring it (FUSE, read-only)",
     "Shows what IMAGE holds as read-only files in DIR, until Ctrl-C or asrimg umount DIR: DIR/disk0.img is disk 0 "
     "as it was (its size, partition table, boot regions and every captured byte at its place; what the image does "
     "not hold reads as zeros), DIR/disk0p2.img partition 2 alone (disk1... for the other disks of an image), and "
     "DIR/README which is what (filesystem, label, UUID) and how to open each.\n\n"
     "mount -o ro,loop DIR/disk0p2.img /mnt then opens a volume (ext2/3/4, FAT, exFAT, NTFS, btrfs; XFS with -o "
     "ro,norecovery,loop); without root, fuse2fs, ntfs-3g, mount.exfat-fuse and mtools open the files directly. "
     "qemu-system-x86_64 -drive file=DIR/disk0.img,format=raw,snapshot=on boots the backed-up machine.\n\n"
     "Reads are served from the image's index: each chunk they need is read once, its checksums checked, and kept "
     "decoded in a cache of --cache bytes; sequential reads are decoded ahead. A damaged chunk gives I/O errors for "
     "the ranges it covers, named on standard error, never other bytes. An image still being written (.partial) "
     "or incomplete is refused. If the asrimg process is killed, asrimg umount DIR (or fusermount3 -u DIR) clears "
     "the mount.",
     mount_opts, mount_examples},
    {"umount",
     {"umount DIR"},
     "unmount what asrimg mount serves at DIR",
     "Unmounts DIR with fusermount3 -u. When a file under DIR is still open, DIR is detached at once (fusermount3 "
     "-u -z) and the open files stay readable until closed.",
     umount_opts, umount_examples},
    {"info",
     {"info IMAGE [--json]"},
     "format, creator, disks, partitions, volumes, sizes and ratios",
     "Shows what IMAGE holds: format, creator, the machine it was taken on (hostname, firmware, UEFI boot entries), "
     "disks, partitions, raw boot regions, volumes, sizes, and dedup and compression ratios.",
     info_opts, info_examples},
    {"verify",
     {"verify IMAGE [--json]", "verify IMAGE --against DISK... [--new-ids] [--grow] [--json]"},
     "check every checksum; with --against, compare restored disks with the image",
     "Checks every checksum and structure of IMAGE and exits 0 only if every byte that matters checks out; each "
     "problem is named with its part and offset. Ranges the source could not read when it was imaged "
     "(backup --ignore-read-errors) are listed.\n\n"
     "With --against, compares disks restored from IMAGE with it (data, boot regions, partition table), names the "
     "first difference, and says what it could not compare: partitions and free space the image does not hold. "
     "The storage stacks the image records are then read from the disks and checked layer by layer: each md array, "
     "LUKS container and LVM2 volume group found by UUID with its members where the image has them, the same data "
     "areas, md event count and LVM metadata seqno, and every LV; what a LUKS container holds is checked when "
     "--key-file or --unlock opens it.",
     verify_opts, verify_examples},
    {"rescue make",
     {"rescue make DRIVE|FILE.img [--size SIZE] [--data-fs exfat|ext4|fat32] [--label LABEL] [--system-root DIR] "
      "[--kernel-args ARGS] [--yes] [--json]"},
     "make a drive that boots any PC (BIOS, UEFI, Secure Boot) and restores the images it holds",
     "Makes DRIVE (a block device, or an image file, created with --size) a recovery drive: a GPT with a BIOS boot "
     "partition, an EFI system partition holding the recovery environment, and a data partition over the rest "
     "(exFAT labelled ASRIMG by default) with an images/ directory for backups. It boots on legacy BIOS (GRUB) and "
     "on UEFI with or without Secure Boot (Debian's signed shim, GRUB and kernel), finds its data partition by its "
     "partition GUID, and runs `asrimg rescue run` over images/.\n\n"
     "The environment is a Debian kernel with the storage, USB, RAID/HBA and filesystem modules a PC needs, and an "
     "initramfs holding busybox, this asrimg and the libraries it runs with. The drive is shown and confirmed (or "
     "--yes) before anything is written; a mounted or busy drive is refused. Needs losetup, mkfs.vfat, "
     "mkfs.exfat/mkfs.ext4, mtools, exfat-fuse, grub-mkimage and GRUB's i386-pc files.",
     rescue_make_opts, rescue_make_examples},
    {"rescue update",
     {"rescue update DRIVE|FILE.img [--system-root DIR] [--kernel-args ARGS] [--json]"},
     "replace the recovery environment on a drive rescue make made; the images stay",
     "Recognises a drive made by rescue make by the marker on its EFI system partition (asrimg/rescue.conf, with "
     "the environment's format), writes the environment of this asrimg and kernel beside the old one, switches "
     "both grub.cfg to it, then removes the old one. The data partition is never opened; a drive without the "
     "marker is refused untouched.",
     rescue_update_opts, rescue_update_examples},
    {"rescue images",
     {"rescue images DIR [--json]"},
     "the images in DIR (the recovery drive's), newest first",
     "Lists every image in DIR, single files and split sets, newest first (by the time each was taken): file, "
     "machine, date, disks, size, and whether it opens; a damaged one is listed as damaged. Unfinished ones "
     "(IMAGE.partial, a split set missing a part, a file cut off before its end) are skipped, each with a line "
     "saying so. The machine is the hostname the image recorded, else the HOST of a file named "
     "HOST-YYYYmmdd-HHMMSS.asrimg, else unknown.",
     rescue_images_opts, rescue_images_examples},
    {"rescue plan",
     {"rescue plan IMAGE [--drive DEV] [--target [N=]DEV]... [--json]"},
     "match the image's disks to this machine's disks, ASR-style",
     "Matches each image disk to a disk here at least as large with the same logical sector size, never the "
     "recovery drive (--drive, else the disk holding IMAGE), never one disk twice: the disk of exactly its size "
     "first, else the smallest that fits. Two equally good disks are ambiguous: both are named, and a target must "
     "be chosen (--target). Targets named with --target pass the same rules; a smaller one is refused naming both "
     "sizes. Shows the table, what each target holds now (all of it to be overwritten), and the asrimg restore "
     "command the plan implies; exits 1 when some image disk has no target. Nothing is written. " RESCUE_DISKS_HELP
     ".",
     rescue_plan_opts, rescue_plan_examples},
    {"rescue run",
     {"rescue run --images DIR [--image NAME|latest] [--drive DEV] [--target [N=]DEV]... [--yes] [--next-file PATH] "
      "[--cmdline-file PATH] [--json]"},
     "the recovery environment's restore: pick, plan, confirm, restore, report",
     "The whole restore as the recovery drive runs it, each step an asrimg command the user could type: lists the "
     "images (rescue images), lets the user pick one, shows the plan and what will be overwritten (rescue plan), "
     "asks where two disks are equally good, asks for 'yes' as restore does, then prints and runs asrimg restore "
     "IMAGE --to ... --verify --yes (with --boot-entries on UEFI firmware), its progress on the terminal. Then it "
     "writes a report, text and JSON (the image, targets, timings, the verify result, the restore's own --json), "
     "into DIR/reports/, and asks whether to reboot or open a shell. What to do next (reboot, poweroff or shell) "
     "goes into --next-file for the init; rescue run never reboots the machine itself. A failure says shell, with "
     "a report of what failed.\n\n"
     "Unattended: with --yes (or asrimg.yes) nothing is asked. Settings come from the options, else the kernel "
     "command line (/proc/cmdline, or --cmdline-file): asrimg.restore=NAME|latest, asrimg.target=DEV[,DEV...], "
     "asrimg.yes, asrimg.then=poweroff|reboot|shell (default poweroff); else the file DIR/unattended.conf, the "
     "same keys as key=value lines (the asrimg. prefix optional, # comments). " RESCUE_DISKS_HELP ".",
     rescue_run_opts, rescue_run_examples},
    {"store init",
     {"store init STORE [--store-key FILE] [--endpoint URL] [--json]"},
     "make an empty chunk store (a directory, or s3://bucket/prefix) and its key",
     "Makes an empty store: a directory (which must not exist or be empty) or a prefix of an S3 bucket, and a new "
     "random key, written to --store-key or ~/.config/asrimg/store-UUID.key (mode 0600, never overwritten). Chunks "
     "are identified in the store by HMAC-SHA-256 with that key: every machine that backs up into the store or "
     "restores from it needs a copy of the key file, and without it no snapshot can be read. S3 credentials come "
     "from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, the region from AWS_REGION.\n\n"
     STORE_REF_HELP,
     store_init_opts, store_init_examples},
    {"store list",
     {"store list STORE [--host HOST] [--json]"},
     "the snapshots of a store, with their sizes",
     "Lists the snapshots, oldest first: name (HOST/TIME), time, logical size (the data of its volumes), stored size "
     "(the compressed chunks it uses) and unique size (what only it uses: what removing it would free).\n\n"
     STORE_REF_HELP,
     store_list_opts, store_list_examples},
    {"store prune",
     {"store prune STORE --keep-last N|--keep-daily N|--keep-weekly N|--keep-monthly N... [--host HOST] [--dry-run]"},
     "remove the snapshots no keep rule keeps",
     "For each machine (or only --host), keeps every snapshot one of the rules keeps and removes the others: "
     "--keep-last N the newest N, --keep-daily N the newest of each of the newest N days (UTC) that have one, "
     "likewise per ISO week and per month. At least one rule is needed. Their chunks stay until store gc.",
     store_prune_opts, store_prune_examples},
    {"store gc",
     {"store gc STORE [--json]"},
     "free the chunks no snapshot uses",
     "Condemns the packs no snapshot uses, and deletes the packs an earlier gc condemned once every backup that was "
     "running then has ended (a backup that stops without a word counts as ended 30 minutes after its last sign of "
     "life), sparing any a snapshot has come to use. No lock: backups and gc run at the same time and lose nothing "
     "(SPEC.md section 19.8). Run it regularly, after prune.",
     store_common_opts, store_gc_examples},
    {"store verify",
     {"store verify STORE [--read-data] [--json]"},
     "check that every chunk every snapshot uses is there (--read-data: and intact)",
     "Reads every snapshot and checks that each chunk it uses is listed in a pack that exists; with --read-data, "
     "reads every chunk and checks its checksums and its content against its id. Names each missing or damaged "
     "chunk with the snapshots it hurts; exit 1 when any.",
     store_verify_opts, store_verify_examples},
    {"export",
     {"export STORE::SNAPSHOT -o FILE [--force] [--json]"},
     "a snapshot as a self-contained image file",
     "Writes the snapshot as an image file holding its chunks (compressed again at zstd level 3), with the same "
     "layout, volumes and volume content hashes, checked as it is written: the recovery drive, or a copy to hand "
     "to someone.\n\n" STORE_REF_HELP,
     move_opts, export_examples},
    {"import",
     {"import FILE STORE [--json]"},
     "an image file as a snapshot of a store",
     "Adds the image to the store as a snapshot HOST/TIME (the hostname the image records), storing only the "
     "chunks the store does not hold yet; every volume's content hash is checked on the way.",
     move_opts, import_examples},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct cli_command *cli_command_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

bool cli_help_group(FILE *f, const char *group)
{
    size_t n = strlen(group);
    bool any = false;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strncmp(commands[i].name, group, n) || commands[i].name[n] != ' ')
            continue;
        if (!any)
            fprintf(f, "usage: asrimg %s SUBCOMMAND [ARGS]   (asrimg help %s SUBCOMMAND: one in full)\n\n", group, group);
        any = true;
        fprintf(f, "  asrimg %s\n      %s\n", commands[i].name, commands[i].summary);
    }
    return any;
}

/* ---- text ----------------------------------------------------------------------------------- */

/* The length of the word at p (before end): up to a space outside brackets, so that
 * "[--split SIZE|fat32]" stays on one line. */
static size_t word_len(const char *p, const char *end)
{
    size_t n = 0;
    for (int depth = 0; p + n < end && (p[n] != ' ' || depth > 0); n++)
        depth += p[n] == '[' ? 1 : p[n] == ']' && depth > 0 ? -1 : 0;
    return n;
}

/* Writes the n bytes of text from column `col` on, breaking lines at spaces before WIDTH and
 * starting each new line at column `indent`. Returns the column it ended at. */
static int wrap_n(FILE *f, const char *text, size_t n, int col, int indent)
{
    bool first = true; /* of the line, as far as this text goes */
    for (const char *p = text, *end = text + n; p < end;) {
        size_t word = word_len(p, end);
        if (!first && col + 1 + (int)word > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = true;
        }
        if (!first) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, word, f);
        col += (int)word;
        first = false;
        p += word;
        while (p < end && *p == ' ')
            p++;
    }
    return col;
}

static int wrap(FILE *f, const char *text, int col, int indent)
{
    return wrap_n(f, text, strlen(text), col, indent);
}

static void paragraphs(FILE *f, const char *text, int indent)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        fprintf(f, "%*s", indent, "");
        wrap_n(f, text, n, indent, indent);
        fputc('\n', f);
        text += n;
        while (*text == '\n') {
            if (text[1] == '\n')
                fputc('\n', f);
            text += text[1] == '\n' ? 2 : 1;
        }
    }
}

/* Returns the column it ended at, the line left open. */
static int synopsis(FILE *f, const char *prefix, const char *form)
{
    /* Continuation lines start under the command's first argument. */
    int indent = (int)(strlen(prefix) + strcspn(form, " ") + 1);
    fputs(prefix, f);
    return wrap(f, form, (int)strlen(prefix), indent);
}

void cli_help_overview(FILE *f)
{
    fputs("usage: asrimg COMMAND [ARGS]\n"
          "       asrimg help [COMMAND]     the commands, or one command in full (also: asrimg COMMAND --help)\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int col = 0;
        for (int k = 0; commands[i].synopsis[k]; k++)
            col = (k ? fputc('\n', f) : 0, synopsis(f, "  ", commands[i].synopsis[k]));
        /* The summary beside a short synopsis, else under it. */
        if (col + 2 > OPT_COL) {
            fputc('\n', f);
            col = 0;
        }
        fprintf(f, "%*s", OPT_COL - col, "");
        wrap(f, commands[i].summary, OPT_COL, OPT_COL);
        fputc('\n', f);
    }
    fputs("  version                 print the version\n"
          "\n"
          "IMAGE is an .asrimg file, or the first part of a split set (IMAGE.002 ... beside it).\n",
          f);
}

static int option_label(char *buf, size_t len, const struct cli_option *o)
{
    char s[8] = "    ";
    if (o->short_name)
        snprintf(s, sizeof s, "-%c, ", o->short_name);
    return snprintf(buf, len, "  %s--%s%s%s", s, o->name, o->arg ? "=" : "", o->arg ? o->arg : "");
}

void cli_help_command(FILE *f, const struct cli_command *c)
{
    for (int k = 0; c->synopsis[k]; k++) {
        synopsis(f, k ? "       asrimg " : "usage: asrimg ", c->synopsis[k]);
        fputc('\n', f);
    }
    fputc('\n', f);
    paragraphs(f, c->description, 0);
    fputs("\noptions:\n", f);
    static const struct cli_option help = {OPT_HELP, 'h', "help", NULL, "print this help and exit"};
    for (const struct cli_option *o = c->options;; o++) {
        const struct cli_option *opt = o->id ? o : &help;
        char label[64];
        int col = option_label(label, sizeof label, opt);
        fputs(label, f);
        if (col + 2 > OPT_COL) {
            fputc('\n', f);
            col = 0;
        }
        fprintf(f, "%*s", OPT_COL - col, "");
        wrap(f, opt->help, OPT_COL, OPT_COL);
        fputc('\n', f);
        if (!o->id)
            break;
    }
    fputs("\nexamples:\n", f);
    for (const struct cli_example *e = c->examples; e->line; e++) {
        fprintf(f, "  asrimg %s\n      ", e->line);
        wrap(f, e->what, 6, 6);
        fputc('\n', f);
    }
}

/* ---- the man page ----------------------------------------------------------------------------- */

/* Text for roff: backslashes and hyphen-minus escaped, no line starting with a control
 * character, one input line per paragraph (roff fills it). */
static void roff_n(FILE *f, const char *s, size_t n)
{
    bool line_start = true;
    for (const char *end = s + n; s < end; s++) {
        if (line_start && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        line_start = false;
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else if (*s == '\n') {
            fputc('\n', f);
            line_start = true;
        } else
            fputc(*s, f);
    }
}

static void roff(FILE *f, const char *s)
{
    roff_n(f, s, strlen(s));
}

static void roff_paragraphs(FILE *f, const char *text)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        fputs(".PP\n", f);
        roff_n(f, p, n);
        fputc('\n', f);
        p += n;
        while (*p == '\n')
            p++;
    }
}

static void roff_synopsis(FILE *f, const char *form)
{
    fputs(".PP\n.B asrimg\n", f);
    roff(f, form);
    fputc('\n', f);
}

void cli_help_man(FILE *f)
{
    fprintf(f, ".\\\" Generated by `asrimg help --man` from cli/help.c: edit that, not this.\n"
               ".TH ASRIMG 8 \"\" \"asrimg %s\" \"System Administration\"\n"
               ".nh\n.ad l\n"
               ".SH NAME\n"
               "asrimg \\- bare\\-metal disk imaging: back up the volumes a machine needs to boot and its disk layout, "
               "restore them onto replacement disks\n"
               ".SH SYNOPSIS\n",
            asr_version());
    for (size_t i = 0; i < NCOMMANDS; i++)
        for (int k = 0; commands[i].synopsis[k]; k++)
            roff_synopsis(f, commands[i].synopsis[k]);
    fputs(".PP\n.B asrimg help\n[COMMAND]\n.PP\n.B asrimg version\n", f);
    fputs(".SH DESCRIPTION\n", f);
    roff_paragraphs(f, "asrimg images the volumes a Linux machine needs to boot, plus the whole configuration of its "
                       "disks, into an .asrimg image, and lays that image onto replacement disks of the same size "
                       "or larger, with the same disk signatures, partitions and data, so that the restored disk "
                       "boots.\n\n"
                       "IMAGE is an .asrimg file, or the first part of a split set (IMAGE.002 ... beside it). Every "
                       "command takes -h or --help; options take their value as --opt=value or --opt value, and -- "
                       "ends the options.");
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct cli_command *c = &commands[i];
        fprintf(f, ".SS %s\n", c->name);
        for (int k = 0; c->synopsis[k]; k++)
            roff_synopsis(f, c->synopsis[k]);
        roff_paragraphs(f, c->description);
        for (const struct cli_option *o = c->options; o->id; o++) {
            fputs(".TP\n", f);
            if (o->short_name)
                fprintf(f, "\\fB\\-%c\\fR, ", o->short_name);
            fputs("\\fB\\-\\-", f);
            roff(f, o->name);
            fputs("\\fR", f);
            if (o->arg) {
                fputs("=\\fI", f);
                roff(f, o->arg);
                fputs("\\fR", f);
            }
            fputc('\n', f);
            roff(f, o->help);
            fputc('\n', f);
        }
        fputs(".PP\nExamples:\n", f);
        for (const struct cli_example *e = c->examples; e->line; e++) {
            fputs(".TP\n.B asrimg ", f);
            roff(f, e->line);
            fputc('\n', f);
            roff(f, e->what);
            fputc('\n', f);
        }
    }
    fputs(".SH EXIT STATUS\n"
          ".TP\n0\nsuccess\n"
          ".TP\n1\nthe operation failed (a bad image, a read or write error, a refusal); the error is one line, "
          "\\fBasrimg: error:\\fR what: where\n"
          ".TP\n2\na usage error: no or an unknown command, an unknown option, a missing or malformed value\n"
          ".SH SEE ALSO\n"
          ".BR sfdisk (8),\n"
          ".BR sgdisk (8),\n"
          ".BR partclone (8)\n",
          f);
}
