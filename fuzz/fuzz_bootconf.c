/* libFuzzer harness for the boot configuration parsers (engine/analyze/bootconf.c): the first
 * byte picks the file kind (fstab, crypttab, mdadm.conf, kernel command line, grub.cfg, loader
 * entry), the rest is its text. Every spec the parsers stored is parsed again and matched, and
 * every stored string must be terminated within its field. replay.c can replay a corpus. */
#include "bootconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*parser)(struct bootconf *, const char *, size_t, struct asr_error *);

static const parser parsers[] = {bootconf_fstab, bootconf_crypttab,   bootconf_mdadm,
                                 bootconf_cmdline, bootconf_grub, bootconf_loader_entry};

static void check_str(const char *s)
{
    if (!memchr(s, '\0', BOOTCONF_STR))
        abort();
}

static void check_spec(const struct bootspec *s)
{
    check_str(s->value);
    check_str(s->lv);
    check_str(s->dm);
    struct bootvol_ids v = {.fs_uuid = s->value, .fs_label = s->value, .part_uuid = s->value,
                            .part_label = s->value, .lv_vg = s->value, .lv_name = s->lv,
                            .md_uuid = s->value, .md_name = s->value, .md_dev = s->value,
                            .dm_name = s->dm[0] ? s->dm : s->value, .kernel_name = s->value};
    /* A spec names the volume whose identities are its own values. */
    bool fits = s->kind != BOOTSPEC_NONE && s->kind != BOOTSPEC_FILE && s->kind != BOOTSPEC_OTHER;
    if (fits && !bootspec_match(s, &v))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct bootconf *bc = calloc(1, sizeof *bc);
    if (!bc)
        return 0;
    struct asr_error err = {0};
    int rc = parsers[data[0] % (sizeof parsers / sizeof parsers[0])](
        bc, (const char *)data + 1, size - 1, &err);
    if (rc && !err.msg[0])
        abort(); /* every refusal says why */
    if (bc->n_mounts > BOOTCONF_MAX_ENTRIES || bc->n_crypts > BOOTCONF_MAX_ENTRIES ||
        bc->n_arrays > BOOTCONF_MAX_ENTRIES)
        abort();
    for (size_t i = 0; i < bc->n_mounts; i++) {
        check_str(bc->mounts[i].target);
        check_str(bc->mounts[i].why);
        check_spec(&bc->mounts[i].spec);
    }
    for (size_t i = 0; i < bc->n_crypts; i++)
        check_spec(&bc->crypts[i].spec);
    for (size_t i = 0; i < bc->n_arrays; i++)
        check_spec(&bc->arrays[i].spec);
    const struct bootcmdline *k = &bc->cmdline;
    if (k->have_root)
        check_spec(&k->root);
    if (k->have_resume)
        check_spec(&k->resume);
    for (size_t i = 0; i < k->n_lvs; i++)
        check_spec(&k->lvs[i]);
    for (size_t i = 0; i < k->n_luks; i++)
        check_spec(&k->luks[i]);
    for (size_t i = 0; i < k->n_mds; i++)
        check_spec(&k->mds[i]);
    free(bc);
    return 0;
}
