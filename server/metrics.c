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
#include <time.h>

#include "kiln/version.h"

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
    "finished",    "failed",  "requeued", "timeout",
    "interrupted", "dropped", "cancelled"};
#define METRICS_N_OUTCOMES                                                     \
    (sizeof metrics_outcomes / sizeof metrics_outcomes[0])

static const char *const metrics_pb_names[METRICS_PB_N] = {
    "delivered", "failed", "given_up"};

/* HTTP calls of one route (a template such as "/status/{id}", one of
 * the few the API has: a static string, compared by address). */
#define METRICS_ROUTES 24
typedef struct metrics_route {
    const char *route;                 /* NULL: a free slot */
    unsigned long long by_status[500]; /* status 100..599 */
    metrics_hist duration;
} metrics_route;

/* Process outcomes per service (services are few: the configuration's). */
#define METRICS_SERVICES 256
typedef struct metrics_service {
    int id;
    bool used;
    unsigned long long outcomes[METRICS_N_OUTCOMES];
} metrics_service;

typedef struct metrics_data {
    metrics_route routes[METRICS_ROUTES];
    metrics_service services[METRICS_SERVICES];
    long running;         /* processes this host runs now */
    metrics_hist jobs[2]; /* [0] failed, [1] ok */
    metrics_hist processes[METRICS_N_OUTCOMES];
    unsigned long long storage_errors;
    unsigned long long redecodes;
    unsigned long long postbacks[METRICS_PB_N];
} metrics_data;

struct kiln_metrics {
    pthread_mutex_t mu;
    metrics_data d;
    double started; /* wall clock, seconds since 1970 */
};

kiln_metrics *
metrics_new(void)
{
    kiln_metrics *m = calloc(1, sizeof *m);
    if (m != NULL) {
        pthread_mutex_init(&m->mu, NULL);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m->started = (double)ts.tv_sec + ts.tv_nsec / 1e9;
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
    metrics_process_of(m, -1, seconds, outcome);
}

void
metrics_process_of(kiln_metrics *m, int service, double seconds,
                   const char *outcome)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
        if (strcmp(outcome, metrics_outcomes[i]) != 0) {
            continue;
        }
        pthread_mutex_lock(&m->mu);
        metrics_observe(&m->d.processes[i], seconds);
        for (size_t k = 0; service >= 0 && k < METRICS_SERVICES; k++) {
            metrics_service *sv = &m->d.services[k];
            if (!sv->used || sv->id == service) {
                sv->used = true;
                sv->id = service;
                sv->outcomes[i]++;
                break;
            }
        }
        pthread_mutex_unlock(&m->mu);
        return;
    }
}

void
metrics_http(kiln_metrics *m, const char *route, int status, double seconds)
{
    if (m == NULL || route == NULL || status < 100 || status > 599) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < METRICS_ROUTES; i++) {
        metrics_route *r = &m->d.routes[i];
        if (r->route == NULL || r->route == route) {
            r->route = route;
            r->by_status[status - 100]++;
            metrics_observe(&r->duration, seconds);
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void
metrics_running(kiln_metrics *m, int delta)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->d.running += delta;
    pthread_mutex_unlock(&m->mu);
}

double
metrics_started(const kiln_metrics *m)
{
    return m != NULL ? m->started : 0;
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
    /* A consistent snapshot, printed unlocked (on the heap: the route
     * tables make it some 100 KB). */
    metrics_data *snap = malloc(sizeof *snap);
    if (snap == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    *snap = m->d;
    pthread_mutex_unlock(&m->mu);
    const metrics_data *sp = snap;
    fprintf(f,
            "# HELP kiln_build_info The running kiln's version.\n"
            "# TYPE kiln_build_info gauge\n"
            "kiln_build_info{version=\"%s\"} 1\n"
            "# HELP kiln_start_time_seconds When this server started, in "
            "seconds since 1970.\n"
            "# TYPE kiln_start_time_seconds gauge\n"
            "kiln_start_time_seconds %.3f\n"
            "# HELP kiln_processes_running Processes this host runs now.\n"
            "# TYPE kiln_processes_running gauge\n"
            "kiln_processes_running %ld\n",
            KILN_VERSION_STRING, m->started, sp->running);
    fputs("# HELP kiln_http_requests_total API calls by route and status.\n"
          "# TYPE kiln_http_requests_total counter\n",
          f);
    for (size_t i = 0; i < METRICS_ROUTES && sp->routes[i].route != NULL; i++) {
        for (int st = 0; st < 500; st++) {
            if (sp->routes[i].by_status[st] > 0) {
                fprintf(f,
                        "kiln_http_requests_total{route=\"%s\",status=\"%d\"} "
                        "%llu\n",
                        sp->routes[i].route, st + 100,
                        sp->routes[i].by_status[st]);
            }
        }
    }
    fputs("# HELP kiln_http_request_duration_seconds Time the server took "
          "to answer an API call, by route.\n"
          "# TYPE kiln_http_request_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i < METRICS_ROUTES && sp->routes[i].route != NULL; i++) {
        metrics_write_hist(f, "kiln_http_request_duration_seconds", "route",
                           sp->routes[i].route, &sp->routes[i].duration);
    }
    fputs("# HELP kiln_processes_ended_total Process runs by service and "
          "outcome.\n"
          "# TYPE kiln_processes_ended_total counter\n",
          f);
    for (size_t k = 0; k < METRICS_SERVICES && sp->services[k].used; k++) {
        for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
            fprintf(f,
                    "kiln_processes_ended_total{service=\"%d\",outcome=\"%s\"} "
                    "%llu\n",
                    sp->services[k].id, metrics_outcomes[i],
                    sp->services[k].outcomes[i]);
        }
    }
    fputs("# HELP kiln_job_duration_seconds Time to run one job (its "
          "transformations, encoding and writing).\n"
          "# TYPE kiln_job_duration_seconds histogram\n",
          f);
    metrics_write_hist(f, "kiln_job_duration_seconds", "outcome", "ok",
                       &sp->jobs[1]);
    metrics_write_hist(f, "kiln_job_duration_seconds", "outcome", "failed",
                       &sp->jobs[0]);
    fputs("# HELP kiln_process_duration_seconds Time to run one process "
          "(read, decode, every job, commit).\n"
          "# TYPE kiln_process_duration_seconds histogram\n",
          f);
    for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
        metrics_write_hist(f, "kiln_process_duration_seconds", "outcome",
                           metrics_outcomes[i], &sp->processes[i]);
    }
    fprintf(f,
            "# HELP kiln_storage_errors_total Storage reads, writes and "
            "commits that failed.\n"
            "# TYPE kiln_storage_errors_total counter\n"
            "kiln_storage_errors_total %llu\n",
            sp->storage_errors);
    fprintf(f,
            "# HELP kiln_source_redecodes_total Sources decoded in strips "
            "that had to be decoded again, whole, because a read left the "
            "loader's cache (an op whose KILN_OP_SEQUENTIAL flag does not "
            "hold).\n"
            "# TYPE kiln_source_redecodes_total counter\n"
            "kiln_source_redecodes_total %llu\n",
            sp->redecodes);
    fputs("# HELP kiln_postback_attempts_total Postback delivery attempts by "
          "outcome.\n"
          "# TYPE kiln_postback_attempts_total counter\n",
          f);
    for (int i = 0; i < METRICS_PB_N; i++) {
        fprintf(f, "kiln_postback_attempts_total{outcome=\"%s\"} %llu\n",
                metrics_pb_names[i], sp->postbacks[i]);
    }
    free(snap);
}
