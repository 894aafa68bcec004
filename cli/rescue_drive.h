/* cli/rescue_drive.h: the recovery drive itself, as `asrimg rescue make` and `rescue update` build
 * it: the environment it boots (rescue_env.c), the drive's partitions, filesystems and boot
 * loaders (rescue_disk.c), and the two commands (rescue_make.c). The restore flow the environment
 * runs (`rescue run`) is cli/rescue.h's. */
#ifndef ASR_CLI_RESCUE_DRIVE_H
#define ASR_CLI_RESCUE_DRIVE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

int rescue_make(int argc, char **argv);   /* asrimg rescue make DRIVE|FILE.img ... */
int rescue_update(int argc, char **argv); /* asrimg rescue update DRIVE|FILE.img */

/* The format of the environment on the ESP and of its marker (/asrimg/rescue.conf): update
 * refuses a drive whose marker names another format. */
#define RESCUE_FORMAT 1
#define RESCUE_MARKER "asrimg/rescue.conf"

/* ---- the environment (rescue_env.c) --------------------------------------------------------- */

struct rescue_env {
    char root[PATH_MAX];     /* --system-root */
    char kver[128];          /* the kernel's version, as lib/modules names it */
    char kernel[PATH_MAX];   /* ROOT/boot/vmlinuz-VER */
    char shim[PATH_MAX];     /* ROOT/usr/lib/shim/shimx64.efi.signed */
    char grub_efi[PATH_MAX]; /* ROOT/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed */
    char initrd[PATH_MAX];   /* built in the work directory */
    const char *compression; /* of the initramfs: "zstd" or "gzip" */
    uint64_t kernel_bytes, initrd_bytes, modules_bytes, libs_bytes, efi_bytes;
    size_t modules, modules_missing, libs;
    double seconds; /* building the initramfs */
};

/* Finds the kernel, modules, shim and GRUB under root and builds the initramfs into workdir
 * (ASR_OK, or an error naming the missing piece and the Debian package that provides it). */
int rescue_env_build(const char *root, const char *workdir, struct rescue_env *env, struct asr_error *err);
/* Bytes the environment takes on the ESP (kernel, initramfs), and what the EFI loaders take. */
uint64_t rescue_env_bytes(const struct rescue_env *env);

#endif
