/* Snapshots: the listing with sizes, the keep rules of prune (SPEC.md
 * 19.7: a pure function over one host's snapshots, on the UTC calendar with ISO weeks) and prune
 * itself, which deletes snapshots only (gc frees their chunks). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grow.h"

static int snap_cmp(const void *a, const void *b)
{
    const struct asr_store_snapshot *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The snapshots' names (oldest first), without sizes. */
static int list_names(struct asr_store *s, const char *host, struct asr_store_snapshot **out, size_t *count,
                      struct asr_error *err)
{
    *out = NULL;
    *count = 0;
    char prefix[STORE_KEY_NAME_MAX];
    if (host && !store_host_valid(host))
        return store_fail(err, ASR_E_ARG, "\"%s\" is not a host name", host);
    snprintf(prefix, sizeof prefix, "snapshots/%s%s", host ? host : "", host ? "/" : "");
    struct store_object *objs = NULL;
    size_t n = 0;
    int rc = s->b->ops->list(s->b, prefix, &objs, &n, err);
    if (rc)
        return rc;
    struct asr_store_snapshot *snaps = calloc(n ? n : 1, sizeof *snaps);
    if (!snaps) {
        store_objects_free(objs, n);
        return store_fail(err, ASR_E_NOMEM, "store list: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = objs[i].key + strlen("snapshots/");
        struct asr_store_snapshot *sn = &snaps[m];
        /* Anything else under snapshots/ is not a snapshot this version made: left alone. */
        if (store_snapshot_name_parse(name, sn->host, &sn->time) < 0)
            continue;
        snprintf(sn->name, sizeof sn->name, "%s", name);
        m++;
    }
    store_objects_free(objs, n);
    qsort(snaps, m, sizeof *snaps, snap_cmp);
    *out = snaps;
    *count = m;
    return ASR_OK;
}

int asr_store_list(struct asr_store *s, const char *host, bool with_sizes, struct asr_store_snapshot **out,
                   size_t *count, struct asr_error *err)
{
    int rc = list_names(s, host, out, count, err);
    if (!rc && with_sizes && (rc = store_snapshot_sizes(s, *out, *count, err))) {
        free(*out);
        *out = NULL;
        *count = 0;
    }
    return rc;
}

/* ---- keep rules ---------------------------------------------------------------------------- */

static int64_t day_of(int64_t t) { return t >= 0 ? t / 86400 : -((-t + 86399) / 86400); }

/* The Monday starting t's ISO week, as a day number: it names the week across year ends. */
static int64_t week_of(int64_t t)
{
    int64_t d = day_of(t);
    int64_t weekday = ((d + 3) % 7 + 7) % 7; /* 1970-01-01, day 0, was a Thursday: Monday is 0 */
    return d - weekday;
}

static int64_t month_of(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return 0;
    return (int64_t)tm.tm_year * 12 + tm.tm_mon;
}

/* Keeps the newest snapshot of each of the newest n periods (newest first over snaps). */
static void keep_periods(const struct asr_store_snapshot *snaps, size_t count, unsigned n, int64_t (*period)(int64_t),
                         bool *keep)
{
    unsigned seen = 0;
    int64_t last = 0;
    for (size_t i = count; i-- > 0 && seen < n;) {
        int64_t p = period(snaps[i].time);
        if (seen && p == last)
            continue;
        keep[i] = true;
        last = p;
        seen++;
    }
}

void asr_store_keep_select(const struct asr_store_snapshot *snaps, size_t n, const struct asr_store_keep *rules,
                           bool *keep)
{
    for (size_t i = 0; i < n; i++)
        keep[i] = n - i <= rules->last;
    keep_periods(snaps, n, rules->daily, day_of, keep);
    keep_periods(snaps, n, rules->weekly, week_of, keep);
    keep_periods(snaps, n, rules->monthly, month_of, keep);
}

/* Deletes the snapshots keep[] does not keep, every host's in one batch delete (a fleet's prune
 * is then a request a thousand snapshots, not one a host). */
static int remove_unkept(struct asr_store *s, const struct asr_store_snapshot *snaps, size_t n, const bool *keep,
                         bool dry_run, struct asr_store_prune_report *rep, struct asr_error *err)
{
    typedef char snapshot_key[sizeof snaps->name + 16];
    snapshot_key *names = malloc((n ? n : 1) * sizeof *names);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!names || !keys) {
        free(names);
        free(keys);
        return store_fail(err, ASR_E_NOMEM, "prune: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep[i])
            continue;
        snprintf(names[k], sizeof names[k], "snapshots/%s", snaps[i].name);
        keys[k] = names[k];
        k++;
    }
    uint64_t requests = 0;
    int rc = dry_run ? ASR_OK : store_del_many(s->b, keys, k, &requests, err);
    if (!rc) {
        rep->kept = n - k;
        rep->removed = k;
    }
    free(keys);
    free(names);
    return rc;
}

static int host_cmp(const void *a, const void *b)
{
    const struct asr_store_snapshot *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c ? c : snap_cmp(a, b);
}

int asr_store_prune(struct asr_store *s, const char *host, const struct asr_store_keep *rules, bool dry_run,
                    struct asr_store_prune_report *rep, struct asr_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (!rules->last && !rules->daily && !rules->weekly && !rules->monthly)
        return store_fail(err, ASR_E_ARG, "prune: no keep rule (it would delete every snapshot)");
    struct asr_store_snapshot *snaps;
    size_t n;
    int rc = list_names(s, host, &snaps, &n, err);
    if (rc)
        return rc;
    /* The rules hold host by host, each host's snapshots oldest first. */
    qsort(snaps, n, sizeof *snaps, host_cmp);
    bool *keep = calloc(n ? n : 1, sizeof *keep);
    if (!keep)
        rc = store_fail(err, ASR_E_NOMEM, "prune: out of memory");
    for (size_t i = 0, j; keep && i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(snaps[j].host, snaps[i].host); j++)
            ;
        asr_store_keep_select(snaps + i, j - i, rules, keep + i);
    }
    if (!rc)
        rc = remove_unkept(s, snaps, n, keep, dry_run, rep, err);
    free(keep);
    free(snaps);
    return rc;
}
