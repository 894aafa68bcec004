/* What analyze.c shares with the other modules of engine/analyze/ (stacks.c, bootscan.c): a
 * volume's filesystem and used map, and the content check for "needed to boot", for any window,
 * so a logical volume is judged as a partition is. Internal to the engine. */
#ifndef ASR_ANALYZE_H
#define ASR_ANALYZE_H
#include <stdbool.h>

#include "asr_engine.h"

/* Fills v->map and v->natural_capture (the reason in v->warning when the capture is whole, a read
 * error in v->read_error) from the filesystem in w; no_filesystem_type: the volume's type says it
 * holds none (captured whole). Returns the parser's status, ASR_OK when there was none to ask. */
int analyze_map_volume(const struct asr_window *w, bool no_filesystem_type, struct asr_volume_info *v);
/* Sets v->critical and v->reason when the filesystem's contents show it is needed to boot (a root
 * or /boot of Linux, a Windows system volume); else a reason saying nothing shows it, unless one
 * is set. map_rc: what analyze_map_volume returned. */
void analyze_boot_content(const struct asr_window *w, int map_rc, struct asr_volume_info *v);

#endif
