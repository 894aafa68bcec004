/* asrimg: command dispatch. The commands live one per file (cmd_*.c); what they share lives in
 * util.c, json.c, progress.c, disks.c and targets.c, none of which calls back in here. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "asr_engine.h"
#include "util.h"

static void usage(void)
{
    printf("usage: asrimg COMMAND [ARGS]\n"
           "\n"
           "commands:\n"
           "  layout DISK... [--volumes critical|all|LIST] [--json]\n"
           "                          disks, partitions, filesystems, used bytes, critical volumes\n"
           "  backup DISK... -o IMAGE [--volumes critical|all|LIST] [--level N] [--threads N]\n"
           "         [--split SIZE|fat32] [--force] [--ignore-read-errors] [--freeze] [--json]\n"
           "                          image the selected volumes and every disk's layout ('-o -': stdout);\n"
           "                          --freeze: freeze a volume mounted read-write while it is read\n"
           "  bench DISK... [--volumes ...] [--level N] [--threads N] [--json]\n"
           "                          measure read, hash and compression speed; project image size and time\n"
           "  restore IMAGE|- --to TARGET [--to TARGET ...] [--yes] [--new-ids] [--grow] [--verify]\n"
           "          [--discard|--zero-unused] [--keep-going] [--threads N] [--json]\n"
           "                          lay the image onto replacement disks as large or larger (mirrors:\n"
           "                          several --to for one disk); --to N=TARGET for image disk N\n"
           "  info IMAGE [--json]     format, creator, disks, partitions, volumes, sizes and ratios\n"
           "  verify IMAGE [--json]   check every checksum; exit 0 only if every byte checks out\n"
           "  verify IMAGE --against DISK... [--new-ids] [--grow] [--json]\n"
           "                          compare restored disks with the image, naming the first difference\n"
           "  version                 print the version\n"
           "\n"
           "IMAGE is an .asrimg file, or the first part of a split set (IMAGE.002 ... beside it).\n");
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("no command given (see 'asrimg help')");
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "backup"))
        return cmd_backup(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "layout"))
        return cmd_layout(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "restore"))
        return cmd_restore(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("asrimg %s (image format %u)\n", asr_version(), ASR_FORMAT_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage();
        return EXIT_OK;
    }
    cli_error("unknown command '%s' (see 'asrimg help')", cmd);
    return EXIT_USAGE;
}

/* Output that did not all arrive (a closed pipe, a full disk) is a failure like any other. */
static int finish_stdout(int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    if (rc == EXIT_OK)
        cli_error("writing standard output: %s", errno ? strerror(errno) : "failed");
    return rc == EXIT_OK ? EXIT_FAIL : rc;
}

int main(int argc, char **argv)
{
    /* A write to a closed pipe, or past the file size limit, fails (EPIPE, EFBIG) instead of
     * killing the process without a word: the command then says so, removes what it left
     * unfinished (IMAGE.partial) and exits 1. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    return finish_stdout(run(argc, argv));
}
