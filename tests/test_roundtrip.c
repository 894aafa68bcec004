/* Round trips through the container: every layout field, every extent kind, chunk reads,
 * random-access volume reads, pipes, split sets, and the writer's refusals and the files it
 * creates, replaces and removes. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(roundtrip, .fini = teardown);

/* Every byte of every volume reads back as the builder wrote it, in pieces of awkward sizes. */
static void check_volumes(struct asr_reader *r, const struct sample_opts *o)
{
    uint64_t s = sample_volume_size(o);
    uint8_t *buf = malloc(s);
    cr_assert_eq(asr_reader_volume_count(r), 3);
    for (uint32_t v = 0; v < 3; v++) {
        struct asr_error err = {0};
        const size_t steps[] = {s, 4097, 100, 65536 + 3};
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            for (uint64_t off = 0; off < s; off += steps[k]) {
                size_t n = s - off < steps[k] ? (size_t)(s - off) : steps[k];
                int rc = asr_reader_read_volume(r, v, off, buf, n, &err);
                int any_unreadable = 0, unr;
                for (size_t i = 0; i < n; i++) {
                    int want = sample_expected(v, off + i, &unr);
                    any_unreadable |= unr;
                    if (buf[i] != want)
                        cr_assert_fail("volume %u byte %llu: got %u want %d", v, (unsigned long long)(off + i), buf[i], want);
                }
                cr_assert_eq(rc, any_unreadable ? ASR_E_UNREADABLE : ASR_OK, "volume %u at %llu: %s", v,
                             (unsigned long long)off, err.msg);
            }
        }
    }
    free(buf);
}

static void check_layout(struct asr_reader *r)
{
    cr_assert_eq(asr_reader_disk_count(r), 2);
    const struct asr_disk_desc *g = asr_reader_disk(r, 0), *m = asr_reader_disk(r, 1);
    cr_assert_str_eq(g->source, "/dev/loop-gpt");
    cr_assert_eq(g->label, ASR_LABEL_GPT);
    cr_assert_eq(g->physical_sector, 4096);
    cr_assert_eq(g->gpt_entry_count, 128);
    cr_assert_eq(g->gpt_first_usable_lba, 34);
    cr_assert_eq(g->disk_id[15], 0x5a);
    cr_assert_eq(g->partition_count, 2);
    cr_assert_str_eq(g->partitions[0].name, "EFI system partition");
    cr_assert_str_eq(g->partitions[1].name, "data-\xc3\xa9t\xc3\xa9");
    cr_assert_eq(g->partitions[1].attributes, 0x8000000000000000ull);
    cr_assert_eq(g->partitions[1].type_guid[7], 0x22);
    cr_assert_eq(g->partitions[0].part_guid[0], 0xa0);
    cr_assert_eq(g->region_count, 5);
    cr_assert_eq(g->regions[4].kind, ASR_REGION_GPT_BACKUP_HEADER);
    cr_assert_eq(g->regions[4].offset, g->size_bytes - 512);
    for (uint32_t i = 0; i < g->regions[2].length; i++)
        cr_assert_eq(g->regions[2].data[i], (uint8_t)((i + 1024) * 13 + ((i + 1024) >> 9)));
    cr_assert_eq(m->label, ASR_LABEL_MBR);
    cr_assert_eq(memcmp(m->disk_id, "\x78\x56\x34\x12", 4), 0);
    cr_assert_eq(m->partition_count, 3);
    cr_assert_eq(m->partitions[0].bootable, 1);
    cr_assert_eq(m->partitions[1].kind, ASR_PART_EXTENDED);
    cr_assert_eq(m->partitions[2].number, 5);
    cr_assert_eq(m->partitions[2].kind, ASR_PART_LOGICAL);
    cr_assert_eq(m->regions[1].kind, ASR_REGION_GAP);
    cr_assert_eq(m->regions[1].length, m->partitions[0].start_bytes - 512);
    cr_assert_eq(memcmp(m->regions[1].data, g->regions[1].data, 512), 0);
    const struct asr_volume_desc *v0 = asr_reader_volume(r, 0);
    cr_assert_str_eq(v0->fs_type, "ext4");
    cr_assert_str_eq(v0->fs_label, "root");
    cr_assert_str_eq(v0->fs_uuid, "0b6c2e9e-7a41-4f3c-9a43-8f0d1d2c3b4a");
    cr_assert_eq(asr_reader_volume(r, 2)->partition_number, 5);
    cr_assert_eq(asr_reader_volume(r, 2)->disk_index, 1);
}

