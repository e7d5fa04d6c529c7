/*
 * In-process counters for GET /metrics: what the job store cannot tell
 * (durations, storage errors, postback attempts). Counters start at zero
 * with the process, as Prometheus expects of counters; the store's gauges
 * (processes by status, queue depth) come from the store itself. All
 * calls are thread-safe.
 */
#ifndef KILN_SERVER_METRICS_H
#define KILN_SERVER_METRICS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct kiln_metrics kiln_metrics;

typedef enum metrics_postback {
    METRICS_PB_DELIVERED, /* a 2xx answer */
    METRICS_PB_FAILED,    /* an attempt failed; it will be retried */
    METRICS_PB_GIVEN_UP,  /* an attempt failed and none will follow */
    METRICS_PB_N
} metrics_postback;

kiln_metrics *metrics_new(void);
void metrics_free(kiln_metrics *m);

/* One job of a process ran for `seconds`; ok: it was written. */
void metrics_job(kiln_metrics *m, double seconds, bool ok);
/* One process run ended ("finished", "failed", "requeued", "timeout",
 * "interrupted"). */
void metrics_process(kiln_metrics *m, double seconds, const char *outcome);
/* The same, counted for `service` too (kiln_processes_ended_total; -1:
 * none). Outcomes add "cancelled". */
void metrics_process_of(kiln_metrics *m, int service, double seconds,
                        const char *outcome);
/* One API call of `route` (a static template string, "/status/{id}")
 * answered with `status` in `seconds`. */
void metrics_http(kiln_metrics *m, const char *route, int status,
                  double seconds);
/* Processes this host runs now: +1 when a worker starts one, -1 when it
 * ends. */
void metrics_running(kiln_metrics *m, int delta);
/* When the server started (seconds since 1970), for /health's uptime. */
double metrics_started(const kiln_metrics *m);
/* n storage operations (read, write, commit) failed. */
void metrics_storage_errors(kiln_metrics *m, int n);
/* Counts streamed sources decoded a second time
 * (plugins/backend-vips/stream.c). */
void metrics_redecodes(kiln_metrics *m, int n);
void metrics_postback_attempt(kiln_metrics *m, metrics_postback outcome);

/* Writes the counters and histograms in Prometheus text format (0.0.4). */
void metrics_write(kiln_metrics *m, FILE *f);

#endif /* KILN_SERVER_METRICS_H */
