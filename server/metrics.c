/*
 * The counters and histograms of GET /metrics (metrics.h). A histogram
 * keeps cumulative-at-write bucket counts, a sum and a count, the shape
 * Prometheus' text format asks for; one mutex guards everything, which
 * is cheap next to the image work each observation stands for.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds, from a tiny thumbnail to a giant image. */
static const double metrics_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define METRICS_N_BOUNDS (sizeof metrics_bounds / sizeof metrics_bounds[0])

typedef struct metrics_hist {
    unsigned long long bucket[METRICS_N_BOUNDS]; /* per bucket, not summed */
    unsigned long long count;
    double sum;
} metrics_hist;

static const char *const metrics_outcomes[] = {
    "finished", "failed", "requeued", "timeout", "interrupted", "dropped"};
#define METRICS_N_OUTCOMES                                                     \
    (sizeof metrics_outcomes / sizeof metrics_outcomes[0])

static const char *const metrics_pb_names[METRICS_PB_N] = {
    "delivered", "failed", "given_up"};

typedef struct metrics_data {
    metrics_hist jobs[2]; /* [0] failed, [1] ok */
    metrics_hist processes[METRICS_N_OUTCOMES];
    unsigned long long storage_errors;
    unsigned long long redecodes;
    unsigned long long postbacks[METRICS_PB_N];
} metrics_data;

struct kiln_metrics {
    pthread_mutex_t mu;
    metrics_data d;
};

kiln_metrics *
metrics_new(void)
{
    kiln_metrics *m = calloc(1, sizeof *m);
    if (m != NULL) {
        pthread_mutex_init(&m->mu, NULL);
    }
    return m;
}

void
metrics_free(kiln_metrics *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void
metrics_observe(metrics_hist *h, double seconds)
{
    for (size_t i = 0; i < METRICS_N_BOUNDS; i++) {
        if (seconds <= metrics_bounds[i]) {
            h->bucket[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void
metrics_job(kiln_metrics *m, double seconds, bool ok)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    metrics_observe(&m->d.jobs[ok ? 1 : 0], seconds);
    pthread_mutex_unlock(&m->mu);
}

void
metrics_process(kiln_metrics *m, double seconds, const char *outcome)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
        if (strcmp(outcome, metrics_outcomes[i]) == 0) {
            pthread_mutex_lock(&m->mu);
            metrics_observe(&m->d.processes[i], seconds);
            pthread_mutex_unlock(&m->mu);
            return;
        }
    }
}

void
metrics_storage_errors(kiln_metrics *m, int n)
{
    if (m == NULL || n <= 0) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->d.storage_errors += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

void
metrics_redecodes(kiln_metrics *m, int n)
{
    if (m == NULL || n <= 0) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->d.redecodes += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

void
metrics_postback_attempt(kiln_metrics *m, metrics_postback outcome)
{
    if (m == NULL || outcome >= METRICS_PB_N) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->d.postbacks[outcome]++;
    pthread_mutex_unlock(&m->mu);
}

static void
metrics_write_hist(FILE *f, const char *name, const char *label,
                   const char *value, const metrics_hist *h)
{
    unsigned long long cum = 0;
    for (size_t i = 0; i < METRICS_N_BOUNDS; i++) {
        cum += h->bucket[i];
        fprintf(f, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value,
                metrics_bounds[i], cum);
    }
    fprintf(f, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value,
            h->count);
    fprintf(f, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value, h->sum);
    fprintf(f, "%s_count{%s=\"%s\"} %llu\n", name, label, value, h->count);
}

void
metrics_write(kiln_metrics *m, FILE *f)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    metrics_data s = m->d; /* a consistent snapshot; print unlocked */
    pthread_mutex_unlock(&m->mu);
    fputs("# HELP kiln_job_duration_seconds Time to run one job (its "
          "transformations, encoding and writing).\n"
          "# TYPE kiln_job_duration_seconds histogram\n",
          f);
    metrics_write_hist(f, "kiln_job_duration_seconds", "outcome", "ok",
                       &s.jobs[1]);
    metrics_write_hist(f, "kiln_job_duration_seconds", "outcome", "failed",
                       &s.jobs[0]);
    fputs("# HELP kiln_process_duration_seconds Time to run one process "
          "(read, decode, every job, commit).\n"
          "# TYPE kiln_process_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
        metrics_write_hist(f, "kiln_process_duration_seconds", "outcome",
                           metrics_outcomes[i], &s.processes[i]);
    }
    fprintf(f,
            "# HELP kiln_storage_errors_total Storage reads, writes and "
            "commits that failed.\n"
            "# TYPE kiln_storage_errors_total counter\n"
            "kiln_storage_errors_total %llu\n",
            s.storage_errors);
    fprintf(f,
            "# HELP kiln_source_redecodes_total Sources decoded in strips "
            "that had to be decoded again, whole, because a read left the "
            "loader's cache (an op whose KILN_OP_SEQUENTIAL flag does not "
            "hold).\n"
            "# TYPE kiln_source_redecodes_total counter\n"
            "kiln_source_redecodes_total %llu\n",
            s.redecodes);
    fputs("# HELP kiln_postback_attempts_total Postback delivery attempts by "
          "outcome.\n"
          "# TYPE kiln_postback_attempts_total counter\n",
          f);
    for (int i = 0; i < METRICS_PB_N; i++) {
        fprintf(f, "kiln_postback_attempts_total{outcome=\"%s\"} %llu\n",
                metrics_pb_names[i], s.postbacks[i]);
    }
}
