/* asrimg rescue SUBCOMMAND: the recovery drive. Only dispatches; each subcommand lives in its
 * own file (rescue_images.c, rescue_plan.c, rescue_run.c). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "help.h"
#include "rescue.h"
#include "util.h"

int cmd_rescue(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {
        {"images", rescue_images},
        {"plan", rescue_plan},
        {"run", rescue_run},
    };
    if (argc < 2) {
        cli_error("rescue: no subcommand given: images, plan or run (see 'asrimg help rescue')");
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