static void roundtrip(const struct sample_opts *o)
{
    char *path = scratch_path("img.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(path, o, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    check_layout(r);
    check_volumes(r, o);
    const struct asr_image_info *i = asr_reader_info(r);
    uint64_t s = sample_volume_size(o);
    cr_assert_eq(i->format_version, ASR_FORMAT_VERSION);
    cr_assert_str_eq(i->creator, "asrimg");
    cr_assert_eq(i->zero_bytes, s / 4 + (s / 4 - 1000));
    cr_assert_eq(i->unreadable_bytes, 4096);
    cr_assert_lt(i->unique_bytes, i->data_bytes, "dedup stored the repeated quarter once");
    if (o->level > 0)
        cr_assert_lt(i->stored_bytes, i->unique_bytes, "compressible volumes shrank");
    uint64_t n;
    const struct asr_extent *e = asr_reader_extents(r, 0, &n);
    int zero_runs = 0;
    for (uint64_t k = 0; k < n; k++)
        zero_runs += e[k].ref == ASR_REF_ZERO;
    cr_assert_eq(zero_runs, 1, "touching zero ranges merge into one extent");
    asr_reader_free(r);
    struct asr_verify_report rep;
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, &rep, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(rep.problems, 0);
    cr_assert_eq(rep.volumes, 3);
    cr_assert(rep.complete);
    free(path);
}

Test(roundtrip, compressed) { roundtrip(&(struct sample_opts){.level = 3}); }
Test(roundtrip, stored) { roundtrip(&(struct sample_opts){.level = 0}); }
Test(roundtrip, small_chunks) { roundtrip(&(struct sample_opts){.level = 1, .max_chunk = 4096, .volume_kib = 256}); }
Test(roundtrip, split_set)
{
    struct sample_opts o = {.level = 0, .volume_kib = 2048, .split_size = ASR_MIN_SPLIT_SIZE};
    roundtrip(&o);
    char *p3 = scratch_path("img.asrimg.003");
    struct stat st;
    cr_assert_eq(stat(p3, &st), 0, "a 4+ MiB image split at 1 MiB has a third part");
    cr_assert_eq((uint64_t)st.st_size, ASR_MIN_SPLIT_SIZE);
    free(p3);
}

Test(roundtrip, chunk_read_and_limits)
{
    char *path = scratch_path("img.asrimg");
    struct asr_error err = {0};
    cr_assert_eq(write_sample_image(path, NULL, &err), ASR_OK, "%s", err.msg);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    uint8_t *buf = malloc(65536);
    uint32_t len;
    cr_assert_eq(asr_reader_read_chunk(r, 0, buf, 65536, &len, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(len, 65536);
    int unr;
    for (uint32_t i = 0; i < len; i++)
        cr_assert_eq(buf[i], sample_expected(0, i, &unr));
    cr_assert_eq(asr_reader_read_chunk(r, 0, buf, 100, &len, &err), ASR_E_ARG, "a small buffer is refused");
    cr_assert_eq(asr_reader_read_chunk(r, asr_reader_info(r)->chunk_count, buf, 65536, &len, &err), ASR_E_ARG);
    cr_assert_eq(asr_reader_read_volume(r, 0, sample_volume_size(NULL) - 10, buf, 11, &err), ASR_E_ARG,
                 "reads past the volume end are refused");
    cr_assert_eq(asr_reader_read_volume(r, 7, 0, buf, 1, &err), ASR_E_ARG);
    free(buf);
    asr_reader_free(r);
    free(path);
}

struct drain {
    int fd;
    const char *path;
};

static void *drain_pipe(void *arg)
{
    struct drain *d = arg;
    int out = open(d->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[65536];
    ssize_t n;
    while ((n = read(d->fd, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(out);
    return NULL;
}

/* The writer never seeks: an image written into a pipe is a valid image. */
Test(roundtrip, through_a_pipe)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char *path = scratch_path("piped.asrimg");
    struct drain d = {p[0], path};
    pthread_t t;
    pthread_create(&t, NULL, drain_pipe, &d);
    struct asr_error err = {0};
    struct asr_writer *w;
    cr_assert_eq(asr_writer_create_fd(p[1], NULL, &w, &err), ASR_OK, "%s", err.msg);
    struct asr_disk_desc disk = {.size_bytes = 1 << 20, .logical_sector = 512, .physical_sector = 512};
    struct asr_volume_desc vol = {.size_bytes = 1 << 20};
    uint32_t vid;
    static uint8_t content[100000], enc[200000];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (uint8_t)(i * 7);
    struct asr_chunk c;
    uint64_t id;
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_volume(w, &vol, &vid, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_chunk_encode(content, sizeof content, 3, asr_writer_hash_seed(w), enc, sizeof enc, &c, &err), 0);
    cr_assert_eq(asr_writer_append_chunk(w, &c, &id, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_extent(w, vid, 4096, sizeof content, id, 0, content, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    static uint8_t back[100000];
    cr_assert_eq(asr_reader_read_volume(r, 0, 4096, back, sizeof back, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(memcmp(back, content, sizeof back), 0);
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path);
}

Test(roundtrip, refuses_existing_output)
{
    char *path = scratch_path("exists.asrimg");
    write_file(path, "keep me", 7);
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {0};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_E_EXISTS);
    cr_assert(strstr(err.msg, "exists.asrimg"), "names the file: %s", err.msg);
    size_t n;
    uint8_t *b = read_file(path, &n);
    cr_assert_eq(n, 7, "the existing file is untouched");
    free(b);
    free(path);
}

/* An unfinished writer (interrupted backup) leaves neither a final image nor its .partial. */
Test(roundtrip, unfinished_leaves_nothing)
{
    char *path = scratch_path("unfinished.asrimg"), *partial = scratch_path("unfinished.asrimg.partial");
    struct asr_writer *w;
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_create(path, NULL, &w, &err), ASR_OK, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(partial, &st), 0, "data goes to NAME.partial while writing");
    cr_assert_neq(stat(path, &st), 0, "the final name does not exist before finish");
    asr_writer_free(w);
    cr_assert_neq(stat(partial, &st), 0);
    cr_assert_neq(stat(path, &st), 0);
    free(path);
    free(partial);
}

static bool file_holds(const char *path, const char *text)
{
    size_t n;
    uint8_t *b = read_file(path, &n);
    bool same = b && n == strlen(text) && memcmp(b, text, n) == 0;
    free(b);
    return same;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Whatever is already under a .partial name (a symlink, a hard link) is never written through:
 * the writer's parts are new files. */
Test(roundtrip, partial_names_are_never_written_through)
{
    char *path = scratch_path("through.asrimg"), *p1 = scratch_path("through.asrimg.partial"),
         *p2 = scratch_path("through.asrimg.002.partial"), *v1 = scratch_path("victim1"), *v2 = scratch_path("victim2");
    write_file(v1, "keep 1", 6);
    write_file(v2, "keep 2", 6);
    cr_assert_eq(symlink(v1, p1), 0);
    cr_assert_eq(link(v2, p2), 0);
    struct asr_error err = {0};
    struct sample_opts o = {.volume_kib = 256, .split_size = ASR_MIN_SPLIT_SIZE};
    cr_assert_eq(write_sample_image(path, &o, &err), ASR_OK, "%s", err.msg);
    cr_assert(file_holds(v1, "keep 1"), "the file behind the symlink is untouched");
    cr_assert(file_holds(v2, "keep 2"), "the hard-linked file is untouched");
    cr_assert(!exists(p1) && !exists(p2), "no .partial name is left");
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path), free(p1), free(p2), free(v1), free(v2);
}

/* A .partial someone holds is another writer's: refused and left alone. Once let go it is a
 * leftover, and replaced. */
Test(roundtrip, refuses_partial_held_by_another_writer)
{
    char *path = scratch_path("held.asrimg"), *partial = scratch_path("held.asrimg.partial");
    write_file(partial, "held", 4);
    int fd = open(partial, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    struct asr_writer *w = NULL;
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_create(path, NULL, &w, &err), ASR_E_EXISTS);
    cr_assert(strstr(err.msg, "another backup is writing"), "%s", err.msg);
    cr_assert(file_holds(partial, "held"), "the held file is untouched");
    close(fd);
    cr_assert_eq(asr_writer_create(path, NULL, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert(!file_holds(partial, "held"), "the leftover is replaced by a new file");
    struct asr_writer *second = NULL;
    cr_assert_eq(asr_writer_create(path, NULL, &second, &err), ASR_E_EXISTS, "a second writer is refused");
    asr_writer_free(w);
    cr_assert(!exists(partial));
    free(path), free(partial);
}

struct asked {
    char paths[8][512];
    int n;
};

static int refuse_part3(const char *path, void *ctx, struct asr_error *err)
{
    struct asked *a = ctx;
    if (a->n < 8)
        snprintf(a->paths[a->n++], sizeof a->paths[0], "%s", path);
    size_t n = strlen(path);
    return n > 4 && !strcmp(path + n - 4, ".003") ? asr_fail_public(err, ASR_E_ARG, "not %s", path) : ASR_OK;
}

static bool was_asked(const struct asked *a, const char *path)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->paths[i], path))
            return true;
    return false;
}

/* Every file the writer would remove or replace is put to may_replace first: the leftover
 * .partial, the older image and its parts, extra ones included; one refused stops it before
 * anything of the older image changes. */
Test(roundtrip, asks_before_removing_or_replacing)
{
    char *path = scratch_path("older.asrimg"), *partial = scratch_path("older.asrimg.partial"),
         *p2 = scratch_path("older.asrimg.002"), *p3 = scratch_path("older.asrimg.003");
    write_file(partial, "leftover", 8);
    write_file(path, "old 1", 5);
    write_file(p2, "old 2", 5);
    write_file(p3, "old 3", 5);
    struct asked asked = {0};
    struct asr_writer_options o = {.overwrite = 1, .may_replace = refuse_part3, .may_replace_ctx = &asked};
    struct asr_writer *w;
    struct asr_error err = {0};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    cr_assert(was_asked(&asked, partial), "asked about the leftover .partial");
    struct asr_disk_desc d = {.size_bytes = 4096, .logical_sector = 512, .physical_sector = 512};
    cr_assert_eq(asr_writer_add_disk(w, &d, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "older.asrimg.003"), "%s", err.msg);
    cr_assert(was_asked(&asked, path) && was_asked(&asked, p2) && was_asked(&asked, p3));
    asr_writer_free(w);
    cr_assert(file_holds(path, "old 1") && file_holds(p2, "old 2") && file_holds(p3, "old 3"),
              "the older image is as it was");
    cr_assert(!exists(partial), "the refused image leaves no .partial");
    free(path), free(partial), free(p2), free(p3);
}

Test(roundtrip, writer_rejects_bad_calls)
{
    struct asr_writer *w;
    struct asr_error err = {0};
    char *path = scratch_path("bad.asrimg");
    cr_assert_eq(asr_writer_create(path, NULL, &w, &err), ASR_OK, "%s", err.msg);
    struct asr_disk_desc disk = {.size_bytes = 1 << 20, .logical_sector = 512, .physical_sector = 512};
    struct asr_disk_desc bad_sector = disk;
    bad_sector.logical_sector = 1000;
    cr_assert_eq(asr_writer_add_disk(w, &bad_sector, &err), ASR_E_ARG);
    struct asr_partition_desc past_end = {.number = 1, .start_bytes = 1 << 19, .size_bytes = 1 << 20};
    struct asr_disk_desc bad_part = disk;
    bad_part.partition_count = 1;
    bad_part.partitions = &past_end;
    cr_assert_eq(asr_writer_add_disk(w, &bad_part, &err), ASR_E_ARG, "a partition past the disk end is refused");
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_OK, "%s", err.msg);
    struct asr_volume_desc vol = {.size_bytes = 1 << 20}, outside = {.disk_offset = 512, .size_bytes = 1 << 20};
    cr_assert_eq(asr_writer_add_volume(w, &outside, NULL, &err), ASR_E_ARG);
    uint32_t vid;
    cr_assert_eq(asr_writer_add_volume(w, &vol, &vid, &err), ASR_OK, "%s", err.msg);
    static uint8_t data[8192];
    struct asr_chunk grows = {ASR_CODEC_ZSTD, data, 8192, 4096, {0, 0}};
    cr_assert_eq(asr_writer_append_chunk(w, &grows, NULL, &err), ASR_E_ARG, "a zstd chunk larger than content");
    struct asr_chunk ok = {ASR_CODEC_STORED, data, 4096, 4096, asr_content_hash(asr_writer_hash_seed(w), data, 4096)};
    uint64_t id;
    cr_assert_eq(asr_writer_append_chunk(w, &ok, &id, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_extent(w, vid, 8192, 4097, id, 0, data, &err), ASR_E_ARG, "longer than the chunk");
    cr_assert_eq(asr_writer_add_extent(w, vid, 8192, 4096, id, 0, data, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_zero(w, vid, 0, 4096, &err), ASR_E_ARG, "extents go in increasing order");
    cr_assert_eq(asr_writer_add_disk(w, &disk, &err), ASR_E_STATE, "no layout after data");
    asr_writer_free(w);
    free(path);
}

/* Disk areas (SPEC section 7): the writer declares disk-areas for the first one, and the rules
 * every reader shares refuse an area over a partition or a raw region, on an unpartitioned disk,
 * with a partition number, or of an unknown kind. */
Test(roundtrip, disk_area_rules)
{
    char *path = scratch_path("areas.asrimg");
    struct asr_writer *w;
    struct asr_error err = {0};
    struct asr_writer_options o = {.overwrite = 1};
    cr_assert_eq(asr_writer_create(path, &o, &w, &err), ASR_OK, "%s", err.msg);
    static uint8_t mbr[512]; /* entry 1: type 0x83 at LBA 8192, 8192 sectors */
    mbr[446 + 4] = 0x83, mbr[446 + 9] = 0x20, mbr[446 + 13] = 0x20;
    mbr[510] = 0x55, mbr[511] = 0xaa;
    struct asr_region_desc reg = {ASR_REGION_MBR, 0, 512, mbr};
    struct asr_partition_desc part = {.number = 1, .kind = ASR_PART_PRIMARY, .mbr_type = 0x83,
                                      .start_bytes = 4 << 20, .size_bytes = 4 << 20};
    struct asr_disk_desc mbr_disk = {.size_bytes = 8 << 20, .logical_sector = 512, .physical_sector = 512,
                                     .label = ASR_LABEL_MBR, .partition_count = 1, .partitions = &part,
                                     .region_count = 1, .regions = &reg};
    struct asr_disk_desc bare = {.size_bytes = 8 << 20, .logical_sector = 512, .physical_sector = 512};
    cr_assert_eq(asr_writer_add_disk(w, &mbr_disk, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_disk(w, &bare, &err), ASR_OK, "%s", err.msg);
    const struct {
        struct asr_volume_desc v;
        const char *why;
    } bad[] = {
        {{.kind = ASR_VOLUME_AREA, .disk_offset = 3 << 20, .size_bytes = 2 << 20}, "overlaps partition 1"},
        {{.kind = ASR_VOLUME_AREA, .disk_offset = 0, .size_bytes = 4096}, "raw region 0"},
        {{.kind = ASR_VOLUME_AREA, .disk_index = 1, .disk_offset = 4096, .size_bytes = 4096}, "partitioned disk"},
        {{.kind = ASR_VOLUME_AREA, .partition_number = 1, .disk_offset = 4096, .size_bytes = 4096}, "partition number 0"},
        {{.kind = 2, .disk_offset = 4096, .size_bytes = 4096}, "kind 2 unknown"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(asr_writer_add_volume(w, &bad[i].v, NULL, &err), ASR_E_ARG, "case %zu accepted", i);
        cr_assert(strstr(err.msg, bad[i].why), "case %zu: %s", i, err.msg);
    }
    struct asr_volume_desc area = {.kind = ASR_VOLUME_AREA, .disk_offset = 1 << 20, .size_bytes = 3 << 20};
    uint32_t vid;
    cr_assert_eq(asr_writer_add_volume(w, &area, &vid, &err), ASR_OK, "%s", err.msg);
    static uint8_t content[5000], enc[10000];
    memset(content, 0xa5, sizeof content);
    struct asr_chunk c;
    uint64_t id;
    cr_assert_eq(asr_chunk_encode(content, sizeof content, 3, asr_writer_hash_seed(w), enc, sizeof enc, &c, &err), 0);
    cr_assert_eq(asr_writer_append_chunk(w, &c, &id, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_add_extent(w, vid, 70000, sizeof content, id, 0, content, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(asr_writer_finish(w, &err), ASR_OK, "%s", err.msg);
    asr_writer_free(w);

    struct asr_reader *r;
    cr_assert_eq(asr_reader_open(path, &r, &err), ASR_OK, "%s", err.msg);
    cr_assert_str_eq(asr_reader_feature_name(r, ASR_FEATURE_INCOMPAT, 0), "disk-areas");
    cr_assert_eq(asr_reader_volume(r, 0)->kind, ASR_VOLUME_AREA);
    static uint8_t back[5000];
    cr_assert_eq(asr_reader_read_volume(r, 0, 70000, back, sizeof back, &err), ASR_OK, "%s", err.msg);
    cr_assert_eq(memcmp(back, content, sizeof back), 0);
    asr_reader_free(r);
    cr_assert_eq(asr_verify(path, NULL, NULL, NULL, NULL, NULL, &err), ASR_OK, "%s", err.msg);
    free(path);
}
