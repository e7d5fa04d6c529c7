/*
 * The one clock for durations and deadlines: CLOCK_MONOTONIC, which
 * neither NTP steps nor an operator's `date` move, in milliseconds.
 */
#include "host.h"

#include <time.h>

double
clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
