/* asrimg rescue SUBCOMMAND: the recovery drive. Only dispatch here; make and update (the drive and
 * its environment) live in rescue_make.c. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "help.h"
#include "rescue_drive.h"
#include "util.h"

int cmd_rescue(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("rescue: which one? make or update (see 'asrimg help rescue')");
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "make"))
        return rescue_make(argc - 1, argv + 1);
    if (!strcmp(sub, "update"))
        return rescue_update(argc - 1, argv + 1);
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        cli_help_group(stdout, "rescue");
        return EXIT_OK;
    }
    cli_error("rescue: unknown subcommand '%s': make or update (see 'asrimg help rescue')", sub);
    return EXIT_USAGE;
}
