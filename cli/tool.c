/* External tools run from argument arrays: posix_spawnp with standard input from /dev/null and
 * both outputs read through pipes (poll, so neither can fill and stall the tool), the output
 * kept when the caller wants it and the last line of the rest kept for the error message. */
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The last non-empty line a tool printed, for the message. */
struct tail {
    char cur[256], last[256];
    size_t len;
};

static void tail_add(struct tail *t, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r') {
            if (t->len + 1 < sizeof t->cur)
                t->cur[t->len++] = p[i];
            continue;
        }
        if (t->len) {
            memcpy(t->last, t->cur, t->len);
            t->last[t->len] = '\0';
            t->len = 0;
        }
    }
}

static void drain(int fds[2], char *out, size_t outlen, struct tail *said)
{
    size_t kept = 0;
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[4096];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0 && out) {
                size_t room = outlen - 1 - kept, take = (size_t)n < room ? (size_t)n : room;
                memcpy(out + kept, buf, take);
                kept += take;
                out[kept] = '\0';
            } else {
                tail_add(said, buf, (size_t)n);
            }
        }
    }
}

int cli_tool_run(const char *const *argv, const char *doing, char *out, size_t outlen, struct asr_error *err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (out && outlen)
        out[0] = '\0';
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        return asr_fail_public(err, ASR_E_IO, "%s (%s): cannot make a pipe: %s", argv[0], doing, strerror(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pe[1], STDERR_FILENO);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (e) {
        close(po[0]);
        close(pe[0]);
        return asr_fail_public(err, ASR_E_IO, "%s (%s): cannot run it: %s", argv[0], doing,
                               e == ENOENT ? "not installed (not found in PATH)" : strerror(e));
    }
    struct tail said = {0};
    int fds[2] = {po[0], pe[0]};
    drain(fds, out, outlen, &said);
    tail_add(&said, "\n", 1);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return asr_fail_public(err, ASR_E_IO, "%s (%s): cannot wait for it: %s", argv[0], doing, strerror(errno));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return ASR_OK;
    char how[32];
    if (WIFEXITED(status))
        snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return asr_fail_public(err, ASR_E_IO, "%s (%s) failed (%s)%s%s", argv[0], doing, how, said.last[0] ? ": " : "",
                           said.last);
}
