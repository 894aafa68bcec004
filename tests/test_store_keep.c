/* Which snapshots prune keeps (SPEC.md 19.7) on fabricated calendars: the newest N, one per UTC
 * day, ISO week and month across day, week and year boundaries; prune deleting exactly the rest,
 * host by host; and the listing of snapshot names. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asr_store.h"
#include "internal.h"
#include "storefix.h"
#include "support.h"

static void teardown(void) { scratch_cleanup(); }

TestSuite(store_keep, .fini = teardown);

/* Snapshots at the given times (TIME text, oldest first) of host h. */
static struct asr_store_snapshot *calendar(const char *const *times, size_t n)
{
    struct asr_store_snapshot *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(store_time_parse(times[i], &s[i].time), 0, "%s", times[i]);
        snprintf(s[i].host, sizeof s[i].host, "h");
        snprintf(s[i].name, sizeof s[i].name, "h/%s", times[i]);
    }
    return s;
}

/* keep_select over times with rules must keep exactly want ("1" kept, "0" not, one per snapshot). */
static void expect(const char *const *times, size_t n, struct asr_store_keep rules, const char *want)
{
    struct asr_store_snapshot *s = calendar(times, n);
    bool keep[64];
    asr_store_keep_select(s, n, &rules, keep);
    char got[65];
    for (size_t i = 0; i < n; i++)
        got[i] = keep[i] ? '1' : '0';
    got[n] = 0;
    cr_assert_str_eq(got, want, "rules last %u daily %u weekly %u monthly %u", rules.last, rules.daily, rules.weekly,
                     rules.monthly);
    free(s);
}

static const char *const days[] = {
    "20261201T080000Z", "20261201T200000Z", /* Tue 1 Dec, twice */
    "20261202T235959Z", "20261203T000000Z", /* a UTC midnight between them */
    "20261203T120000Z", "20261205T100000Z", /* nothing on the 4th */
};
#define NDAYS (sizeof days / sizeof days[0])

Test(store_keep, last_and_daily)
{
    expect(days, NDAYS, (struct asr_store_keep){.last = 2}, "000011");
    expect(days, NDAYS, (struct asr_store_keep){.last = 100}, "111111");
    expect(days, NDAYS, (struct asr_store_keep){.daily = 1}, "000001");
    /* The newest of each of the three newest days that have one (the 4th has none). */
    expect(days, NDAYS, (struct asr_store_keep){.daily = 3}, "001011");
    expect(days, NDAYS, (struct asr_store_keep){.daily = 4}, "011011");
    expect(days, NDAYS, (struct asr_store_keep){.daily = 9}, "011011");
    /* Rules add up: a snapshot is kept when any rule keeps it. */
    expect(days, NDAYS, (struct asr_store_keep){.last = 3, .daily = 4}, "011111");
    expect(days, NDAYS, (struct asr_store_keep){0}, "000000");
}

/* ISO weeks start on Monday, and a week runs over a year's end: 2026 has 53 weeks, its week 53
 * is Mon 28 Dec 2026 to Sun 3 Jan 2027 (`date -d 2027-01-03 +%G-W%V`). */
static const char *const weeks[] = {
    "20261220T120000Z", /* Sun, W51 */
    "20261221T000000Z", /* Mon, W52 */
    "20261227T235959Z", /* Sun, W52 */
    "20261228T000000Z", /* Mon, W53 */
    "20270101T120000Z", /* Fri, W53 */
    "20270103T200000Z", /* Sun, W53 of 2026 */
    "20270104T080000Z", /* Mon, 2027-W01 */
};
#define NWEEKS (sizeof weeks / sizeof weeks[0])

Test(store_keep, iso_weeks_over_a_year_end)
{
    expect(weeks, NWEEKS, (struct asr_store_keep){.weekly = 1}, "0000001");
    expect(weeks, NWEEKS, (struct asr_store_keep){.weekly = 2}, "0000011");
    expect(weeks, NWEEKS, (struct asr_store_keep){.weekly = 3}, "0010011");
    expect(weeks, NWEEKS, (struct asr_store_keep){.weekly = 4}, "1010011");
    /* 2021-01-03 (Sun) is in 2020-W53, with 2020-12-31; 2021-01-04 starts 2021-W01. */
    static const char *const w2020[] = {"20201228T000000Z", "20201231T100000Z", "20210103T100000Z",
                                        "20210104T000000Z"};
    expect(w2020, 4, (struct asr_store_keep){.weekly = 2}, "0011");
}

Test(store_keep, months_over_a_year_end)
{
    static const char *const months[] = {
        "20261031T235959Z", "20261101T000000Z", "20261130T120000Z", "20261215T000000Z",
        "20261231T235959Z", "20270101T000000Z", "20270131T000000Z",
    };
    expect(months, 7, (struct asr_store_keep){.monthly = 1}, "0000001");
    expect(months, 7, (struct asr_store_keep){.monthly = 2}, "0000101");
    expect(months, 7, (struct asr_store_keep){.monthly = 4}, "1010101");
    expect(months, 7, (struct asr_store_keep){.daily = 2, .monthly = 3}, "0010111");
}

/* Snapshot objects made by hand (prune reads names only). */
static void snapshot_file(const char *store, const char *name)
{
    char path[PATH_MAX];
    char host[128];
    snprintf(host, sizeof host, "%s", name);
    *strchr(host, '/') = 0;
    snprintf(path, sizeof path, "%s/snapshots", store);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/snapshots/%s", store, host);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/snapshots/%s", store, name);
    write_file(path, "x", 1);
}

