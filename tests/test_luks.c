/* LUKS containers (engine/disk/luks.c) made by cryptsetup itself, without device-mapper: a real
 * ext4 filesystem encrypted in place offline (`cryptsetup reencrypt --encrypt`; LUKS1 by
 * `cryptsetup convert` of the result), laid inside a bigger disk file as a partition. The header
 * must read as `cryptsetup luksDump` shows it; the decrypted window must equal the filesystem
 * cryptsetup encrypted, be probed and mapped through; and the ciphertext of only the used blocks
 * with the header area, copied onto garbage, must decrypt to a filesystem that checks clean and
 * holds the same files. Wrong keys, damaged headers and what the module does not handle are
 * refused with one line naming what. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "fsfix.h"
#include "luks.h"
#include "probe.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(luks, .fini = teardown, .timeout = 120);

#define FS_SIZE (24u << 20)
#define REDUCE (8u << 20) /* --reduce-device-size: room for the header, data offset REDUCE / 2 */
#define PART_AT (1u << 20) /* the container's offset in its disk file */
#define PASS "correct horse"
#define FAST "--pbkdf pbkdf2 --pbkdf-force-iterations 1000"
#define TREE "/usr/share/doc/coreutils"

struct vol {
    char *fs, *enc, *disk, *pw;
    uint64_t enc_size;
    struct asr_window part; /* the container as a window of the disk file */
};

/* fs: an ext4 filesystem; enc: it encrypted in place by cryptsetup; disk: enc between 1 MiB of
 * garbage on either side. type "luks1" converts a LUKS2 result (cryptsetup cannot encrypt to LUKS1
 * offline without device-mapper); opts are more options of reencrypt. */
static void make(struct vol *v, const char *type, const char *opts)
{
    fsfix_need("cryptsetup");
    fsfix_need("mkfs.ext4");
    v->fs = scratch_path("fs.img");
    v->enc = scratch_path("enc.img");
    v->disk = scratch_path("disk.img");
    v->pw = scratch_path("pw");
    write_file(v->pw, PASS, strlen(PASS));
    cr_assert_eq(fsfix_sh("truncate -s %u %s && mkfs.ext4 -q -b 4096 -d %s %s", FS_SIZE, v->fs, TREE, v->fs), 0);
    cr_assert_eq(fsfix_sh("cp %s %s && truncate -s +%u %s", v->fs, v->enc, REDUCE, v->enc), 0);
    cr_assert_eq(fsfix_sh("cryptsetup reencrypt -q --encrypt --type luks2 " FAST " --reduce-device-size %u "
                          "--key-file %s %s %s",
                          REDUCE, v->pw, opts, v->enc), 0);
    if (!strcmp(type, "luks1"))
        cr_assert_eq(fsfix_sh("cryptsetup convert -q --type luks1 %s", v->enc), 0);
    v->enc_size = (uint64_t)FS_SIZE + REDUCE;
    cr_assert_eq(fsfix_sh("head -c %u /dev/urandom > %s && cat %s >> %s && head -c %u /dev/urandom >> %s", PART_AT,
                          v->disk, v->enc, v->disk, PART_AT, v->disk), 0);
    v->part = fsfix_window(v->disk, PART_AT, v->enc_size);
}

static void unmake(struct vol *v)
{
    close(v->part.fd);
    free(v->fs), free(v->enc), free(v->disk), free(v->pw);
}

/* A field of `cryptsetup luksDump FILE`: the first word after the first line matching re. */
static char *dump_field(const char *file, const char *re)
{
    char *s = fsfix_sh_out("cryptsetup luksDump %s | awk '/%s/ { sub(/^[^:]*:[ \\t]*/, \"\"); print $1; exit }'", file, re);
    cr_assert(s && *s, "luksDump shows %s", re);
    s[strcspn(s, "\n")] = '\0';
    return s;
}

