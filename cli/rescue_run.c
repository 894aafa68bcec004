/* asrimg rescue run: the restore the recovery environment runs, start to end, as plain asrimg
 * commands. It lists the images (rescue images), picks one, matches its disks (rescue plan),
 * shows what will be overwritten, confirms, then runs `asrimg restore IMAGE --to ... --verify
 * --yes` as a child of this same binary, printing that command first, writes a report (text and
 * JSON) into IMAGES/reports/, and says what the init should do next (reboot, poweroff or shell)
 * in --next-file. It never reboots anything itself: the init is PID 1.
 *
 * Unattended settings, the first found winning: the options; the kernel command line
 * (asrimg.restore=IMAGE|latest asrimg.target=DEV[,DEV...] asrimg.yes asrimg.then=poweroff|reboot|
 * shell); IMAGES/unattended.conf (the same keys, key=value lines, "asrimg." optional). */
#include "rescue.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "json.h"
#include "rescue_child.h"
#include "util.h"

#define SETTINGS_MAX 4096
#define CHILD_OUTPUT_MAX (16u << 20)

struct settings {
    const char *images, *drive, *image, *next_file, *cmdline_file;
    const char *targets[RESCUE_TARGETS_MAX];
    size_t ntargets;
    bool yes, json;
    const char *then;
    /* What the kernel command line and the file said, for the settings not given as options. */
    char kernel[SETTINGS_MAX], file[SETTINGS_MAX];
};

/* The flow as it went: what the report says. */
struct run {
    struct settings *s;
    bool interactive;
    double t0, restore_start, restore_end;
    time_t started;
    const struct rescue_image *image;
    struct rescue_plan *plan;
    char command[8192];
    int exit_status; /* the restore's; -1 when it did not run */
    struct rescue_summary summary;
    bool ok, verified;
    char stage[64];
    char error[4096];
    const char *next;
};

/* ---- settings ------------------------------------------------------------------------------- */

static bool then_valid(const char *v)
{
    return !strcmp(v, "poweroff") || !strcmp(v, "reboot") || !strcmp(v, "shell");
}

/* One key=value (or a bare key) from the kernel command line or the file; `from` for messages.
 * Keys already set (by the options, or by a source read before) are kept. */
