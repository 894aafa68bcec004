/* cli/rescue_child.h: the --json summary of the restore rescue run ran (rescue_child.c). */
#ifndef ASR_CLI_RESCUE_CHILD_H
#define ASR_CLI_RESCUE_CHILD_H

#include <stdbool.h>

struct rescue_summary {
    char *json; /* the summary, one JSON object on a line; NULL when there was none */
    bool ok, verified;
    unsigned long long bytes; /* data and zero bytes laid down */
    double seconds;
    char error[1024];
};
void rescue_summary_parse(const char *text, struct rescue_summary *out);
void rescue_summary_free(struct rescue_summary *s);

#endif
