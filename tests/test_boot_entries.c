/* UEFI boot entries (feature machine): load options parsed and built (format/loadopt.c), the
 * machine record's rules and its hostile bytes (format/machine.c), and the engine's efivarfs side
 * (engine/disk/efivars.c, boot_entries.c) on directories of files in efivarfs format: which
 * entries a backup records, and a restore that makes them exactly once and puts them first in
 * BootOrder. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asr_engine.h"
#include "internal.h"
#include "le.h"

#define GLOBAL "8be4df61-93ca-11d2-aa0d-00e098032b8c"

static const uint8_t esp_guid[16] = {0x4e, 0x6a, 0x6b, 0x3b, 0x2d, 0x1c, 0x5f, 0x4e,
                                     0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b};
static const uint8_t other_guid[16] = {0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33,
                                       0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55};

/* ---- fixtures ------------------------------------------------------------------------------- */

static size_t utf16(uint8_t *p, const char *s)
{
    size_t n = 0;
    for (; *s; s++, n += 2)
        p[n] = (uint8_t)*s, p[n + 1] = 0;
    p[n] = p[n + 1] = 0;
    return n + 2;
}

/* Device path nodes: [PciRoot/Pci when full]/HD(part,start,size,guid)/File(file)/End. */
static size_t make_path(uint8_t *p, bool full, uint32_t part, uint64_t start, uint64_t size, const uint8_t *guid,
                        const char *file)
{
    size_t at = 0;
    if (full) {
        static const uint8_t acpi[12] = {2, 1, 12, 0, 0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0};
        static const uint8_t pci[6] = {1, 1, 6, 0, 0, 0x1f};
        memcpy(p, acpi, 12);
        memcpy(p + 12, pci, 6);
        at = 18;
    }
    uint8_t *h = p + at;
    memset(h, 0, 42);
    h[0] = 4, h[1] = 1, h[2] = 42;
    put_le32(h + 4, part);
    put_le64(h + 8, start);
    put_le64(h + 16, size);
    memcpy(h + 24, guid, 16);
    h[40] = 2, h[41] = 2;
    at += 42;
    size_t fl = 4 + utf16(p + at + 4, file);
    p[at] = 4, p[at + 1] = 4;
    put_le16(p + at + 2, (uint16_t)fl);
    at += fl;
    p[at] = 0x7f, p[at + 1] = 0xff, p[at + 2] = 4, p[at + 3] = 0;
    return at + 4;
}

static size_t make_option(uint8_t *out, uint32_t attrs, const char *desc, const uint8_t *path, size_t plen,
                          const uint8_t *opt, size_t olen)
{
    put_le32(out, attrs);
    put_le16(out + 4, (uint16_t)plen);
    size_t at = 6 + utf16(out + 6, desc);
    memcpy(out + at, path, plen);
    if (olen)
        memcpy(out + at + plen, opt, olen);
    return at + plen + olen;
}

static size_t esp_option(uint8_t *out, const char *desc, bool full)
{
    uint8_t path[256];
    size_t plen = make_path(path, full, 1, 2048, 16384, esp_guid, "\\EFI\\debian\\shimx64.efi");
    return make_option(out, 1, desc, path, plen, NULL, 0);
}

