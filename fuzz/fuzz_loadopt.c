/* libFuzzer harness for UEFI load options (format/loadopt.c), the bytes of a Boot#### variable
 * that backup reads from the firmware (efivarfs) and an image's machine record carries. Whatever
 * asr_load_option_parse accepts must print as a device path, and, when it names a GPT HD() node,
 * build again in short form (HD()/file/End) into bytes that parse to the same description,
 * attributes, HD() node, file nodes and optional data. replay.c can replay a corpus. */
#include "asr_engine.h"
#include "asr_format.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const void *a, const void *b, size_t n)
{
    if (n && memcmp(a, b, n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct asr_load_option o;
    struct asr_error err = {0};
    if (asr_load_option_parse(data, size, &o, &err)) {
        if (!err.msg[0])
            abort(); /* every refusal says why */
        return 0;
    }
    char text[512];
    asr_efi_path_text(o.path, o.path_len, text, sizeof text);
    if (!memchr(text, '\0', sizeof text) || !memchr(o.description, '\0', sizeof o.description))
        abort();
    if (!o.has_hd)
        return 0;
    if (o.file_at > o.path_len || o.file_len > o.path_len - o.file_at)
        abort();
    uint8_t *out = malloc(size + 64);
    if (!out)
        return 0;
    size_t len = 0;
    if (asr_load_option_build(o.attributes, o.desc, o.desc_len, &o.hd, o.path + o.file_at, o.file_len, o.optional,
                              o.optional_len, out, size + 64, &len, &err) == 0) {
        struct asr_load_option back;
        if (asr_load_option_parse(out, len, &back, &err) || !back.has_hd)
            abort();
        if (back.attributes != o.attributes || back.desc_len != o.desc_len || back.file_len != o.file_len ||
            back.optional_len != o.optional_len || back.hd.partition != o.hd.partition ||
            back.hd.start_lba != o.hd.start_lba || back.hd.size_lba != o.hd.size_lba)
            abort();
        same_or_abort(back.desc, o.desc, o.desc_len);
        same_or_abort(back.hd.guid, o.hd.guid, sizeof o.hd.guid);
        same_or_abort(back.path + back.file_at, o.path + o.file_at, o.file_len);
        same_or_abort(back.optional, o.optional, o.optional_len);
    }
    free(out);
    return 0;
}
