/* asrimg: command dispatch. The commands live one per file (cmd_*.c); what they share lives in
 * util.c, json.c, progress.c, disks.c and targets.c, none of which calls back in here. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "asr_engine.h"
#include "help.h"
#include "util.h"

/* asrimg help [COMMAND | --man] */
static int help(int argc, char **argv)
{
    if (argc < 2) {
        cli_help_overview(stdout);
        return EXIT_OK;
    }
    if (argc > 3)
        return cli_error("help: one command at a time"), EXIT_USAGE;
    if (!strcmp(argv[1], "--man") && argc == 2) {
        cli_help_man(stdout);
        return EXIT_OK;
    }
    /* "help rescue run" names the subcommand; "help rescue" shows them all (store likewise). */
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", argv[1], argc == 3 ? " " : "", argc == 3 ? argv[2] : "");
    if (argc == 2 && cli_help_group(stdout, argv[1]))
        return EXIT_OK;
    const struct cli_command *c = cli_command_find(name);
    if (!c)
        return cli_error("help: unknown command '%s' (see 'asrimg help')", name), EXIT_USAGE;
    cli_help_command(stdout, c);
    return EXIT_OK;
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
    if (!strcmp(cmd, "mount"))
        return cmd_mount(argc - 1, argv + 1);
    if (!strcmp(cmd, "umount"))
        return cmd_umount(argc - 1, argv + 1);
    if (!strcmp(cmd, "rescue"))
        return cmd_rescue(argc - 1, argv + 1);
    if (!strcmp(cmd, "store"))
        return cmd_store(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("asrimg %s (image format %u)\n", asr_version(), ASR_FORMAT_VERSION);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "help"))
        return help(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return help(1, argv + 1);
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
