/* getopt_long over a command's option table. Its "-" mode hands back words in the order given,
 * so "verify IMG --against A B" knows B came after --against, and "-" (standard input) is a
 * word; errors are reported here, once, in asrimg's one-line form. */
#include "args.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* Long options come back as LONG_BASE + id, clear of getopt's own 1, ':' and '?' and of the
 * short options' characters. */
#define LONG_BASE 0x100

void cli_args_init(struct cli_args *a, int argc, char **argv)
{
    *a = (struct cli_args){.cmd = cli_command_find(argv[0]), .argc = argc, .argv = argv};
    size_t n = 0, s = 0;
    /* '-': words in order; ':': a missing value comes back as ':', not '?'. */
    a->shortopts[s++] = '-';
    a->shortopts[s++] = ':';
    a->shortopts[s++] = 'h';
    a->longopts[n++] = (struct option){"help", no_argument, NULL, LONG_BASE + OPT_HELP};
    for (const struct cli_option *o = a->cmd->options; o->id; o++) { /* fits: help.c asserts so */
        a->longopts[n++] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL, LONG_BASE + o->id};
        if (o->short_name) {
            a->shortopts[s++] = o->short_name;
            if (o->arg)
                a->shortopts[s++] = ':';
        }
    }
    a->longopts[n] = (struct option){0};
    a->shortopts[s] = '\0';
    optind = 0; /* glibc: start afresh */
    opterr = 0;
}

static int short_id(const struct cli_args *a, int c)
{
    for (const struct cli_option *o = a->cmd->options; o->id; o++)
        if (o->short_name == c)
            return o->id;
    return c == 'h' ? OPT_HELP : 0;
}

/* Whether "--NAME=..." names an option that takes no value (getopt says only '?'). */
static bool takes_no_value(const struct cli_args *a, const char *name, size_t len)
{
    for (const struct option *o = a->longopts; o->name; o++)
        if (!strncmp(o->name, name, len) && !o->name[len] && o->has_arg == no_argument)
            return true;
    return false;
}

/* The option a failure is about, as written: "--frobnicate", "--json=1", "-x". */
static void name_failure(const struct cli_args *a, int at, char *buf, size_t len)
{
    const char *word = at < a->argc ? a->argv[at] : "";
    if (!strncmp(word, "--", 2) || !optopt)
        snprintf(buf, len, "%s", word);
    else
        snprintf(buf, len, "-%c", optopt);
}

int cli_args_next(struct cli_args *a, const char **value)
{
    *value = NULL;
    if (a->options_ended)
        return optind < a->argc ? (*value = a->argv[optind++], ARG_WORD) : ARG_END;
    int at = optind ? optind : 1;
    int c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts, NULL);
    const char *cmd = a->cmd->name;
    char what[64];
    switch (c) {
    case -1:
        /* The end, or "--": what follows it is words, even when it starts with '-'. */
        a->options_ended = true;
        return cli_args_next(a, value);
    case 1:
        *value = optarg;
        return ARG_WORD;
    case ':':
        name_failure(a, at, what, sizeof what);
        cli_error("%s: option %s needs a value (see 'asrimg %s --help')", cmd, what, cmd);
        return ARG_USAGE;
    case '?': {
        name_failure(a, at, what, sizeof what);
        const char *eq = strchr(what, '=');
        if (!strncmp(what, "--", 2) && eq && takes_no_value(a, what + 2, (size_t)(eq - what - 2)))
            cli_error("%s: option %.*s takes no value (see 'asrimg %s --help')", cmd, (int)(eq - what), what, cmd);
        else
            cli_error("%s: unknown option %s (see 'asrimg %s --help')", cmd, what, cmd);
        return ARG_USAGE;
    }
    default:
        break;
    }
    int id = c >= LONG_BASE ? c - LONG_BASE : short_id(a, c);
    if (id == OPT_HELP) {
        cli_help_command(stdout, a->cmd);
        return ARG_HELP;
    }
    *value = optarg;
    return id;
}