static int setting(struct settings *s, char *word, const char *from, bool from_kernel)
{
    char *eq = strchr(word, '=');
    const char *value = eq ? eq + 1 : NULL;
    if (eq)
        *eq = 0;
    const char *key = !strncmp(word, "asrimg.", 7) ? word + 7 : word;
    if (from_kernel && key == word)
        return EXIT_OK; /* the kernel's own parameters */
    if (!strcmp(key, "restore") && value) {
        if (!s->image)
            s->image = value;
    } else if (!strcmp(key, "target") && value) {
        if (s->ntargets)
            return EXIT_OK;
        for (char *save = NULL, *t = strtok_r((char *)value, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (s->ntargets < RESCUE_TARGETS_MAX)
                s->targets[s->ntargets++] = t;
    } else if (!strcmp(key, "yes") && (!value || !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "true"))) {
        s->yes = true;
    } else if (!strcmp(key, "yes") && value && (!strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "false"))) {
        /* said so explicitly: ask */
    } else if (!strcmp(key, "then") && value && then_valid(value)) {
        if (!s->then)
            s->then = value;
    } else if (from_kernel && (!strcmp(key, "drive") || !strcmp(key, "probe") || !strcmp(key, "shell"))) {
        /* the environment's /init reads these (cli/rescue_init.sh): the drive rescue make wrote */
    } else {
        return cli_error("rescue run: %s: %s%s%s: not a setting (asrimg.restore=IMAGE|latest, asrimg.target=DEV[,DEV...], "
                         "asrimg.yes, asrimg.then=poweroff|reboot|shell)",
                         from, word, value ? "=" : "", value ? value : ""),
               EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Reads up to len - 1 bytes of path into buf; false when it is not there (fine: no settings). */
static bool read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = 0;
    fclose(f);
    return true;
}

static int load_settings(struct settings *s)
{
    if (read_small(s->cmdline_file, s->kernel, sizeof s->kernel)) {
        char *save = NULL;
        for (char *w = strtok_r(s->kernel, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
            int rc = setting(s, w, s->cmdline_file, true);
            if (rc)
                return rc;
        }
    }
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/unattended.conf", s->images);
    if (!read_small(conf, s->file, sizeof s->file))
        return EXIT_OK;
    unsigned line = 0;
    for (char *p = s->file, *next; p && *p; p = next) {
        next = strchr(p, '\n');
        if (next)
            *next++ = 0;
        line++;
        p += strspn(p, " \t");
        size_t n = strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
            p[--n] = 0;
        if (!*p || *p == '#')
            continue;
        char where[4300];
        snprintf(where, sizeof where, "%s line %u", conf, line);
        int rc = setting(s, p, where, false);
        if (rc)
            return rc;
    }
    return EXIT_OK;
}

static int parse_args(int argc, char **argv, struct settings *s)
{
    struct cli_args args;
    cli_args_init(&args, argc, argv);
    s->cmdline_file = "/proc/cmdline";
    const char *o;
    for (int opt; (opt = cli_args_next(&args, &o));) {
        switch (opt) {
        case OPT_IMAGES: s->images = o; break;
        case OPT_IMAGE: s->image = o; break;
        case OPT_DRIVE: s->drive = o; break;
        case OPT_TARGET:
            if (s->ntargets == RESCUE_TARGETS_MAX)
                return cli_error("rescue run: too many targets"), EXIT_USAGE;
            s->targets[s->ntargets++] = o;
            break;
        case OPT_YES: s->yes = true; break;
        case OPT_JSON: s->json = true; break;
        case OPT_NEXT_FILE: s->next_file = o; break;
        case OPT_CMDLINE_FILE: s->cmdline_file = o; break;
        case ARG_WORD: return cli_error("rescue run: unexpected argument '%s' (the images go after --images)", o), EXIT_USAGE;
        case ARG_HELP: return ARG_HELP;
        default: return EXIT_USAGE;
        }
    }
    if (!s->images)
        return cli_error("rescue run: no images directory given: --images DIR (see 'asrimg rescue run --help')"),
               EXIT_USAGE;
    return EXIT_OK;
}

/* ---- asking ------------------------------------------------------------------------------- */

/* One answer line from the terminal, newline removed; false at the end of input. */
static bool ask(const char *prompt, char *line, size_t len)
{
    fputs(prompt, stderr);
    fflush(stderr);
    if (!fgets(line, (int)len, stdin))
        return false;
    line[strcspn(line, "\r\n")] = 0;
    return true;
}

static bool fail(struct run *r, const char *stage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(struct run *r, const char *stage, const char *fmt, ...)
{
    snprintf(r->stage, sizeof r->stage, "%s", stage);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
        cli_error("%s", r->error);
    } else {
        snprintf(r->error, sizeof r->error, "%s", cli_last_error());
    }
    return false;
}

static FILE *human(const struct run *r)
{
    return r->s->json ? stderr : stdout;
}

/* The image named (a file name in the directory, or "latest"), or the one the user picks. */
static bool choose_image(struct run *r, const struct rescue_list *l)
{
    size_t usable = 0;
    for (size_t i = 0; i < l->n; i++)
        usable += l->v[i].opens;
    if (!usable)
        return fail(r, "listing the images", "rescue run: no image in %s opens", r->s->images);
    const char *name = r->s->image;
    if (name) {
        for (size_t i = 0; i < l->n; i++)
            if ((!strcmp(name, "latest") && l->v[i].opens) || !strcmp(l->v[i].name, name)) {
                r->image = &l->v[i];
                if (!l->v[i].opens)
                    return fail(r, "choosing the image", "rescue run: image %s is damaged: %s", name, l->v[i].why);
                return true;
            }
        return fail(r, "choosing the image", "rescue run: no image %s in %s", name, r->s->images);
    }
    if (!r->interactive)
        return fail(r, "choosing the image", "rescue run: no image named: asrimg.restore=NAME or latest, or --image");
    char line[64];
    for (;;) {
        char prompt[96];
        snprintf(prompt, sizeof prompt, "Restore which image? [1-%zu, q to quit]: ", usable);
        if (!ask(prompt, line, sizeof line) || !strcmp(line, "q"))
            return fail(r, "choosing the image", "rescue run: no image chosen: nothing was written");
        unsigned long k;
        if (cli_parse_uint(line, usable, &k) && k >= 1)
            for (size_t i = 0, seen = 0; i < l->n; i++)
                if (l->v[i].opens && ++seen == k) {
                    r->image = &l->v[i];
                    return true;
                }
        fprintf(stderr, "  a number from 1 to %zu, or q\n", usable);
    }
}

/* Every image disk with a target: asks where two disks are equally good (interactive). */
static bool settle(struct run *r, const struct asr_image *im)
{
    struct rescue_plan *p = r->plan;
    for (;;) {
        if (rescue_match(im, p))
            return fail(r, "matching the disks", NULL);
        if (p->complete)
            return true;
        uint32_t d = 0;
        while (d < asr_image_disk_count(im) && !p->ambiguous[d])
            d++;
        if (!r->interactive || d == asr_image_disk_count(im)) {
            rescue_plan_print(human(r), r->image->path, im, p);
            if (d < asr_image_disk_count(im))
                return fail(r, "matching the disks",
                            "rescue run: image disk %u could go onto either of equally good disks: name one with "
                            "asrimg.target=DEV (or --target)", d);
            return fail(r, "matching the disks", "rescue run: no disk here can take image disk %u", d);
        }
        rescue_plan_print(human(r), r->image->path, im, p);
        fprintf(stderr, "image disk %u could go onto any of these equally good disks:\n", d);
        for (size_t k = 0; k < p->ntie[d]; k++)
            fprintf(stderr, "  %zu) %s\n", k + 1, p->cand[p->tie[d][k]].path);
        char line[64], prompt[96], target[300];
        snprintf(prompt, sizeof prompt, "Which one takes image disk %u? [1-%zu, q to quit]: ", d, p->ntie[d]);
        unsigned long k = 0;
        while (!k) {
            if (!ask(prompt, line, sizeof line) || !strcmp(line, "q"))
                return fail(r, "matching the disks", "rescue run: no disk chosen: nothing was written");
            if (!cli_parse_uint(line, p->ntie[d], &k))
                k = 0;
        }
        snprintf(target, sizeof target, "%u=%s", d, p->cand[p->tie[d][k - 1]].path);
        p->nto = p->nnamed;
        if (rescue_add_target(p, target, "rescue run"))
            return fail(r, "matching the disks", NULL);
        p->to[p->nto - 1].asked = true;
    }
}

/* The same rule as restore: --yes, or "yes" typed on a terminal. */
static bool confirmed(const struct run *r)
{
    if (r->s->yes)
        return true;
    char line[16];
    return ask("Type 'yes' to overwrite the targets above: ", line, sizeof line) && !strcmp(line, "yes");
}

/* ---- the restore, a child of this binary ---------------------------------------------------- */

static bool firmware_is_uefi(void)
{
    return getenv("ASRIMG_EFIVARS_DIR") || access("/sys/firmware/efi/efivars", F_OK) == 0;
}

/* Runs argv (argv[0] "asrimg") as /proc/self/exe with its standard output read into out (the
 * restore's --json), its progress and messages on our stderr. The exit status, or -1. */
static int run_child(const char *const *argv, char **out, size_t *len)
{
    int fds[2];
    *out = NULL;
    *len = 0;
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    /* ^C reaches the restore, which stops cleanly and says what the targets hold: we stay to
     * write the report. */
    void (*old_int)(int) = signal(SIGINT, SIG_IGN);
    void (*old_term)(int) = signal(SIGTERM, SIG_IGN);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv("/proc/self/exe", (char *const *)argv);
        fprintf(stderr, "asrimg: error: rescue run: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 0;
    bool ok = pid > 0;
    while (ok) {
        if (*len + 65536 + 1 > cap) {
            if (cap >= CHILD_OUTPUT_MAX)
                break; /* the rest is drained below, unread */
            char *p = realloc(*out, cap = cap ? 2 * cap : 1 << 16);
            if (!p)
                break;
            *out = p;
        }
        ssize_t n = read(fds[0], *out + *len, cap - *len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    char sink[4096];
    while (ok && read(fds[0], sink, sizeof sink) > 0)
        ;
    close(fds[0]);
    if (*out)
        (*out)[*len] = 0;
    int status = -1;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (pid <= 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static bool restore(struct run *r, const struct asr_image *im)
{
    const char *argv[16 + 2 * RESCUE_TARGETS_MAX];
    rescue_restore_argv(r->image->path, im, r->plan, true, firmware_is_uefi(), argv, sizeof argv / sizeof argv[0]);
    rescue_command_line(argv, r->command, sizeof r->command);
    fprintf(stderr, "+ %s\n", r->command);
    char *out;
    size_t len;
    r->restore_start = asr_now();
    r->exit_status = run_child(argv, &out, &len);
    r->restore_end = asr_now();
    rescue_summary_parse(out, &r->summary);
    free(out);
    r->verified = r->summary.verified;
    if (r->exit_status == 0 && r->summary.ok) {
        char b[32];
        fprintf(stderr, "rescue run: restored %s in %.1f s%s\n", cli_bytes(r->summary.bytes, b, sizeof b),
                r->summary.seconds, r->verified ? "; verified: every target reads back as the image" : "");
        r->ok = true;
        return true;
    }
    const char *why = r->summary.error[0] ? r->summary.error : "no summary from it (see the messages above)";
    return fail(r, "restoring", "rescue run: the restore failed (exit status %d): %s", r->exit_status, why);
}

/* ---- the report ----------------------------------------------------------------------------- */

/* "2026-01-02 03:04:05 UTC", or for a file name "20260102-030405". */
static void stamp(time_t t, bool for_name, char *out, size_t len)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) ||
        !(for_name ? strftime(out, len, "%Y%m%d-%H%M%S", &tm) : strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm)))
        snprintf(out, len, "?");
}

static void report_text(FILE *f, const struct run *r)
{
    char a[64], b[64], size[32];
    stamp(r->started, false, a, sizeof a);
    stamp(time(NULL), false, b, sizeof b);
    fprintf(f, "asrimg rescue run (asrimg %s)\nstarted:  %s\nfinished: %s (%.1f s)\nmode:     %s\nimages:   %s\n",
            asr_version(), a, b, asr_now() - r->t0, r->interactive ? "interactive" : "unattended", r->s->images);
    if (r->image)
        fprintf(f, "image:    %s (machine %s)\n", r->image->name, r->image->machine);
    for (size_t i = 0; r->plan && i < r->plan->nto; i++)
        for (size_t k = 0; k < r->plan->ncand; k++)
            if (r->plan->cand[k].assigned == (int)r->plan->to[i].disk && !strcmp(r->plan->cand[k].path, r->plan->to[i].path))
                fprintf(f, "target:   image disk %u -> %s (%s)\n", r->plan->to[i].disk, r->plan->to[i].path,
                        cli_bytes(r->plan->cand[k].size, size, sizeof size));
    if (r->command[0])
        fprintf(f, "command:  %s\nrestore:  exit status %d, %.1f s\n", r->command, r->exit_status,
                r->restore_end - r->restore_start);
    fprintf(f, "verified: %s\n", r->verified ? "yes: every target reads back as the image" : "no");
    if (r->ok)
        fprintf(f, "result:   restored\n");
    else
        fprintf(f, "result:   FAILED while %s: %s\n", r->stage, r->error);
    fprintf(f, "next:     %s\n", r->next);
}

static void report_json(FILE *f, const struct run *r)
{
    struct json j;
    json_begin(&j, f);
    json_obj(&j, NULL);
    json_str(&j, "asrimg", asr_version());
    json_u64(&j, "started_unix", (uint64_t)r->started);
    json_u64(&j, "finished_unix", (uint64_t)time(NULL));
    json_dbl(&j, "seconds", asr_now() - r->t0);
    json_str(&j, "mode", r->interactive ? "interactive" : "unattended");
    json_str(&j, "images", r->s->images);
    r->image ? json_str(&j, "image", r->image->name) : json_null(&j, "image");
    r->image ? json_str(&j, "machine", r->image->machine) : json_null(&j, "machine");
    json_arr(&j, "targets");
    for (size_t i = 0; r->plan && r->command[0] && i < r->plan->nto; i++) {
        json_obj(&j, NULL);
        json_u64(&j, "disk", r->plan->to[i].disk);
        json_str(&j, "path", r->plan->to[i].path);
        json_end_obj(&j);
    }
    json_end_arr(&j);
    r->command[0] ? json_str(&j, "command", r->command) : json_null(&j, "command");
    if (r->command[0]) {
        json_u64(&j, "exit_status", (uint64_t)(r->exit_status < 0 ? 255 : r->exit_status));
        json_dbl(&j, "restore_seconds", r->restore_end - r->restore_start);
    }
    json_bool(&j, "ok", r->ok);
    json_bool(&j, "verified", r->verified);
    if (!r->ok) {
        json_str(&j, "failed_while", r->stage);
        json_str(&j, "error", r->error);
    }
    json_str(&j, "next", r->next);
    if (r->summary.json)
        json_raw(&j, "restore", r->summary.json);
    else
        json_null(&j, "restore");
    json_end_obj(&j);
    json_finish(&j);
}

/* Writes one report file, synced: the init powers off right after. */
static bool write_file(const char *path, void (*fn)(FILE *, const struct run *), const struct run *r)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    fn(f, r);
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    return fclose(f) == 0 && ok;
}

/* IMAGES/reports/rescue-YYYYmmdd-HHMMSS[-N].txt and .json; the paths written, said on stderr. */
static void write_report(const struct run *r)
{
    char dir[4200], base[4300], txt[4400], js[4400], when[32];
    snprintf(dir, sizeof dir, "%s/reports", r->s->images);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "asrimg: warning: rescue run: no report written: %s: %s\n", dir, strerror(errno));
        return;
    }
    stamp(r->started, true, when, sizeof when);
    for (unsigned k = 1; k < 100; k++) {
        if (k == 1)
            snprintf(base, sizeof base, "%s/rescue-%s", dir, when);
        else
            snprintf(base, sizeof base, "%s/rescue-%s-%u", dir, when, k);
        snprintf(txt, sizeof txt, "%s.txt", base);
        snprintf(js, sizeof js, "%s.json", base);
        if (access(txt, F_OK) != 0 && access(js, F_OK) != 0)
            break;
    }
    bool ok = write_file(txt, report_text, r) && write_file(js, report_json, r);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (ok)
        fprintf(stderr, "rescue run: report written: %s and %s\n", txt, js);
    else
        fprintf(stderr, "asrimg: warning: rescue run: the report could not be written: %s: %s\n", base, strerror(errno));
}