static char *temp_dir(void)
{
    char *d = strdup("/tmp/asrimg-efivars-XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

static void remove_dir(char *d)
{
    DIR *dir = opendir(d);
    struct dirent *de;
    char p[4096];
    while (dir && (de = readdir(dir)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", d, de->d_name);
            unlink(p);
        }
    if (dir)
        closedir(dir);
    rmdir(d);
    free(d);
}

static void put_file(const char *dir, const char *name, const uint8_t *bytes, size_t n)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s-" GLOBAL, dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void put_var(const char *dir, const char *name, const uint8_t *data, size_t n)
{
    uint8_t buf[4096];
    put_le32(buf, 7);
    memcpy(buf + 4, data, n);
    put_file(dir, name, buf, 4 + n);
}

static void put_order(const char *dir, const uint16_t *v, size_t n)
{
    uint8_t b[64];
    for (size_t i = 0; i < n; i++)
        put_le16(b + 2 * i, v[i]);
    put_var(dir, "BootOrder", b, 2 * n);
}

static size_t get_order(const char *dir, uint16_t *v)
{
    uint8_t b[2048];
    size_t len;
    uint32_t attrs;
    bool found;
    struct asr_error err = {0};
    cr_assert_eq(asr_efivar_read(dir, "BootOrder", &attrs, b, sizeof b, &len, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(attrs, 7);
    for (size_t i = 0; i < len / 2; i++)
        v[i] = get_le16(b + 2 * i);
    return len / 2;
}

static size_t count_boot_vars(const char *dir)
{
    uint16_t n[64];
    size_t c;
    struct asr_error err = {0};
    cr_assert_eq(asr_efivar_list_boot(dir, n, 64, &c, &err), ASR_OK, "%s", err.msg);
    return c;
}

/* The image disk: GPT, the ESP as partition 1 (LBA 2048, 16384 sectors), root as partition 2. */
static struct asr_partition_desc parts[2];
static struct asr_disk_desc disk;

static void make_disk(uint64_t esp_start, const uint8_t *guid)
{
    memset(parts, 0, sizeof parts);
    parts[0] = (struct asr_partition_desc){.number = 1, .start_bytes = esp_start, .size_bytes = 16384 * 512ull};
    memcpy(parts[0].part_guid, guid, 16);
    parts[1] = (struct asr_partition_desc){.number = 2, .start_bytes = 20 << 20, .size_bytes = 20 << 20};
    parts[1].part_guid[0] = 0x77;
    disk = (struct asr_disk_desc){.size_bytes = 64 << 20, .logical_sector = 512, .physical_sector = 512,
                                  .label = ASR_LABEL_GPT, .partition_count = 2, .partitions = parts};
    snprintf(disk.source, sizeof disk.source, "target");
}

/* ---- load options ------------------------------------------------------------------------------ */

Test(loadopt, parse_and_build_round_trip)
{
    uint8_t path[256], opt[2048], built[2048];
    static const uint8_t extra[5] = {1, 2, 3, 4, 5};
    size_t plen = make_path(path, true, 1, 2048, 16384, esp_guid, "\\EFI\\debian\\grubx64.efi");
    size_t n = make_option(opt, 1, "debian", path, plen, extra, sizeof extra);
    struct asr_load_option o;
    struct asr_error err = {0};
    cr_assert_eq(asr_load_option_parse(opt, n, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(o.description, "debian");
    cr_assert_eq(o.attributes, 1);
    cr_assert(o.has_hd);
    cr_assert_eq(o.hd.partition, 1);
    cr_assert_eq(o.hd.start_lba, 2048);
    cr_assert_eq(o.hd.size_lba, 16384);
    cr_assert_eq(memcmp(o.hd.guid, esp_guid, 16), 0);
    cr_assert_eq(o.file_at, 18 + 42);
    cr_assert_eq(o.optional_len, 5);
    char text[512];
    asr_efi_path_text(o.path, o.path_len, text, sizeof text);
    cr_assert(strstr(text, "HD(1,GPT,3b6b6a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b,0x800,0x4000)/File(\\EFI\\debian\\grubx64.efi)"),
              "%s", text);

    /* Rebuilt in the short form on another partition: the same description, file and data. */
    struct asr_hd_node hd = {.partition = 3, .start_lba = 4096, .size_lba = 1000};
    memcpy(hd.guid, other_guid, 16);
    size_t blen;
    cr_assert_eq(asr_load_option_build(o.attributes, o.desc, o.desc_len, &hd, o.path + o.file_at, o.file_len,
                                       o.optional, o.optional_len, built, sizeof built, &blen, &err),
                 ASR_OK, "%s", err.msg);
    struct asr_load_option b;
    cr_assert_eq(asr_load_option_parse(built, blen, &b, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(b.description, "debian");
    cr_assert_eq(b.hd.partition, 3);
    cr_assert_eq(b.hd.start_lba, 4096);
    cr_assert_eq(b.hd.size_lba, 1000);
    cr_assert_eq(memcmp(b.hd.guid, other_guid, 16), 0);
    cr_assert_eq(b.file_at, 42);
    cr_assert_eq(b.file_len, o.file_len);
    cr_assert_eq(memcmp(b.path + b.file_at, o.path + o.file_at, o.file_len), 0);
    cr_assert_eq(b.optional_len, 5);
    cr_assert_eq(memcmp(b.optional, extra, 5), 0);
    cr_assert_eq(blen, n - 18, "the short form drops the 18 bytes of PciRoot/Pci");
    /* And built exactly as the specification lays it out (what make_option writes by hand). */
    uint8_t spath[256], sopt[2048];
    size_t splen = make_path(spath, false, 3, 4096, 1000, other_guid, "\\EFI\\debian\\grubx64.efi");
    size_t sn = make_option(sopt, 1, "debian", spath, splen, extra, sizeof extra);
    cr_assert_eq(blen, sn);
    cr_assert_eq(memcmp(built, sopt, sn), 0);
}

Test(loadopt, hostile_bytes_are_refused)
{
    uint8_t opt[2048];
    size_t n = esp_option(opt, "debian", false);
    struct asr_load_option o;
    struct asr_error err = {0};
    /* Every truncation fails cleanly (ASan watches the reads). */
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k + 1);
        memcpy(cut, opt, k);
        cr_assert_neq(asr_load_option_parse(cut, k, &o, &err), ASR_OK, "accepted %zu of %zu bytes", k, n);
        free(cut);
    }
    uint8_t bad[2048];
    size_t desc_end = 6 + 14; /* "debian" and its NUL */
    /* a device path length past the end */
    memcpy(bad, opt, n);
    put_le16(bad + 4, (uint16_t)(n));
    cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_E_CORRUPT);
    /* a node of length 0, 2, and one running past the list */
    static const uint16_t lens[] = {0, 2, 500};
    for (size_t i = 0; i < 3; i++) {
        memcpy(bad, opt, n);
        put_le16(bad + desc_end + 2, lens[i]);
        cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_E_CORRUPT, "node length %u", lens[i]);
        cr_assert(strstr(err.msg, "out of range"), "node length %u: %s", lens[i], err.msg);
    }
    /* an HD() node cut by the end of the list (and of the option): never read past either */
    {
        size_t at = desc_end, cut = at + 8;
        uint8_t *exact = malloc(cut);
        memcpy(exact, opt, cut);
        put_le16(exact + 4, 8);
        cr_assert_eq(asr_load_option_parse(exact, cut, &o, &err), ASR_E_CORRUPT);
        cr_assert(strstr(err.msg, "length 42 out of range"), "%s", err.msg);
        free(exact);
    }
    /* an End Entire node before the end of the list */
    memcpy(bad, opt, n);
    bad[desc_end + 42] = 0x7f, bad[desc_end + 43] = 0xff;
    cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_E_CORRUPT);
    /* no End node at all */
    memcpy(bad, opt, n);
    bad[n - 4] = 4, bad[n - 3] = 4;
    cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_E_CORRUPT);
    /* an HD() node of the wrong size */
    memcpy(bad, opt, n);
    put_le16(bad + desc_end + 2, 40);
    cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_E_CORRUPT);
    /* a description without its NUL: every byte a character */
    memset(bad, 'A', sizeof bad);
    cr_assert_eq(asr_load_option_parse(bad, 200, &o, &err), ASR_E_CORRUPT);
    /* larger than the record keeps */
    cr_assert_eq(asr_load_option_parse(bad, ASR_LOAD_OPTION_MAX + 1, &o, &err), ASR_E_CORRUPT);
    /* an MBR-signature HD() is no GPT partition: parsed, but names none */
    memcpy(bad, opt, n);
    bad[desc_end + 40] = 1, bad[desc_end + 41] = 1;
    cr_assert_eq(asr_load_option_parse(bad, n, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert(!o.has_hd);
    /* random bytes never crash the parser */
    srand(7);
    for (int t = 0; t < 20000; t++) {
        size_t len = (size_t)(rand() % 200);
        for (size_t i = 0; i < len; i++)
            bad[i] = (uint8_t)(rand() % 4 == 0 ? 0 : rand());
        if (len > 6)
            put_le16(bad + 4, (uint16_t)(rand() % 64));
        (void)asr_load_option_parse(bad, len, &o, &err);
    }
}

Test(loadopt, description_shown_safely)
{
    uint8_t opt[2048], path[256];
    size_t plen = make_path(path, false, 1, 2048, 16384, esp_guid, "\\a.efi");
    /* a control character and an unpaired surrogate show as '?', a pair as its character */
    uint8_t desc[] = {'O', 0, 0x07, 0, 0x00, 0xd8, 'K', 0, 0x3d, 0xd8, 0x00, 0xde, 0, 0};
    put_le32(opt, 1);
    put_le16(opt + 4, (uint16_t)plen);
    memcpy(opt + 6, desc, sizeof desc);
    memcpy(opt + 6 + sizeof desc, path, plen);
    struct asr_load_option o;
    struct asr_error err = {0};
    cr_assert_eq(asr_load_option_parse(opt, 6 + sizeof desc + plen, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(o.description, "O??K\xf0\x9f\x98\x80");
}

/* libefivar mangles File() names it cannot convert (fuzz_loadopt: a non-ASCII name with bytes after
 * its NUL made it memcpy a negative size), so such a path is shown by its size, never passed on. */
Test(loadopt, unusual_file_names_shown_by_size)
{
    uint8_t path[256];
    char text[512], by_size[64];
    size_t plen = make_path(path, false, 1, 2048, 16384, esp_guid, "\\EFI\\x.efi");
    snprintf(by_size, sizeof by_size, "(a %zu-byte device path)", plen);
    size_t name = 42 + 4; /* the File() node's first UCS-2 unit */
    asr_efi_path_text(path, (uint32_t)plen, text, sizeof text);
    cr_assert(strstr(text, "File(\\EFI\\x.efi)"), "%s", text);

    put_le16(path + name + 2, 0x555c); /* a CJK character */
    asr_efi_path_text(path, (uint32_t)plen, text, sizeof text);
    cr_assert_str_eq(text, by_size);

    make_path(path, false, 1, 2048, 16384, esp_guid, "\\EFI\\x.efi");
    put_le16(path + name + 8, 0); /* a NUL in place of the second backslash, "x.efi" still after it */
    asr_efi_path_text(path, (uint32_t)plen, text, sizeof text);
    cr_assert_str_eq(text, by_size);
}

/* ---- the machine record ------------------------------------------------------------------------ */

static struct asr_machine_desc *one_entry_machine(void)
{
    struct asr_machine_desc *m = calloc(1, sizeof *m);
    snprintf(m->hostname, sizeof m->hostname, "pc1");
    m->firmware = ASR_FIRMWARE_UEFI;
    m->boot_order_count = 2;
    m->boot_order[0] = 4, m->boot_order[1] = 0;
    m->entry_count = 1;
    m->entries[0].number = 4;
    m->entries[0].partition = 1;
    m->entries[0].load_option_len = (uint32_t)esp_option(m->entries[0].load_option, "debian", false);
    return m;
}

Test(machine, rules)
{
    make_disk(1 << 20, esp_guid);
    struct asr_machine_desc *m = one_entry_machine();
    struct asr_error err = {0};
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_OK, "%s", err.msg);
    m->entries[0].partition = 2; /* the HD() GUID is partition 1's */
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "Boot0004"), "%s", err.msg);
    m->entries[0].partition = 1;
    m->entries[0].disk = 1;
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_E_CORRUPT);
    m->entries[0].disk = 0;
    m->firmware = ASR_FIRMWARE_BIOS;
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_E_CORRUPT, "entries without UEFI");
    m->firmware = 7;
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_E_CORRUPT);
    m->firmware = ASR_FIRMWARE_UEFI;
    m->entries[1] = m->entries[0];
    m->entry_count = 2;
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_E_CORRUPT, "one number twice");
    free(m);
}