static bool exists(const char *store, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/snapshots/%s", store, name);
    return stat(path, &st) == 0;
}

static struct asr_store *store_with_snapshots(char **dir)
{
    struct asr_store *s = storefix_store("st", STORE_DEFAULT_PACK_TARGET);
    *dir = scratch_path("st");
    char name[128];
    for (size_t i = 0; i < NDAYS; i++) {
        snprintf(name, sizeof name, "a/%s", days[i]);
        snapshot_file(*dir, name);
        snprintf(name, sizeof name, "b/%s", days[i]);
        snapshot_file(*dir, name);
    }
    snapshot_file(*dir, "a/not-a-time");
    snapshot_file(*dir, "a/20261341T000000Z");
    return s;
}

Test(store_keep, list_names)
{
    char *dir;
    struct asr_store *s = store_with_snapshots(&dir);
    struct asr_store_snapshot *snaps;
    size_t n;
    struct asr_error err = {0};
    cr_assert_eq(asr_store_list(s, NULL, false, &snaps, &n, &err), ASR_OK);
    cr_assert_eq(n, 2 * NDAYS, "names that are no snapshot's are left out");
    for (size_t i = 1; i < n; i++)
        cr_assert(snaps[i - 1].time <= snaps[i].time, "oldest first");
    free(snaps);
    cr_assert_eq(asr_store_list(s, "b", false, &snaps, &n, &err), ASR_OK);
    cr_assert_eq(n, NDAYS);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(snaps[i].host, "b");
        char want[64];
        snprintf(want, sizeof want, "b/%s", days[i]);
        cr_assert_str_eq(snaps[i].name, want);
    }
    free(snaps);
    cr_assert_eq(asr_store_list(s, "../a", false, &snaps, &n, &err), ASR_E_ARG);
    cr_assert_eq(asr_store_list(s, "nobody", false, &snaps, &n, &err), ASR_OK);
    cr_assert_eq(n, 0);
    free(snaps);
    free(dir);
    asr_store_close(s);
}

Test(store_keep, prune_deletes_exactly_the_rest)
{
    char *dir;
    struct asr_store *s = store_with_snapshots(&dir);
    struct asr_store_prune_report rep;
    struct asr_error err = {0};
    struct asr_store_keep none = {0}, rules = {.last = 1, .daily = 3};
    cr_assert_eq(asr_store_prune(s, NULL, &none, false, &rep, &err), ASR_E_ARG);
    cr_assert(strstr(err.msg, "no keep rule"), "%s", err.msg);
    /* A dry run says and deletes nothing. */
    cr_assert_eq(asr_store_prune(s, NULL, &rules, true, &rep, &err), ASR_OK);
    cr_assert(rep.kept == 6 && rep.removed == 6, "kept %zu removed %zu", rep.kept, rep.removed);
    for (size_t i = 0; i < NDAYS; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/%s", days[i]);
        cr_assert(exists(dir, name));
    }
    /* Host a only: b untouched. */
    cr_assert_eq(asr_store_prune(s, "a", &rules, false, &rep, &err), ASR_OK, "%s", err.msg);
    cr_assert(rep.kept == 3 && rep.removed == 3);
    static const char keep_a[] = "001011";
    for (size_t i = 0; i < NDAYS; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/%s", days[i]);
        cr_assert_eq(exists(dir, name), keep_a[i] == '1', "%s", name);
        snprintf(name, sizeof name, "b/%s", days[i]);
        cr_assert(exists(dir, name), "%s", name);
    }
    cr_assert(exists(dir, "a/not-a-time"), "what is no snapshot is left alone");
    /* Then every host, with another rule. */
    struct asr_store_keep last2 = {.last = 2};
    cr_assert_eq(asr_store_prune(s, NULL, &last2, false, &rep, &err), ASR_OK);
    cr_assert(rep.kept == 4 && rep.removed == 5, "kept %zu removed %zu", rep.kept, rep.removed);
    for (size_t i = 0; i < NDAYS; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/%s", days[i]);
        cr_assert_eq(exists(dir, name), i >= 4, "%s", name);
        snprintf(name, sizeof name, "b/%s", days[i]);
        cr_assert_eq(exists(dir, name), i >= 4, "%s", name);
    }
    free(dir);
    asr_store_close(s);
}

Test(store_keep, time_names)
{
    int64_t t;
    char text[STORE_TIME_TEXT];
    cr_assert_eq(store_time_parse("19700101T000000Z", &t), 0);
    cr_assert_eq(t, 0);
    cr_assert_eq(store_time_parse("20261205T173000Z", &t), 0);
    store_time_format(t, text);
    cr_assert_str_eq(text, "20261205T173000Z");
    static const char *const bad[] = {"20261205T173000",  "20261205 173000Z", "20261305T173000Z", "20260230T000000Z",
                                      "20261205T246000Z", "2026120xT173000Z", "20261205T173000Zx", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(store_time_parse(bad[i], &t), -1, "%s", bad[i]);
    char host[STORE_HOST_MAX + 1];
    cr_assert_eq(store_snapshot_name_parse("pc1/20261205T173000Z", host, &t), 0);
    cr_assert_str_eq(host, "pc1");
    cr_assert_eq(store_snapshot_name_parse("pc1/../20261205T173000Z", host, &t), -1);
    cr_assert_eq(store_snapshot_name_parse("/20261205T173000Z", host, &t), -1);
    char longhost[96];
    memset(longhost, 'a', 64);
    strcpy(longhost + 64, "/20261205T173000Z");
    cr_assert_eq(store_snapshot_name_parse(longhost, host, &t), -1);
}