static void write_next(const struct run *r)
{
    if (!r->s->next_file)
        return;
    FILE *f = fopen(r->s->next_file, "w");
    if (!f || fprintf(f, "%s\n", r->next) < 0 || fclose(f) != 0)
        fprintf(stderr, "asrimg: warning: rescue run: cannot write %s: %s\n", r->s->next_file, strerror(errno));
}

/* ---- the flow ---------------------------------------------------------------------------------- */

static bool flow(struct run *r, struct rescue_list *l)
{
    if (rescue_list_dir(r->s->images, l))
        return fail(r, "listing the images", NULL);
    if (r->interactive || !r->s->image) {
        fprintf(human(r), "images in %s, newest first:\n", r->s->images);
        rescue_list_print(human(r), l, r->interactive);
    }
    if (!choose_image(r, l))
        return false;
    struct asr_image *im = NULL;
    struct asr_error err = {0};
    if (asr_image_open(r->image->path, &im, &err) != ASR_OK)
        return fail(r, "opening the image", "%s", err.msg);
    bool ok = false;
    for (size_t i = 0; i < r->s->ntargets; i++)
        if (rescue_add_target(r->plan, r->s->targets[i], "rescue run")) {
            fail(r, "matching the disks", NULL);
            goto out;
        }
    if (rescue_disks(r->s->drive, r->image->path, r->plan)) {
        fail(r, "listing the disks", NULL);
        goto out;
    }
    if (!settle(r, im))
        goto out;
    rescue_plan_print(human(r), r->image->path, im, r->plan);
    fflush(human(r));
    fprintf(stderr, "what the restore will overwrite:\n");
    if (rescue_check_targets(im, r->plan, true)) {
        fail(r, "checking the targets", NULL);
        goto out;
    }
    if (!confirmed(r)) {
        fail(r, "confirming", "rescue run: not confirmed: nothing was written");
        goto out;
    }
    ok = restore(r, im);
out:
    asr_image_free(im);
    return ok;
}

