/* Terminal progress: one line on stderr redrawn at most ten times a second with bytes done,
 * total, MB/s and ETA. Silent when stderr is not a terminal, so pipes and logs stay clean. */
#include "progress.h"
#include "clock.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void progress_init(struct progress *p, const char *label, bool quiet)
{
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->start = asr_now();
    p->last = 0;
}

void progress_update(uint64_t done, uint64_t total, void *ctx)
{
    struct progress *p = ctx;
    if (!p->enabled)
        return;
    double t = asr_now();
    if (t - p->last < 0.1 && done < total)
        return;
    p->last = t;
    /* No rate in the first tenth of a second: a few bytes over almost no time say nothing. */
    double secs = t - p->start, rate = secs >= 0.1 ? done / secs : 0;
    char a[32], b[32];
    fprintf(stderr, "\r%s: %s / %s", p->label, cli_bytes(done, a, sizeof a), cli_bytes(total, b, sizeof b));
    if (rate > 0)
        fprintf(stderr, "  %.0f MB/s", rate / 1e6);
    if (rate > 0 && total > done)
        fprintf(stderr, "  ETA %.0fs   ", (total - done) / rate);
    else
        fputs("          ", stderr);
}

void progress_done(struct progress *p)
{
    if (p->enabled)
        fputs("\r\033[K", stderr);
}

void progress_restore(const struct asr_restore_progress *p, void *ctx)
{
    struct progress *pr = ctx;
    if (p->verifying && strcmp(pr->label, "verify")) /* --verify's read-back: a line of its own */
        progress_init(pr, "verify", !pr->enabled);
    progress_update(p->done, p->total, pr);
}
