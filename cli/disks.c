/* The source disks of a command: each one once, opened, analysed, and the volume selection applied
 * across all of them (a selection like "1:2,2:1" spans disks). Shared by layout, backup and bench. */
#include "disks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <fcntl.h>

#include "help.h"

#include "util.h"

int cli_keys_option(struct cli_keys *k, int opt, const char *value, int *rc)
{
    if (opt == OPT_UNLOCK) {
        k->prompt = true;
        return 1;
    }
    if (opt != OPT_KEY_FILE)
        return 0;
    if (k->n == sizeof k->files / sizeof k->files[0]) {
        cli_error("at most %zu --key-file", sizeof k->files / sizeof k->files[0]);
        *rc = EXIT_USAGE;
    } else
        k->files[k->n++] = value;
    return 1;
}

/* --unlock: one passphrase read from the terminal with echo off (never from a pipe: a script
 * gives --key-file). */
static int ask_passphrase(struct cli_keys *k, struct asr_error *err)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_ARG, "--unlock needs a terminal to ask on; give --key-file instead");
    struct termios old, quiet;
    bool echo_off = tcgetattr(fd, &old) == 0;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    if (echo_off)
        tcsetattr(fd, TCSAFLUSH, &quiet);
    static const char prompt[] = "Passphrase for the LUKS containers: ";
    ssize_t w = write(fd, prompt, sizeof prompt - 1);
    (void)w;
    ssize_t got = read(fd, k->passphrase, sizeof k->passphrase - 1);
    if (echo_off)
        tcsetattr(fd, TCSAFLUSH, &old);
    w = write(fd, "\n", 1);
    close(fd);
    if (got <= 0)
        return asr_fail_public(err, ASR_E_ARG, "--unlock: no passphrase read");
    k->len = (size_t)got;
    if (k->passphrase[k->len - 1] == '\n') /* the Enter that ended it, as cryptsetup drops it */
        k->len--;
    return ASR_OK;
}

int cli_disks_open(struct cli_disks *s, const char *const *paths, uint32_t n, const char *selection,
                   struct cli_keys *keys, struct asr_error *err)
{
    *s = (struct cli_disks){.keys = keys};
    if (keys && keys->prompt && !keys->len && ask_passphrase(keys, err) != ASR_OK)
        return EXIT_FAIL;
    struct asr_machine_options mo = {0};
    if (keys)
        mo = (struct asr_machine_options){.key_files = keys->files, .n_key_files = keys->n,
                                          .passphrase = keys->prompt ? keys->passphrase : NULL,
                                          .passphrase_len = keys->len};
    /* The same disk twice (under two names, or a loop device over another) would be two disks of
     * the image, each a copy of the other. */
    if (asr_check_distinct_storage(paths, n, "disk", err) != ASR_OK)
        return EXIT_FAIL;
    s->n = n;
    for (uint32_t i = 0; i < n; i++)
        if (asr_disk_open(paths[i], &s->disk[i], err) ||
            asr_disk_analyze(s->disk[i], i, &s->vols[i], &s->count[i], err))
            return EXIT_FAIL;
    if (asr_machine_analyze(s->disk, s->vols, s->count, n, &mo, &s->machine, err))
        return EXIT_FAIL;
    /* Gather the volumes into one list, apply the selection, scatter back. */
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += s->count[i];
    struct asr_volume_info *all = calloc(total + 1, sizeof *all);
    if (!all)
        return asr_fail_public(err, ASR_E_NOMEM, "out of memory"), EXIT_FAIL;
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++)
        memcpy(all + at, s->vols[i], s->count[i] * sizeof *all), at += s->count[i];
    int rc = asr_select_volumes(all, total, selection, err) == ASR_OK ? EXIT_OK : EXIT_FAIL;
    at = 0;
    for (uint32_t i = 0; i < n; i++)
        memcpy(s->vols[i], all + at, s->count[i] * sizeof *all), at += s->count[i];
    free(all);
    if (rc == EXIT_OK && asr_machine_select(s->machine, selection, err))
        rc = EXIT_FAIL;
    return rc;
}

void cli_disks_close(struct cli_disks *s)
{
    if (s->keys)
        explicit_bzero(s->keys->passphrase, sizeof s->keys->passphrase);
    asr_machine_free(s->machine);
    for (uint32_t i = 0; i < s->n; i++) {
        asr_volume_infos_free(s->vols[i], s->count[i]);
        asr_disk_close(s->disk[i]);
    }
    *s = (struct cli_disks){0};
}
