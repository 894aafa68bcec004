/* cli/args.h: a command's arguments parsed with getopt_long by its table in help.c: --opt=value
 * and --opt value, clustered short options, -- ending the options, -h/--help. Positional
 * arguments come back in the order given, between the options (verify --against needs that). */
#ifndef ASR_CLI_ARGS_H
#define ASR_CLI_ARGS_H

#include <getopt.h>
#include <stdbool.h>

#include "help.h"

enum {
    ARG_END = 0,     /* no more arguments */
    ARG_WORD = -1,   /* a positional argument, in *value */
    ARG_HELP = -2,   /* -h/--help: the help is printed; exit 0 */
    ARG_USAGE = -3,  /* an unknown option or a missing value: said in one line; exit 2 */
};

struct cli_args {
    const struct cli_command *cmd;
    int argc;
    char **argv;
    bool options_ended; /* after "--" */
    struct option longopts[CLI_OPTIONS_MAX + 2];   /* and --help, and the end */
    char shortopts[4 + 2 * CLI_OPTIONS_MAX + 1]; /* "-:h", then a letter and ":" each */
};

/* argv[0] is the command's name, which must be in the table. */
void cli_args_init(struct cli_args *a, int argc, char **argv);
/* The next argument: an OPT_* id (its value, if it takes one, in *value), or one of ARG_*. */
int cli_args_next(struct cli_args *a, const char **value);

#endif
