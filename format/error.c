/* Status names and the error-message helper every format/ module reports through. */
#include "internal.h"

#include <stdio.h>
#include "xxhash_fast.h"

static const char *const status_names[] = {
    [ASR_OK] = "ok",
    [ASR_E_IO] = "i/o error",
    [ASR_E_NOMEM] = "out of memory",
    [ASR_E_ARG] = "invalid argument",
    [ASR_E_NOT_IMAGE] = "not an asrimg image",
    [ASR_E_INCOMPLETE] = "incomplete image",
    [ASR_E_CORRUPT] = "corrupt image",
    [ASR_E_UNSUPPORTED] = "unsupported image",
    [ASR_E_PARTS] = "bad split set",
    [ASR_E_EXISTS] = "already exists",
    [ASR_E_UNREADABLE] = "unreadable on source",
    [ASR_E_LIMIT] = "over a limit",
    [ASR_E_STATE] = "call out of order",
};

const char *asr_status_name(enum asr_status code)
{
    if ((unsigned)code < sizeof status_names / sizeof status_names[0] && status_names[code])
        return status_names[code];
    return "unknown error";
}

int asr_fail_public(struct asr_error *err, enum asr_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

uint64_t fmt_checksum64(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

const char *asr_version(void)
{
    return ASRIMG_VERSION;
}
