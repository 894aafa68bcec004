/* cli/tool.h: the external tools a command runs (mkfs, losetup, mtools, grub-mkimage), each from
 * an argument array through posix_spawnp, never a shell line. A failure is one message naming the
 * tool, what it was doing, and the last line it printed. */
#ifndef ASR_CLI_TOOL_H
#define ASR_CLI_TOOL_H

#include <stddef.h>

#include "asr_engine.h"

/* Runs argv (argv[0] looked up in PATH; NULL-terminated) with standard input from /dev/null.
 * Its standard output goes into out (NUL-terminated, at most outlen - 1 bytes kept) when out is
 * not NULL; what it prints otherwise is kept only to name a failure. `doing` says what it was for
 * ("making the ESP's filesystem"). ASR_OK, or ASR_E_IO with err saying which tool failed and how. */
int cli_tool_run(const char *const *argv, const char *doing, char *out, size_t outlen, struct asr_error *err);

#endif
