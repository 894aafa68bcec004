/* asrimg bench: what a backup of these disks would cost on this machine, without writing an
 * image. Two passes over the selected volumes: a read-only pass (the source's bandwidth through
 * io_uring and O_DIRECT), then the whole pipeline into /dev/null (chunking on one core, hashing
 * and compression per core, the image size). From these: projected image size and backup time,
 * and the stage that bounds it. */
#include "cli.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "disks.h"
#include "json.h"
#include "util.h"

struct bench_result {
    uint64_t read_bytes;
    double read_seconds;
    struct asr_backup_stats st;
};

static double rate(uint64_t bytes, double seconds)
{
    return seconds > 0 ? bytes / seconds / 1e6 : 0;
}

static int measure(struct cli_disks *d, const struct asr_backup_options *opt, struct bench_result *r,
                   struct asr_error *err)
{
    struct asr_backup_source src[ASR_MAX_DISKS];
    for (uint32_t i = 0; i < d->n; i++)
        src[i] = (struct asr_backup_source){d->disk[i], d->vols[i], d->count[i]};
    int rc = asr_backup_read_only(src, d->n, &r->read_bytes, &r->read_seconds, err);
    if (rc != ASR_OK)
        return rc;
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0)
        return asr_fail_public(err, ASR_E_IO, "cannot open /dev/null");
    struct asr_writer_options wo = {.max_chunk_size = asr_backup_max_chunk(opt->avg_chunk)};
    struct asr_writer *w = NULL;
    rc = asr_writer_create_fd(null_fd, &wo, &w, err);
    if (rc == ASR_OK)
        rc = asr_backup_run(w, src, d->n, opt, &r->st, err);
    if (rc == ASR_OK)
        rc = asr_writer_finish(w, err);
    asr_writer_free(w);
    close(null_fd);
    return rc;
}

/* The slowest of: reading; chunking, which runs on one thread; and all CPU work (chunking,
 * hashing, compressing, writing) spread over the machine's cores, which it shares. */
static const char *bounding_stage(const struct bench_result *r, double *projected_mbps)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double cpu_seconds = r->st.chunk_seconds + r->st.scan_seconds + r->st.hash_seconds + r->st.compress_seconds +
                         r->st.write_seconds;
    double read = rate(r->read_bytes, r->read_seconds);
    double chunk = rate(r->st.read_bytes, r->st.chunk_seconds);
    double cpu = rate(r->st.read_bytes, cpu_seconds / (double)(cores > 0 ? cores : 1));
    const char *name = "read";
    double best = read;
    if (chunk > 0 && chunk < best)
        best = chunk, name = "chunking (one thread)";
    if (cpu > 0 && cpu < best)
        best = cpu, name = "compression (all cores)";
    *projected_mbps = best;
    return name;
}