static void check_header_against_luksdump(const struct vol *v, const struct luks_header *h)
{
    char *uuid = dump_field(v->enc, "^UUID");
    cr_assert_str_eq(h->uuid, uuid);
    free(uuid);
    if (h->version == 2) {
        char *label = dump_field(v->enc, "^Label");
        cr_assert_str_eq(h->label[0] ? h->label : "(no", label);
        free(label);
    }
    char want[80];
    if (h->version == 2) {
        char *off = dump_field(v->enc, "^\\toffset:"), *cipher = dump_field(v->enc, "^\\tcipher:"),
             *sector = dump_field(v->enc, "^\\tsector:");
        cr_assert_eq(h->data_offset, strtoull(off, NULL, 10));
        snprintf(want, sizeof want, "%s-%s", h->cipher, h->mode);
        cr_assert_str_eq(want, cipher);
        cr_assert_eq(h->sector_size, strtoul(sector, NULL, 10));
        free(off), free(cipher), free(sector);
    } else {
        char *off = dump_field(v->enc, "^Payload offset"), *name = dump_field(v->enc, "^Cipher name"),
             *mode = dump_field(v->enc, "^Cipher mode"), *bits = dump_field(v->enc, "^MK bits");
        cr_assert_eq(h->data_offset, strtoull(off, NULL, 10) * 512);
        cr_assert_str_eq(h->cipher, name);
        cr_assert_str_eq(h->mode, mode);
        cr_assert_eq(h->key_size * 8, strtoul(bits, NULL, 10));
        cr_assert_eq(h->sector_size, 512);
        free(off), free(name), free(mode), free(bits);
    }
    cr_assert_eq(h->header_size, h->data_offset);
    cr_assert_eq(h->data_size, v->enc_size - h->data_offset, "the data runs to the end of the partition");
}

struct reader {
    const struct asr_window *w;
    const uint8_t *want;
    int ok;
};

/* Reads the whole volume in odd-sized pieces, comparing each. */
static void *read_all(void *arg)
{
    struct reader *r = arg;
    enum { PIECE = 3 * 4096 + 1000 };
    uint8_t *buf = malloc(PIECE);
    struct asr_error err = {0};
    r->ok = 1;
    for (uint64_t off = 0; off < FS_SIZE && r->ok; off += PIECE) {
        size_t n = FS_SIZE - off < PIECE ? (size_t)(FS_SIZE - off) : PIECE;
        r->ok = asr_window_read(r->w, NULL, off, buf, n, &err) == ASR_OK && !memcmp(buf, r->want + off, n);
    }
    free(buf);
    return NULL;
}

/* The whole round: header, key, decrypted window equal to the filesystem, probe, used map, and
 * the ciphertext of the used blocks alone decrypting to a clean filesystem with the same files. */
