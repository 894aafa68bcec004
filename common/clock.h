/* The monotonic clock, for durations (throughput figures, time spent waiting): never the wall
 * clock, which may step while a backup runs. */
#ifndef ASR_CLOCK_H
#define ASR_CLOCK_H
#include <stdint.h>

/* Seconds since an arbitrary fixed point. */
double asr_now(void);
/* The same in nanoseconds, for sums of many short waits. */
uint64_t asr_now_ns(void);

#endif