static void report(const struct bench_result *r, const struct asr_backup_options *opt, bool as_json)
{
    double projected;
    const char *bound = bounding_stage(r, &projected);
    uint64_t image = r->st.stored_bytes;
    double eta = projected > 0 ? r->st.read_bytes / (projected * 1e6) : 0;
    if (as_json) {
        struct json j;
        json_begin(&j, stdout);
        json_obj(&j, NULL);
        json_u64(&j, "used_bytes", r->read_bytes);
        json_dbl(&j, "read_mb_per_s", rate(r->read_bytes, r->read_seconds));
        json_bool(&j, "direct_io", r->st.direct_io);
        json_dbl(&j, "chunk_mb_per_s", rate(r->st.read_bytes, r->st.chunk_seconds));
        json_dbl(&j, "hash_mb_per_s_per_core", rate(r->st.new_bytes + r->st.dedup_bytes, r->st.hash_seconds));
        json_dbl(&j, "compress_mb_per_s_per_core", rate(r->st.new_bytes, r->st.compress_seconds));
        json_u64(&j, "threads", r->st.threads);
        json_u64(&j, "level", (uint64_t)opt->level);
        json_u64(&j, "projected_image_bytes", image);
        json_dbl(&j, "projected_seconds", eta);
        json_dbl(&j, "measured_pipeline_seconds", r->st.seconds);
        json_str(&j, "bound_by", bound);
        json_u64(&j, "dedup_bytes", r->st.dedup_bytes);
        json_u64(&j, "zero_bytes", r->st.zero_bytes);
        json_end_obj(&j);
        json_finish(&j);
        return;
    }
    char a[32], b[32];
    printf("used data:        %s\n", cli_bytes(r->read_bytes, a, sizeof a));
    printf("read:             %.0f MB/s (%s)\n", rate(r->read_bytes, r->read_seconds),
           r->st.direct_io ? "io_uring, O_DIRECT" : "io_uring, page cache");
    printf("chunking:         %.0f MB/s on one core\n", rate(r->st.read_bytes, r->st.chunk_seconds));
    printf("hash:             %.0f MB/s per core\n", rate(r->st.new_bytes + r->st.dedup_bytes, r->st.hash_seconds));
    printf("compress:         %.0f MB/s per core at level %d, %u threads\n",
           rate(r->st.new_bytes, r->st.compress_seconds), opt->level, r->st.threads);
    printf("dedup / zero:     %s / %s\n", cli_bytes(r->st.dedup_bytes, a, sizeof a),
           cli_bytes(r->st.zero_bytes, b, sizeof b));
    printf("projected image:  %s (%.2fx)\n", cli_bytes(image, a, sizeof a),
           image ? (double)r->read_bytes / (double)image : 0);
    printf("projected backup: %.1f s at %.0f MB/s, bound by %s (this run's pipeline took %.1f s)\n", eta, projected,
           bound, r->st.seconds);
}

int cmd_bench(int argc, char **argv)
{
    const char *paths[ASR_MAX_DISKS];
    uint32_t n = 0;
    const char *selection = "critical";
    bool as_json = false;
    struct asr_backup_options opt = {.level = 3};
    unsigned long v;
    const char *val;
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    struct cli_keys keys = {0};
    int krc = EXIT_OK;
    for (int o; (o = cli_args_next(&args, &val));) {
        if (o == OPT_JSON)
            as_json = true;
        else if (cli_keys_option(&keys, o, val, &krc)) {
            if (krc != EXIT_OK)
                return krc;
        } else if (o == OPT_VOLUMES)
            selection = val;
        else if (o == OPT_LEVEL) {
            if (!cli_parse_uint(val, 19, &v))
                return cli_error("bench: --level %s: a number from 0 (store) to 19", val), EXIT_USAGE;
            opt.level = (int)v;
        } else if (o == OPT_THREADS) {
            if (!cli_parse_uint(val, 256, &v) || v == 0)
                return cli_error("bench: --threads %s: a number from 1 to 256", val), EXIT_USAGE;
            opt.threads = (unsigned)v;
        } else if (o == ARG_HELP)
            return EXIT_OK;
        else if (o != ARG_WORD)
            return EXIT_USAGE;
        else if (n < ASR_MAX_DISKS)
            paths[n++] = val;
        else
            return cli_error("bench: at most %u disks", ASR_MAX_DISKS), EXIT_USAGE;
    }
    if (!n)
        return cli_error("bench: no disk given (see 'asrimg bench --help')"), EXIT_USAGE;
    struct cli_disks d = {0};
    struct asr_error err = {0};
    struct bench_result r = {0};
    int rc = cli_disks_open(&d, paths, n, selection, &keys, &err);
    if (rc == EXIT_OK && measure(&d, &opt, &r, &err) != ASR_OK)
        rc = EXIT_FAIL;
    if (rc == EXIT_OK)
        report(&r, &opt, as_json);
    else
        cli_error("bench: %s", err.msg);
    cli_disks_close(&d);
    return rc;
}