/* After a restore: reboot (the default), or a shell. Unattended: what asrimg.then says. */
static const char *next_action(struct run *r, bool ok)
{
    if (!ok)
        return "shell";
    if (!r->interactive)
        return r->s->then ? r->s->then : "poweroff";
    char line[16];
    if (!ask("Reboot now? [Y/n] (n: a shell) ", line, sizeof line))
        return "shell";
    return line[0] == 'n' || line[0] == 'N' ? "shell" : "reboot";
}

int rescue_run(int argc, char **argv)
{
    static struct settings s;
    static struct rescue_plan plan;
    s = (struct settings){0};
    plan = (struct rescue_plan){0};
    int rc = parse_args(argc, argv, &s);
    if (rc)
        return rc == ARG_HELP ? EXIT_OK : rc;
    struct run r = {.s = &s, .plan = &plan, .t0 = asr_now(), .started = time(NULL), .exit_status = -1};
    if ((rc = load_settings(&s))) {
        r.next = "shell"; /* the init still needs to hear what to do */
        write_next(&r);
        return rc;
    }
    r.interactive = !s.yes;
    struct rescue_list l = {0};
    bool ok;
    if (r.interactive && !(isatty(STDIN_FILENO) && isatty(STDERR_FILENO)))
        ok = fail(&r, "starting", "rescue run: no terminal to ask on: pass --yes (asrimg.yes) and name the image "
                                  "(asrimg.restore=NAME or latest)");
    else
        ok = flow(&r, &l);
    bool declined = !ok && (!strcmp(r.stage, "confirming") || !strcmp(r.stage, "choosing the image") ||
                            !strcmp(r.stage, "matching the disks")) &&
                    strstr(r.error, "nothing was written") && r.interactive;
    r.next = next_action(&r, ok);
    /* A restore that ran, or a flow that failed, is reported; the user saying no is not a failure
     * to keep a record of. */
    if (!declined)
        write_report(&r);
    if (s.json)
        report_json(stdout, &r);
    write_next(&r);
    fprintf(stderr, "rescue run: next: %s\n", r.next);
    rescue_summary_free(&r.summary);
    rescue_list_free(&l);
    return ok ? EXIT_OK : EXIT_FAIL;
}