static void round_trip(const char *type, const char *opts, int version, const char *mode, uint32_t sector)
{
    struct vol v = {0};
    make(&v, type, opts);
    struct luks_header h;
    struct asr_error err = {0};
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(h.version, version);
    cr_assert_str_eq(h.mode, mode);
    cr_assert_eq(h.sector_size, sector);
    check_header_against_luksdump(&v, &h);

    struct luks_key *key = NULL;
    cr_assert_eq(luks_unlock(&h, PASS, strlen(PASS), &key, &err), ASR_OK, "%s", err.msg);
    struct luks_volume *lv = NULL;
    struct asr_window w;
    cr_assert_eq(luks_volume_open(&v.part, &h, key, "luks-test", &lv, &w, &err), ASR_OK, "%s", err.msg);
    luks_key_free(key);

    /* The plaintext is the filesystem cryptsetup encrypted, whole and in odd cuts. */
    uint8_t *want = malloc(FS_SIZE), *got = malloc(FS_SIZE);
    fsfix_read_at(v.fs, 0, want, FS_SIZE);
    cr_assert_eq(asr_window_read(&w, NULL, 0, got, FS_SIZE, &err), ASR_OK, "%s", err.msg);
    size_t diff = 0;
    while (diff < FS_SIZE && want[diff] == got[diff])
        diff++;
    cr_assert_eq(diff, FS_SIZE, "the decrypted volume is the filesystem that was encrypted (from byte %zu)", diff);
    static const struct { uint64_t off, len; } cuts[] = {{1, 1}, {511, 2}, {4095, 4098}, {12345, 3 * 4096 + 17},
                                                          {FS_SIZE - 1, 1}, {1 << 20, 1 << 20}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        memset(got, 0, cuts[i].len);
        cr_assert_eq(asr_window_read(&w, "a cut", cuts[i].off, got, cuts[i].len, &err), ASR_OK, "%s", err.msg);
        cr_assert(!memcmp(want + cuts[i].off, got, cuts[i].len), "cut %zu", i);
    }
    cr_assert_eq(asr_window_read(&w, "past the end", w.size - 1, got, 2, &err), ASR_E_CORRUPT);
    /* Several threads at once through one volume. */
    struct reader r[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct reader){.w = &w, .want = want};
        cr_assert_eq(pthread_create(&t[i], NULL, read_all, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        cr_assert(r[i].ok, "thread %d read the volume right", i);
    }
    free(want), free(got);

    struct probe p;
    cr_assert_eq(probe_window(&w, NULL, &p), 1, "libblkid sees the filesystem through the decryption");
    cr_assert_str_eq(p.type, "ext4");
    struct asr_usedmap m = {0};
    cr_assert_eq(asr_ext_used(&w, &m, &err), ASR_OK, "%s", err.msg);

    /* The container's header area and the ciphertext of the used sectors, nothing else. */
    struct asr_ranges keep = {0};
    cr_assert_eq(luks_ciphertext_ranges(&h, &m.used, &keep, &err), ASR_OK, "%s", err.msg);
    fsfix_check_ranges(&keep, v.enc_size);
    cr_assert_lt(asr_ranges_bytes(&keep), v.enc_size / 2, "only the used part is kept");
    char *copy = scratch_path("copy.img"), *plain = scratch_path("plain.img"), *out = scratch_path("files");
    fsfix_copy_used(v.enc, 0, &keep, copy, v.enc_size);
    /* Text of a file in the filesystem: in the plaintext, nowhere in what was kept. */
    cr_assert_gt(fsfix_sh_number("grep -c -a 'Free Software Foundation' %s || true", v.fs), 0);
    cr_assert_eq(fsfix_sh_number("grep -c -a 'Free Software Foundation' %s || true", copy), 0, "no plaintext kept");
    asr_ranges_free(&keep);
    asr_usedmap_free(&m);
    luks_volume_free(lv);
    luks_header_free(&h);

    /* The copy needs the passphrase again: it holds no key, and no plaintext. */
    struct asr_window cw = fsfix_window(copy, 0, v.enc_size);
    cr_assert_eq(luks_read_header(&cw, &h, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(luks_unlock_keyfile(&h, v.pw, &key, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(luks_volume_open(&cw, &h, key, "copy", &lv, &w, &err), ASR_OK, "%s", err.msg);
    luks_key_free(key);
    uint8_t *buf = malloc(FS_SIZE);
    cr_assert_eq(asr_window_read(&w, NULL, 0, buf, FS_SIZE, &err), ASR_OK, "%s", err.msg);
    write_file(plain, buf, FS_SIZE);
    free(buf);
    luks_volume_free(lv);
    luks_header_free(&h);
    close(cw.fd);
    cr_assert_eq(fsfix_sh("e2fsck -fn %s", plain), 0, "the filesystem decrypted from the copy checks clean");
    cr_assert_eq(fsfix_sh("mkdir %1$s && debugfs -R 'rdump / %1$s' %2$s >/dev/null 2>&1", out, plain), 0);
    cr_assert_eq(fsfix_sh("rm -rf %1$s/lost+found && diff -r %2$s %1$s", out, TREE), 0, "the same files");
    free(copy), free(plain), free(out);
    unmake(&v);
}

Test(luks, luks2_xts_512) { round_trip("luks2", "--label asr-test", 2, "xts-plain64", 512); }
Test(luks, luks2_xts_4096) { round_trip("luks2", "--sector-size 4096", 2, "xts-plain64", 4096); }
Test(luks, luks2_xts_128bit_key) { round_trip("luks2", "--key-size 256", 2, "xts-plain64", 512); }
/* LUKS2's default key derivation, made cheap (the later options override FAST's). */
Test(luks, luks2_argon2id)
{
    round_trip("luks2", "--pbkdf argon2id --pbkdf-memory 8192 --pbkdf-parallel 1 --pbkdf-force-iterations 4", 2,
               "xts-plain64", 512);
}
Test(luks, luks1_xts) { round_trip("luks1", "", 1, "xts-plain64", 512); }
Test(luks, luks1_cbc_essiv)
{
    round_trip("luks1", "--cipher aes-cbc-essiv:sha256 --key-size 256", 1, "cbc-essiv:sha256", 512);
}
Test(luks, luks2_cbc_essiv_4096)
{
    round_trip("luks2", "--cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 4096", 2, "cbc-essiv:sha256", 4096);
}

static void one_line(const struct asr_error *err, const char *has)
{
    cr_assert(err->msg[0] && !strchr(err->msg, '\n'), "one line: %s", err->msg);
    cr_assert(strstr(err->msg, has), "'%s' names %s", err->msg, has);
    cr_log_info("refused: %s", err->msg);
}

/* Plaintext ranges that share or straddle encryption sectors, at the volume's edges. */
Test(luks, ciphertext_ranges)
{
    struct luks_header h = {.sector_size = 4096, .data_offset = 1 << 20, .header_size = 1 << 20, .data_size = 1 << 24};
    struct asr_ranges used = {0}, out = {0};
    struct asr_error err = {0};
    cr_assert_eq(asr_ranges_add(&used, 0, 1), ASR_OK);
    cr_assert_eq(asr_ranges_add(&used, 100, 10), ASR_OK);           /* the same sector */
    cr_assert_eq(asr_ranges_add(&used, 4000, 200), ASR_OK);         /* straddles into the next */
    cr_assert_eq(asr_ranges_add(&used, 8192 + 10, 1), ASR_OK);      /* the one after: touches */
    cr_assert_eq(asr_ranges_add(&used, 65536, 4096), ASR_OK);       /* aligned */
    cr_assert_eq(asr_ranges_add(&used, (1 << 24) - 1, 1), ASR_OK);  /* the last byte */
    cr_assert_eq(luks_ciphertext_ranges(&h, &used, &out, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(out.n, 3);
    cr_assert(out.v[0].offset == 0 && out.v[0].length == (1 << 20) + 3 * 4096, "header and sectors 0-2");
    cr_assert(out.v[1].offset == (1 << 20) + 65536 && out.v[1].length == 4096);
    cr_assert(out.v[2].offset == (1 << 20) + (1 << 24) - 4096 && out.v[2].length == 4096);
    asr_ranges_free(&out);
    cr_assert_eq(asr_ranges_add(&used, 1 << 24, 1), ASR_OK); /* past the volume */
    cr_assert_eq(luks_ciphertext_ranges(&h, &used, &out, &err), ASR_E_ARG);
    asr_ranges_free(&out);
    asr_ranges_free(&used);
}

Test(luks, wrong_passphrase_gives_no_key)
{
    struct vol v = {0};
    make(&v, "luks2", "");
    struct luks_header h;
    struct asr_error err = {0};
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_OK, "%s", err.msg);
    struct luks_key *key = (struct luks_key *)&h; /* must be cleared */
    cr_assert_eq(luks_unlock(&h, "correct horse!", 14, &key, &err), ASR_E_ARG);
    cr_assert_null(key);
    one_line(&err, "passphrase");
    char *bad = scratch_path("bad-key");
    write_file(bad, PASS "\n", strlen(PASS) + 1); /* a key file is taken whole, newline and all */
    cr_assert_eq(luks_unlock_keyfile(&h, bad, &key, &err), ASR_E_ARG);
    cr_assert_null(key);
    cr_assert_eq(luks_unlock_keyfile(&h, "/nonexistent/key", &key, &err), ASR_E_IO);
    one_line(&err, "/nonexistent/key");
    free(bad);
    luks_header_free(&h);
    unmake(&v);
}

/* Patches bytes of the container inside the disk file. */
static void patch(const struct vol *v, uint64_t off, const void *bytes, size_t n)
{
    fsfix_write_at(v->disk, PART_AT + off, bytes, n);
}

static int read_header_err(const struct vol *v, struct asr_error *err)
{
    struct luks_header h;
    int rc = luks_read_header(&v->part, &h, err);
    if (rc == ASR_OK)
        luks_header_free(&h);
    else
        cr_assert_null(h.priv);
    return rc;
}

Test(luks, damaged_headers)
{
    struct vol v = {0};
    make(&v, "luks2", "");
    struct asr_error err = {0};
    uint8_t orig[65536];
    fsfix_read_at(v.disk, PART_AT, orig, sizeof orig);

    /* The primary's JSON damaged: libcryptsetup takes the secondary copy. */
    patch(&v, 4096 + 100, "#", 1);
    cr_assert_eq(read_header_err(&v, &err), ASR_OK, "%s", err.msg);
    /* Both: the checksums fail. */
    patch(&v, 16384 + 4096 + 100, "#", 1);
    cr_assert_eq(read_header_err(&v, &err), ASR_E_CORRUPT);
    one_line(&err, "checksum");
    one_line(&err, "disk.img at byte 1048576"); /* the partition named by its disk and place */
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);

    /* The primary's magic gone: found through the secondary. */
    patch(&v, 0, "XXXX", 4);
    cr_assert_eq(read_header_err(&v, &err), ASR_OK, "%s", err.msg);
    patch(&v, 16384, "XXXX", 4);
    cr_assert_eq(read_header_err(&v, &err), ASR_E_CORRUPT);
    one_line(&err, "magic");
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);

    /* A huge header size: in the primary, the secondary serves; in both, refused. */
    static const uint8_t huge[8] = {0, 0, 0x10, 0, 0, 0, 0, 0};
    patch(&v, 8, huge, 8);
    cr_assert_eq(read_header_err(&v, &err), ASR_OK, "%s", err.msg);
    patch(&v, 16384 + 8, huge, 8);
    cr_assert_eq(read_header_err(&v, &err), ASR_E_CORRUPT);
    one_line(&err, "header size");
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);
    cr_assert_eq(read_header_err(&v, &err), ASR_OK, "%s", err.msg);

    /* A window too small for the header it holds. */
    struct asr_window small = v.part;
    small.size = 20000;
    struct luks_header h;
    cr_assert_eq(luks_read_header(&small, &h, &err), ASR_E_CORRUPT);
    one_line(&err, "volume");
    unmake(&v);
}

/* Replaces from by to in the JSON of both LUKS2 headers of the container in v (16 KiB each, as
 * cryptsetup makes them) and recomputes their SHA-256 checksums, as cryptsetup would have
 * written such a header: what its tools cannot make offline without device-mapper. */
static void edit_json(const struct vol *v, const char *from, const char *to)
{
    enum { HDR = 16384, BIN = 4096 };
    for (uint64_t at = 0; at <= HDR; at += HDR) {
        uint8_t h[HDR];
        fsfix_read_at(v->disk, PART_AT + at, h, HDR);
        char json[HDR - BIN + 1] = {0}, *hit;
        memcpy(json, h + BIN, HDR - BIN);
        cr_assert((hit = strstr(json, from)), "the JSON holds %s", from);
        size_t head = (size_t)(hit - json), tail = strlen(hit + strlen(from));
        cr_assert_lt(head + strlen(to) + tail, (size_t)(HDR - BIN));
        memset(h + BIN, 0, HDR - BIN);
        memcpy(h + BIN, json, head);
        memcpy(h + BIN + head, to, strlen(to));
        memcpy(h + BIN + head + strlen(to), hit + strlen(from), tail);
        memset(h + 448, 0, 64);
        SHA256(h, HDR, h + 448);
        fsfix_write_at(v->disk, PART_AT + at, h, HDR);
    }
}

Test(luks, luks2_segment_fields)
{
    struct vol v = {0};
    make(&v, "luks2", "");
    struct asr_error err = {0};
    struct luks_header h;
    uint8_t orig[32768];
    fsfix_read_at(v.disk, PART_AT, orig, sizeof orig);

    /* A segment of a fixed size ends there, not at the end of the partition. */
    edit_json(&v, "\"size\":\"dynamic\"", "\"size\":\"20971520\"");
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(h.data_size, 20u << 20);
    struct luks_key *key = NULL;
    struct luks_volume *lv = NULL;
    struct asr_window w;
    cr_assert_eq(luks_unlock(&h, PASS, strlen(PASS), &key, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(luks_volume_open(&v.part, &h, key, "fixed", &lv, &w, &err), ASR_OK, "%s", err.msg);
    luks_key_free(key);
    uint8_t want[4096], got[4096];
    fsfix_read_at(v.fs, (20u << 20) - 4096, want, 4096);
    cr_assert_eq(asr_window_read(&w, NULL, (20u << 20) - 4096, got, 4096, &err), ASR_OK, "%s", err.msg);
    cr_assert(!memcmp(want, got, 4096), "the segment's last sector");
    cr_assert_eq(asr_window_read(&w, "past the segment", 20u << 20, got, 1, &err), ASR_E_CORRUPT);
    luks_volume_free(lv);
    luks_header_free(&h);
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);

    /* One that runs past the partition. */
    edit_json(&v, "\"size\":\"dynamic\"", "\"size\":\"33554432\"");
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_E_CORRUPT);
    one_line(&err, "does not fit");
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);

    /* IVs that do not start at 0. */
    edit_json(&v, "\"iv_tweak\":\"0\"", "\"iv_tweak\":\"8\"");
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_E_UNSUPPORTED, "%s", err.msg);
    one_line(&err, "IV offset");
    fsfix_write_at(v.disk, PART_AT, orig, sizeof orig);

    /* Authenticated encryption (dm-integrity under dm-crypt). */
    edit_json(&v, "\"sector_size\":512}", "\"sector_size\":512,\"integrity\":{\"type\":\"hmac(sha256)\","
                  "\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}}");
    cr_assert_eq(luks_read_header(&v.part, &h, &err), ASR_E_UNSUPPORTED, "%s", err.msg);
    one_line(&err, "integrity");
    unmake(&v);
}

Test(luks, damaged_luks1_header)
{
    struct vol v = {0};
    make(&v, "luks1", "");
    struct asr_error err = {0};
    /* Keyslot 0's stripes made huge: its material would run far past any header. */
    static const uint8_t stripes[4] = {0x7f, 0xff, 0xff, 0xff};
    patch(&v, 208 + 44, stripes, 4);
    cr_assert_eq(read_header_err(&v, &err), ASR_E_LIMIT);
    one_line(&err, "keyslot 0");
    /* The magic gone: nothing to find. */
    patch(&v, 0, "XXXX", 4);
    cr_assert_eq(read_header_err(&v, &err), ASR_E_CORRUPT);
    one_line(&err, "magic");
    unmake(&v);
}

Test(luks, refuses_what_it_does_not_handle)
{
    fsfix_need("cryptsetup");
    char *pw = scratch_path("pw"), *f = scratch_path("other.img"), *hdr = scratch_path("hdr.img");
    write_file(pw, PASS, strlen(PASS));
    struct asr_error err = {0};
    struct luks_header h;

    /* A cipher mode with another IV. */
    cr_assert_eq(fsfix_sh("truncate -s 32M %1$s && cryptsetup luksFormat -q --type luks2 " FAST
                          " --cipher aes-cbc-plain64 --key-size 256 --key-file %2$s %1$s", f, pw), 0);
    struct asr_window w = fsfix_window(f, 0, 32u << 20);
    cr_assert_eq(luks_read_header(&w, &h, &err), ASR_E_UNSUPPORTED, "%s", err.msg);
    one_line(&err, "aes-cbc-plain64");
    close(w.fd);

    /* A header made for a data device of its own. */
    cr_assert_eq(fsfix_sh("truncate -s 16M %1$s && truncate -s 4M %2$s && cryptsetup luksFormat -q --type luks2 " FAST
                          " --header %2$s --key-file %3$s %1$s", f, hdr, pw), 0);
    w = fsfix_window(hdr, 0, fsfix_sh_number("stat -c %%s %s", hdr));
    cr_assert_eq(luks_read_header(&w, &h, &err), ASR_E_UNSUPPORTED, "%s", err.msg);
    one_line(&err, "detached");
    close(w.fd);

    /* Encryption begun and not finished (--init-only stops right after writing the header). */
    cr_assert_eq(fsfix_sh("rm -f %1$s && truncate -s 16M %1$s && cryptsetup reencrypt -q --encrypt --init-only --type luks2 "
                          FAST " --reduce-device-size 8M --key-file %2$s %1$s", f, pw), 0);
    w = fsfix_window(f, 0, 16u << 20);
    cr_assert_eq(luks_read_header(&w, &h, &err), ASR_E_UNSUPPORTED, "%s", err.msg);
    one_line(&err, "reencryption");
    close(w.fd);

    /* Not LUKS at all. */
    cr_assert_eq(fsfix_sh("truncate -s 1M %s.zero", f), 0);
    char *zero = scratch_path("other.img.zero");
    w = fsfix_window(zero, 0, 1u << 20);
    cr_assert_eq(luks_read_header(&w, &h, &err), ASR_E_CORRUPT);
    one_line(&err, "magic");
    one_line(&err, "other.img.zero");
    close(w.fd);
    free(pw), free(f), free(hdr), free(zero);
}
