/* libFuzzer harness for the disk layout reader: the input is a whole disk image (MBR, GPT,
 * EBR chains, anything); libfdisk, the EBR walk, probing, the used-map parsers and the machine's
 * analysis (LVM stacks, roots' fstab) must cope.
 * Built with replay.c it replays the corpus under any compiler. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/asrimg-fuzz-layout-XXXXXX";
static char path[64];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

/* One directory per process, removed at exit (a fuzzing run ends with exit()), so parallel
 * fuzzers never share the disk file and none is left behind. */
static void make_path(void)
{
    if (path[0])
        return;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/disk.img", dir);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_path();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    close(fd);
    struct asr_disk *d = NULL;
    struct asr_error err;
    if (asr_disk_open(path, &d, &err) == ASR_OK) {
        struct asr_volume_info *v = NULL;
        size_t n = 0;
        struct asr_machine *m = NULL;
        if (asr_disk_analyze(d, 0, &v, &n, &err) == ASR_OK && asr_machine_analyze(&d, &v, &n, 1, NULL, &m, &err) == ASR_OK &&
            asr_select_volumes(v, n, "all", &err) == ASR_OK)
            asr_machine_select(m, "all", &err);
        asr_machine_free(m);
        asr_volume_infos_free(v, n);
        asr_disk_close(d);
    }
    return 0;
}
