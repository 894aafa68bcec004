/* cli/help.h: the one description of asrimg's commands (synopsis, what each does, its options,
 * examples). It feeds `asrimg help`, every command's --help, the option parser (args.h) and the
 * man page, so that none of them can say something the others do not. */
#ifndef ASR_CLI_HELP_H
#define ASR_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* What a command's parser switches on: one meaning per option across every command. */
enum cli_opt_id {
    OPT_HELP = 1,
    OPT_JSON,
    OPT_VOLUMES,
    OPT_EXTENTS,
    OPT_OUTPUT,
    OPT_LEVEL,
    OPT_THREADS,
    OPT_SPLIT,
    OPT_FORCE,
    OPT_IGNORE_READ_ERRORS,
    OPT_FREEZE,
    OPT_AVG_CHUNK,
    OPT_TO,
    OPT_YES,
    OPT_NEW_IDS,
    OPT_GROW,
    OPT_VERIFY,
    OPT_DISCARD,
    OPT_ZERO_UNUSED,
    OPT_KEEP_GOING,
    OPT_AGAINST,
    OPT_KEY_FILE,
    OPT_UNLOCK,
    OPT_OUTPUT_DIR,
    OPT_BOOT_ENTRIES,
    OPT_ALLOW_OTHER,
    OPT_CACHE,
    OPT_DAEMON,
    OPT_SIZE,
    OPT_DATA_FS,
    OPT_LABEL,
    OPT_SYSTEM_ROOT,
    OPT_KERNEL_ARGS,
    OPT_IMAGES,
    OPT_IMAGE,
    OPT_DRIVE,
    OPT_TARGET,
    OPT_NEXT_FILE,
    OPT_CMDLINE_FILE,
    OPT_STORE_KEY,
    OPT_ENDPOINT,
    OPT_HOST,
    OPT_KEEP_LAST,
    OPT_KEEP_DAILY,
    OPT_KEEP_WEEKLY,
    OPT_KEEP_MONTHLY,
    OPT_DRY_RUN,
    OPT_READ_DATA,
    OPT_NO_HINTS,
    OPT_NO_PATCHES,
};

/* Options of one command at most, --help besides (cli_args holds them in fixed arrays). */
#define CLI_OPTIONS_MAX 22

struct cli_option {
    int id;           /* enum cli_opt_id */
    char short_name;  /* 0: none */
    const char *name; /* the long name, without "--" */
    const char *arg;  /* NULL: takes no value; else the value's name as help shows it */
    const char *help;
};

struct cli_example {
    const char *line; /* after "asrimg " */
    const char *what;
};

struct cli_command {
    const char *name;
    const char *synopsis[3];           /* each form, after "asrimg "; NULL-terminated */
    const char *summary;               /* the overview's line */
    const char *description;           /* paragraphs, separated by "\n\n" */
    const struct cli_option *options;  /* ends with an all-zero entry; -h/--help not listed */
    const struct cli_example *examples; /* ends with an all-zero entry */
};

/* The command named so, or NULL. */
const struct cli_command *cli_command_find(const char *name);

void cli_help_overview(FILE *f);                                /* asrimg help */
void cli_help_command(FILE *f, const struct cli_command *cmd); /* asrimg help CMD, CMD --help */
void cli_help_man(FILE *f);                                     /* asrimg help --man: asrimg.8 */
/* A command with subcommands ("rescue": the table's "rescue make", "rescue update" ...): their
 * synopses and summaries. False, printing nothing, when no command is named "GROUP ...". */
bool cli_help_group(FILE *f, const char *group);

#endif
