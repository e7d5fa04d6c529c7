/*
 * GET /stats (server.h, server_stats_json): per hour over the last 24
 * hours or per UTC day over the last 30 days, the processes that ended
 * in each bucket by outcome and the p50 and p95 of their processing
 * times. Computed here from the ended processes the job store lists, so
 * that both drivers give the same figures (SQLite has no percentile
 * function); retention (30 days by default) bounds what is read.
 */
#include "server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
stats_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile (0..1) of n sorted values, interpolated between
 * the closest ranks (as PostgreSQL's percentile_cont). */
static double
stats_percentile(const double *v, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

cJSON *
server_stats_json(kiln_server *s, const char *window, const int *service_ids,
                  size_t n_service_ids, int64_t now, kiln_error *err)
{
    bool day = strcmp(window, "30d") == 0;
    int64_t step = day ? 86400 : 3600;
    int n_points = day ? 30 : 24;
    /* The last bucket holds now; buckets start on the hour or at UTC
     * midnight. */
    int64_t first = (now / step) * step - (int64_t)(n_points - 1) * step;
    jobstore_ended_process *rows = NULL;
    size_t n = 0;
    if (jobstore_list_ended(s->store, service_ids, n_service_ids, first,
                            first + (int64_t)n_points * step, &rows, &n,
                            err) != KILN_OK) {
        return NULL;
    }
    double *durations = malloc((n + 1) * sizeof *durations);
    cJSON *o = cJSON_CreateObject();
    if (durations == NULL || o == NULL) {
        free(durations);
        free(rows);
        cJSON_Delete(o);
        err_set(err, KILN_ENOMEM, "out of memory");
        return NULL;
    }
    cJSON_AddStringToObject(o, "window", day ? "30d" : "24h");
    cJSON_AddStringToObject(o, "bucket", day ? "day" : "hour");
    cJSON *points = cJSON_AddArrayToObject(o, "points");
    size_t r = 0; /* rows come in updated_at order */
    for (int i = 0; i < n_points; i++) {
        int64_t start = first + (int64_t)i * step;
        int64_t counts[JOBSTORE_N_STATUS] = {0};
        size_t nd = 0;
        for (; r < n && rows[r].updated_at < start + step; r++) {
            if (rows[r].updated_at < start) {
                continue;
            }
            if ((int)rows[r].status >= 0 &&
                rows[r].status < JOBSTORE_N_STATUS) {
                counts[rows[r].status]++;
            }
            if (rows[r].duration_ms >= 0) {
                durations[nd++] = rows[r].duration_ms;
            }
        }
        cJSON *p = cJSON_CreateObject();
        char when[32];
        server_format_time(start, when);
        cJSON_AddStringToObject(p, "start", when);
        cJSON_AddNumberToObject(p, "finished",
                                (double)counts[JOBSTORE_FINISHED]);
        cJSON_AddNumberToObject(p, "failed", (double)counts[JOBSTORE_FAILED]);
        cJSON_AddNumberToObject(p, "cancelled",
                                (double)counts[JOBSTORE_CANCELLED]);
        if (nd > 0) {
            qsort(durations, nd, sizeof *durations, stats_cmp);
            cJSON_AddNumberToObject(
                p, "p50_ms",
                round(stats_percentile(durations, nd, 0.5) * 10) / 10);
            cJSON_AddNumberToObject(
                p, "p95_ms",
                round(stats_percentile(durations, nd, 0.95) * 10) / 10);
        } else {
            cJSON_AddNullToObject(p, "p50_ms");
            cJSON_AddNullToObject(p, "p95_ms");
        }
        cJSON_AddItemToArray(points, p);
    }
    free(durations);
    free(rows);
    return o;
}