Test(machine, hostile_record_bytes)
{
    make_disk(1 << 20, esp_guid);
    struct asr_machine_desc *m = one_entry_machine(), *back = calloc(1, sizeof *back);
    struct fmt_buf b = {0};
    cr_assert_eq(fmt_machine_encode(m, &b), 0);
    struct asr_error err = {0};
    cr_assert_eq(fmt_machine_decode(b.data, b.len, back, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(back->hostname, "pc1");
    cr_assert_eq(back->entries[0].load_option_len, m->entries[0].load_option_len);
    /* later fields may follow the record in the header: room after it is fine */
    uint8_t *more = calloc(1, b.len + 8);
    memcpy(more, b.data, b.len);
    cr_assert_eq(fmt_machine_decode(more, b.len + 8, back, &err), ASR_OK, "%s", err.msg);
    /* every truncation, and every record_len that disagrees with the fields, is refused */
    for (size_t k = 0; k < b.len; k++)
        cr_assert_neq(fmt_machine_decode(b.data, k, back, &err), ASR_OK, "accepted %zu of %zu bytes", k, b.len);
    put_le32(more, (uint32_t)b.len + 4);
    cr_assert_eq(fmt_machine_decode(more, b.len + 8, back, &err), ASR_E_CORRUPT, "bytes after the last entry");
    memcpy(more, b.data, b.len);
    more[5] = 1;
    cr_assert_eq(fmt_machine_decode(more, b.len, back, &err), ASR_E_CORRUPT, "reserved byte");
    memcpy(more, b.data, b.len);
    put_le16(more + 8, 17);
    cr_assert_eq(fmt_machine_decode(more, b.len, back, &err), ASR_E_CORRUPT, "17 entries");
    memcpy(more, b.data, b.len);
    put_le16(more + 6, 1025);
    cr_assert_eq(fmt_machine_decode(more, b.len, back, &err), ASR_E_CORRUPT, "1025 BootOrder numbers");
    /* a load option length past the cap */
    memcpy(more, b.data, b.len);
    size_t entry = 16 + 2 + 3 + 4;
    put_le32(more + entry + 12, ASR_LOAD_OPTION_MAX + 1);
    cr_assert_eq(fmt_machine_decode(more, b.len, back, &err), ASR_E_CORRUPT);
    free(more);
    fmt_buf_free(&b);
    free(back);
    free(m);
}

/* The writer checks the record against the disks before it writes, and an image with a record
 * that breaks a rule (written by a test's unchecked writer) is refused by the reader. */
Test(machine, writer_and_reader_enforce_rules)
{
    make_disk(1 << 20, esp_guid);
    char path[] = "/tmp/asrimg-machine-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct asr_machine_desc *m = one_entry_machine();
    m->entries[0].partition = 2;
    static uint8_t region[512];
    (void)region;
    struct asr_disk_desc d = {.size_bytes = 1 << 20, .logical_sector = 512, .physical_sector = 512};
    snprintf(d.source, sizeof d.source, "d");
    struct asr_writer_options o = {.overwrite = true};
    struct asr_writer *w;
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_disk(w, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_set_machine(w, m, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_E_ARG, "a disk without a GPT cannot hold the entry");
    asr_writer_free(w);

    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    fmt_writer_unchecked_layout(w);
    cr_assert_eq(asr_writer_add_disk(w, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_set_machine(w, m, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "machine record"), "%s", err.msg);
    struct asr_verify_report rep;
    cr_assert_neq(asr_verify(path, NULL, NULL, NULL, NULL, &rep, &err), ASR_OK);

    /* without the record's bit the same bytes are somebody's later field: ignored */
    m->entry_count = 0;
    m->boot_order_count = 0;
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_disk(w, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_set_machine(w, m, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(asr_reader_hostname(r), "pc1");
    cr_assert_eq(asr_reader_machine(r)->firmware, ASR_FIRMWARE_UEFI);
    asr_reader_free(r);
    unlink(path);
    free(m);
}

/* ---- efivarfs: what a backup records ----------------------------------------------------------- */

Test(efivars, collect_matches_by_partition_guid)
{
    char *dir = temp_dir();
    make_disk(1 << 20, esp_guid);
    uint8_t opt[2048], path[256];
    size_t n = esp_option(opt, "debian", true); /* the full form firmware writes */
    put_var(dir, "Boot0002", opt, n);
    size_t plen = make_path(path, false, 1, 2048, 100, other_guid, "\\EFI\\Microsoft\\Boot\\bootmgfw.efi");
    n = make_option(opt, 1, "Windows Boot Manager", path, plen, NULL, 0);
    put_var(dir, "Boot0000", opt, n);
    static const uint8_t shell[] = {4, 7, 20, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x7f, 0xff, 4, 0};
    n = make_option(opt, 1, "UEFI Shell", shell, sizeof shell, NULL, 0);
    put_var(dir, "Boot0001", opt, n);
    put_var(dir, "Boot0003x", opt, n);       /* not a Boot#### name */
    put_var(dir, "Bootabcd", opt, n);        /* lower-case digits are not the spec's */
    uint16_t order[] = {0, 2, 1};
    put_order(dir, order, 3);
    const struct asr_disk_desc *disks[1] = {&disk};
    struct asr_machine_desc *m = calloc(1, sizeof *m);
    char notes[1024];
    struct asr_error err = {0};
    cr_assert_eq(asr_boot_entries_collect(dir, disks, 1, m, notes, sizeof notes, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(m->entry_count, 1);
    cr_assert_eq(m->entries[0].number, 2);
    cr_assert_eq(m->entries[0].disk, 0);
    cr_assert_eq(m->entries[0].partition, 1);
    cr_assert_eq(m->boot_order_count, 3);
    cr_assert_eq(m->boot_order[1], 2);
    cr_assert_str_eq(notes, "");
    m->firmware = ASR_FIRMWARE_UEFI;
    cr_assert_eq(asr_machine_valid(m, &disk, 1, &err), ASR_OK, "%s", err.msg);
    free(m);
    remove_dir(dir);
}

Test(efivars, hostile_files_are_left_out)
{
    char *dir = temp_dir();
    make_disk(1 << 20, esp_guid);
    uint8_t opt[2048];
    size_t n = esp_option(opt, "good", false);
    put_var(dir, "Boot0005", opt, n);
    static const uint8_t two[2] = {7, 0};
    put_file(dir, "Boot0001", two, 2); /* shorter than its attributes */
    uint8_t big[ASR_LOAD_OPTION_MAX + 64];
    memset(big, 0, sizeof big);
    memcpy(big, opt, n);
    put_var(dir, "Boot0002", big, ASR_LOAD_OPTION_MAX + 1); /* over the cap */
    memcpy(big, opt, n);
    put_le16(big + 4, 0xffff); /* a path length past the end */
    put_var(dir, "Boot0003", big, n);
    const struct asr_disk_desc *disks[1] = {&disk};
    struct asr_machine_desc *m = calloc(1, sizeof *m);
    char notes[1024];
    struct asr_error err = {0};
    cr_assert_eq(asr_boot_entries_collect(dir, disks, 1, m, notes, sizeof notes, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(m->entry_count, 1);
    cr_assert_eq(m->entries[0].number, 5);
    cr_assert(strstr(notes, "Boot0003: left out"), "%s", notes);
    /* a BootOrder of odd length is refused, not half read */
    static const uint8_t odd[3] = {1, 0, 2};
    put_var(dir, "BootOrder", odd, 3);
    cr_assert_eq(asr_boot_entries_collect(dir, disks, 1, m, notes, sizeof notes, &err), ASR_E_CORRUPT);
    cr_assert(strstr(err.msg, "BootOrder"), "%s", err.msg);
    /* more than the record keeps: the first 16, the rest named */
    uint8_t even[2] = {1, 0};
    put_var(dir, "BootOrder", even, 2);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "Boot%04X", 0x100 + i);
        put_var(dir, name, opt, n);
    }
    cr_assert_eq(asr_boot_entries_collect(dir, disks, 1, m, notes, sizeof notes, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(m->entry_count, ASR_MAX_BOOT_ENTRIES);
    cr_assert(strstr(notes, "keeps 16 entries"), "%s", notes);
    free(m);
    remove_dir(dir);
}

/* ---- efivarfs: what a restore makes ------------------------------------------------------------ */

static struct asr_machine_desc *recorded(void)
{
    /* as a backup recorded them: Boot0002 (ESP) second in BootOrder after 0000 */
    struct asr_machine_desc *m = calloc(1, sizeof *m);
    m->firmware = ASR_FIRMWARE_UEFI;
    m->entry_count = 1;
    m->entries[0].number = 2;
    m->entries[0].partition = 1;
    m->entries[0].load_option_len = (uint32_t)esp_option(m->entries[0].load_option, "debian", true);
    m->boot_order_count = 2;
    m->boot_order[0] = 0, m->boot_order[1] = 2;
    return m;
}

static int restore_run(const char *dir, const struct asr_machine_desc *m, struct asr_boot_restored *out,
                       bool *changed)
{
    const struct asr_disk_desc *targets[1] = {&disk};
    uint32_t count;
    struct asr_error err = {0};
    int rc = asr_boot_entries_restore(dir, m, targets, 1, out, &count, changed, &err);
    cr_assert_eq(rc, ASR_OK, "%s", err.msg);
    cr_assert_eq(count, m->entry_count);
    return rc;
}

Test(efivars, restore_exactly_once_first_in_boot_order)
{
    char *dir = temp_dir();
    /* The new machine: its own entries 0000 and 0001 (not ours), BootOrder 0001, 0000. */
    uint8_t opt[2048], path[256];
    size_t plen = make_path(path, false, 1, 34, 100, other_guid, "\\EFI\\other.efi");
    size_t n = make_option(opt, 1, "other disk", path, plen, NULL, 0);
    put_var(dir, "Boot0000", opt, n);
    put_var(dir, "Boot0001", opt, n);
    uint16_t order[] = {1, 0};
    put_order(dir, order, 2);
    /* The restored ESP: a GUID of its own (--new-ids) and a new place (another layout). */
    static const uint8_t new_guid[16] = {0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    make_disk(4 << 20, new_guid);
    struct asr_machine_desc *m = recorded();
    struct asr_boot_restored out[ASR_MAX_BOOT_ENTRIES];
    bool changed;
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_CREATED);
    cr_assert_eq(out[0].number, 2, "the lowest free number");
    cr_assert(changed);
    cr_assert_eq(count_boot_vars(dir), 3);
    uint16_t now[16];
    cr_assert_eq(get_order(dir, now), 3);
    cr_assert_eq(now[0], 2);
    cr_assert_eq(now[1], 1);
    cr_assert_eq(now[2], 0);
    /* the entry: short-form HD() of the restored partition, the recorded file */
    uint8_t got[2048];
    size_t len;
    uint32_t attrs;
    bool found;
    struct asr_error err = {0};
    cr_assert_eq(asr_efivar_read(dir, "Boot0002", &attrs, got, sizeof got, &len, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(attrs, 7);
    uint8_t want[2048], wpath[256];
    size_t wplen = make_path(wpath, false, 1, (4 << 20) / 512, 16384, new_guid, "\\EFI\\debian\\shimx64.efi");
    size_t wn = make_option(want, 1, "debian", wpath, wplen, NULL, 0);
    cr_assert_eq(len, wn);
    cr_assert_eq(memcmp(got, want, wn), 0);

    /* Again: nothing new, nothing rewritten, BootOrder as it is. */
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_KEPT);
    cr_assert_eq(out[0].number, 2);
    cr_assert(!changed);
    cr_assert_eq(count_boot_vars(dir), 3);
    cr_assert_eq(get_order(dir, now), 3);
    cr_assert_eq(now[0], 2);

    /* The firmware expanded our entry to its full form and moved it down BootOrder: it is still
     * ours (same partition GUID and file), reused, and put first again. */
    uint8_t full[2048];
    size_t fplen = make_path(path, true, 1, (4 << 20) / 512, 16384, new_guid, "\\EFI\\debian\\shimx64.efi");
    size_t fn = make_option(full, 1, "debian", path, fplen, NULL, 0);
    put_var(dir, "Boot0002", full, fn);
    uint16_t moved[] = {1, 0, 2};
    put_order(dir, moved, 3);
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_KEPT);
    cr_assert(changed);
    cr_assert_eq(count_boot_vars(dir), 3);
    cr_assert_eq(get_order(dir, now), 3);
    cr_assert_eq(now[0], 2);
    cr_assert_eq(now[1], 1);
    cr_assert_eq(now[2], 0);

    /* Renamed by somebody: the description is put back, in place. */
    fn = make_option(full, 1, "renamed", path, fplen, NULL, 0);
    put_var(dir, "Boot0002", full, fn);
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_UPDATED);
    cr_assert_eq(out[0].number, 2);
    cr_assert_eq(count_boot_vars(dir), 3);
    cr_assert_eq(asr_efivar_read(dir, "Boot0002", &attrs, got, sizeof got, &len, &found, &err), ASR_OK, "%s", err.msg);
    struct asr_load_option o;
    cr_assert_eq(asr_load_option_parse(got, len, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(o.description, "debian");
    free(m);
    remove_dir(dir);
}

Test(efivars, restore_onto_a_machine_without_boot_order)
{
    char *dir = temp_dir();
    make_disk(1 << 20, esp_guid);
    struct asr_machine_desc *m = recorded();
    /* two recorded entries for the same file: one variable, once in BootOrder */
    m->entries[1] = m->entries[0];
    m->entries[1].number = 7;
    m->entry_count = 2;
    struct asr_boot_restored out[ASR_MAX_BOOT_ENTRIES];
    bool changed;
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_CREATED);
    cr_assert_eq(out[1].action, ASR_BOOT_KEPT);
    cr_assert_eq(out[0].number, out[1].number);
    cr_assert_eq(count_boot_vars(dir), 1);
    uint16_t now[16];
    cr_assert_eq(get_order(dir, now), 1);
    cr_assert_eq(now[0], out[0].number);
    free(m);
    remove_dir(dir);
}

Test(efivars, restore_says_why_an_entry_is_not_made)
{
    char *dir = temp_dir();
    make_disk(1 << 20, esp_guid);
    parts[0].number = 9; /* the restored disk has no partition 1 */
    struct asr_machine_desc *m = recorded();
    struct asr_boot_restored out[ASR_MAX_BOOT_ENTRIES];
    bool changed;
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_NOT_MADE);
    cr_assert(strstr(out[0].why, "no GPT partition 1"), "%s", out[0].why);
    cr_assert_eq(count_boot_vars(dir), 0);
    free(m);
    remove_dir(dir);
}

/* A variable of the new machine that does not parse is somebody else's: left as it is, and its
 * number never taken for ours. */
Test(efivars, restore_leaves_unparsable_entries_alone)
{
    char *dir = temp_dir();
    make_disk(1 << 20, esp_guid);
    static const uint8_t junk[9] = {1, 0, 0, 0, 0xff, 0xff, 'x', 0, 0};
    put_var(dir, "Boot0000", junk, sizeof junk);
    struct asr_machine_desc *m = recorded();
    struct asr_boot_restored out[ASR_MAX_BOOT_ENTRIES];
    bool changed;
    restore_run(dir, m, out, &changed);
    cr_assert_eq(out[0].action, ASR_BOOT_CREATED);
    cr_assert_eq(out[0].number, 1);
    uint8_t got[64];
    size_t len;
    uint32_t attrs;
    bool found;
    struct asr_error err = {0};
    cr_assert_eq(asr_efivar_read(dir, "Boot0000", &attrs, got, sizeof got, &len, &found, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(len, sizeof junk);
    cr_assert_eq(memcmp(got, junk, sizeof junk), 0);
    free(m);
    remove_dir(dir);
}

/* A variable that cannot be written says which and why; nothing is left half made. */
Test(efivars, write_failure_is_named)
{
    char *dir = temp_dir();
    char gone[4200];
    snprintf(gone, sizeof gone, "%s/not-there", dir);
    static const uint8_t data[2] = {1, 0};
    struct asr_error err = {0};
    cr_assert_eq(asr_efivar_write(gone, "BootOrder", 7, data, 2, &err), ASR_E_IO);
    cr_assert(strstr(err.msg, "not-there/BootOrder-" GLOBAL), "%s", err.msg);
    make_disk(1 << 20, esp_guid);
    struct asr_machine_desc *m = recorded();
    struct asr_boot_restored out[ASR_MAX_BOOT_ENTRIES];
    const struct asr_disk_desc *targets[1] = {&disk};
    uint32_t count;
    bool changed;
    cr_assert_neq(asr_boot_entries_restore(gone, m, targets, 1, out, &count, &changed, &err), ASR_OK);
    cr_assert_eq(count_boot_vars(dir), 0);
    free(m);
    remove_dir(dir);
}
