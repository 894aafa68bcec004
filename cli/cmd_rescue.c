/* asrimg rescue SUBCOMMAND: the recovery drive. Only dispatches: make and update (the drive and its
 * environment) live in rescue_make.c; images, plan and run (the restore flow the drive runs) in
 * rescue_images.c, rescue_plan.c and rescue_run.c. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "help.h"
#include "rescue.h"
#include "rescue_drive.h"
#include "util.h"

int cmd_rescue(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {
        {"make", rescue_make}, {"update", rescue_update}, {"images", rescue_images},
        {"plan", rescue_plan}, {"run", rescue_run},
    };
    if (argc < 2) {
        cli_error("rescue: no subcommand given: make, update, images, plan or run (see 'asrimg help rescue')");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cli_help_group(stdout, "rescue"), EXIT_OK;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) {
            /* The option parser and the help know a subcommand as "rescue NAME". */
            static char name[32];
            snprintf(name, sizeof name, "rescue %s", subs[i].name);
            argv[1] = name;
            return subs[i].fn(argc - 1, argv + 1);
        }
    cli_error("rescue: unknown subcommand '%s' (see 'asrimg help rescue')", argv[1]);
    return EXIT_USAGE;
}
