/* Opening a snapshot by reference, "STORE::HOST/TIME", in one call for the commands that read
 * images (restore, verify, info, mount, export): the store opened with the environment's
 * settings, "latest" resolved, the snapshot fetched into a temporary file that is unlinked at
 * once (the reader keeps its descriptor, so nothing is left behind however the process ends),
 * and the reader over it with chunks served by the store. */
#include "asr_store.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct asr_store_ref {
    struct asr_store *store;
    struct asr_reader *reader;
    char name[1300];
};

bool asr_store_is_ref(const char *ref)
{
    return ref && strstr(ref, "::") != NULL;
}

/* "latest", "HOST/latest" or a name: the newest snapshot matching, or the name itself. */
static int resolve(struct asr_store *s, const char *snap, char *out, size_t len, struct asr_error *err)
{
    const char *slash = strrchr(snap, '/');
    const char *last = slash ? slash + 1 : snap;
    if (strcmp(last, "latest")) {
        snprintf(out, len, "%s", snap);
        return ASR_OK;
    }
    char host[128] = "";
    if (slash && (size_t)(slash - snap) < sizeof host)
        memcpy(host, snap, (size_t)(slash - snap)), host[slash - snap] = '\0';
    struct asr_store_snapshot *v = NULL;
    size_t n = 0;
    int rc = asr_store_list(s, host[0] ? host : NULL, false, &v, &n, err);
    if (rc == ASR_OK && !n)
        rc = asr_fail_public(err, ASR_E_ARG, "%s: no snapshot%s%s", asr_store_url(s), host[0] ? " of " : "", host);
    if (rc == ASR_OK)
        snprintf(out, len, "%s", v[n - 1].name);
    free(v);
    return rc;
}

/* Snapshot snap of s fetched into a new temporary file, its name in path. */
static int fetch_temp(struct asr_store *s, const char *snap, char *path, size_t len, struct asr_error *err)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, len, "%s/asrimg-snapshot.XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_IO, "cannot make a temporary file for snapshot %s in %s", snap, path);
    close(fd);
    int rc = asr_store_fetch_snapshot(s, snap, path, err);
    if (rc != ASR_OK)
        unlink(path);
    return rc;
}

/* The store handle serves snapshot snap alone: its table is to hold the chunks of snap (read
 * from reader r, or else from the fetched snapshot at path), not every chunk of the store. */
static int expect_snapshot(struct asr_store *s, const struct asr_reader *r, const char *path, const char *snap,
                           struct asr_error *err)
{
    struct asr_store_id *ids = NULL;
    uint64_t n = 0;
    int rc = r ? store_reader_ids(s, r, snap, &ids, &n, err) : s->read_ids(s, path, snap, &ids, &n, NULL, err);
    if (rc == ASR_OK)
        store_expect(s, ids, n);
    return rc;
}

static int fetch_and_open(struct asr_store_ref *r, const char *snap, struct asr_error *err)
{
    char path[4096];
    int rc = fetch_temp(r->store, snap, path, sizeof path, err);
    if (rc == ASR_OK) {
        rc = asr_store_reader_open(r->store, path, &r->reader, err);
        unlink(path);
    }
    if (rc == ASR_OK)
        rc = expect_snapshot(r->store, r->reader, NULL, snap, err);
    return rc;
}

int asr_store_reader_open(struct asr_store *s, const char *manifest_path, struct asr_reader **out,
                          struct asr_error *err)
{
    struct asr_chunk_source src;
    store_chunk_source(s, &src);
    return asr_reader_open_external(manifest_path, &src, out, err);
}

/* STORE::SNAPSHOT: the store opened and the snapshot's name resolved ("latest"); name receives
 * "STORE::HOST/TIME". On failure *s is closed and NULL. */
static int open_ref(const char *ref, struct asr_store **s, char *snap_out, size_t snap_len, char *name,
                    size_t name_len, struct asr_error *err)
{
    *s = NULL;
    char *url = NULL, *snap = NULL;
    int rc = asr_store_split_ref(ref, &url, &snap) && url[0] && snap[0]
                 ? asr_store_open(url, NULL, s, err)
                 : asr_fail_public(err, ASR_E_ARG,
                                   "%s: not STORE::SNAPSHOT (a snapshot is named HOST/TIME, or latest)", ref);
    if (rc == ASR_OK)
        rc = resolve(*s, snap, snap_out, snap_len, err);
    if (rc == ASR_OK)
        snprintf(name, name_len, "%s::%s", url, snap_out);
    if (rc != ASR_OK) {
        asr_store_close(*s);
        *s = NULL;
    }
    free(url);
    free(snap);
    return rc;
}

int asr_store_ref_open(const char *ref, struct asr_store_ref **out, struct asr_error *err)
{
    *out = NULL;
    struct asr_store_ref *r = calloc(1, sizeof *r);
    char resolved[512];
    int rc = r ? open_ref(ref, &r->store, resolved, sizeof resolved, r->name, sizeof r->name, err)
               : asr_fail_public(err, ASR_E_NOMEM, "out of memory");
    if (rc == ASR_OK)
        rc = fetch_and_open(r, resolved, err);
    if (rc != ASR_OK) {
        asr_store_ref_free(r);
        return rc;
    }
    *out = r;
    return ASR_OK;
}

int asr_store_verify_snapshot(const char *ref, asr_problem_fn on_problem, void *problem_ctx,
                              asr_progress_fn on_progress, void *progress_ctx, struct asr_verify_report *report,
                              struct asr_error *err)
{
    *report = (struct asr_verify_report){0};
    char resolved[512], name[1300], path[4096];
    struct asr_store *s;
    int rc = open_ref(ref, &s, resolved, sizeof resolved, name, sizeof name, err);
    if (rc == ASR_OK && (rc = fetch_temp(s, resolved, path, sizeof path, err)) == ASR_OK) {
        struct asr_chunk_source src;
        store_chunk_source(s, &src);
        /* A snapshot whose ids cannot be read is left to asr_verify_external to report as it
         * reports every problem (the table then holds every chunk). */
        (void)expect_snapshot(s, NULL, path, resolved, &(struct asr_error){0});
        rc = asr_verify_external(path, &src, on_problem, problem_ctx, on_progress, progress_ctx, report, err);
        unlink(path);
    }
    asr_store_close(s);
    return rc;
}

struct asr_reader *asr_store_ref_reader(struct asr_store_ref *r) { return r->reader; }
struct asr_store *asr_store_ref_store(struct asr_store_ref *r) { return r->store; }
const char *asr_store_ref_name(const struct asr_store_ref *r) { return r->name; }

void asr_store_ref_free(struct asr_store_ref *r)
{
    if (!r)
        return;
    asr_reader_free(r->reader);
    asr_store_close(r->store);
    free(r);
}
