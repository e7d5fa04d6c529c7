/*
 * make bench, queue section: the job store alone, as `kiln serve` uses it,
 * with no pixel work. H "hosts" each hold one store handle (as a server
 * does) shared by S submitting threads (the API's, answering POSTs at
 * once) and W worker threads; the submitters create N processes in all (a
 * request body of a few hundred bytes, as POST /request stores), the
 * workers claim each, store its per-job result (the status write) and
 * complete it. As in the runner, a worker that finds nothing waits until
 * a submission of its host wakes it (runner_wake), not spinning. Prints
 * processes per second (wall time from the first create to the last complete)
 * and the latency of successful claims (p50, p99), for the driver and the
 * number of hosts given.
 *
 *   queue DRIVER TARGET HOSTS WORKERS N [SUBMITTERS]  (default 4)
 *   queue sqlite /tmp/q.db 1 2 20000
 *   queue postgres "host=127.0.0.1 port=5432 dbname=kiln" 3 2 20000
 *
 * Timing only: nothing passes or fails.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/jobstore.h"

static const char *q_request =
    "{\"service_id\": 1, \"source\": \"/in/a.png\", \"jobs\": "
    "[{\"destination\": \"/out/a.png\", \"transformations\": [{\"type\": "
    "\"resize\", \"width\": 16}]}]}";
static const char *q_result =
    "[{\"destination\": \"/out/a.png\", \"status\": \"FINISHED\", "
    "\"format\": \"png\", \"backend\": \"vips\", \"width\": 16, \"height\": "
    "12, \"bytes\": 512, \"duration_ms\": 1.2, \"error\": null, "
    "\"warnings\": []}]";

typedef struct q_host {
    jobstore *s;
    sem_t ready;         /* posted once per process created: wakes a worker */
    atomic_int n_create; /* processes its submitters still create */
    double *lat;         /* claim latencies in ms, one slot per process */
} q_host;

static atomic_int q_done, q_lat_n;
static int q_total;
static double *q_lat;

static double
q_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *
q_submit(void *arg)
{
    q_host *h = arg;
    while (atomic_fetch_sub(&h->n_create, 1) > 0) {
        jobstore_process p;
        memset(&p, 0, sizeof p);
        kiln_error err = {0};
        if (jobstore_new_id(p.id, &err) != KILN_OK) {
            fprintf(stderr, "queue: %s\n", err.message);
            exit(1);
        }
        p.service_id = 1;
        p.status = JOBSTORE_QUEUED;
        p.request = (char *)q_request;
        if (jobstore_create(h->s, &p, &err) != KILN_OK) {
            fprintf(stderr, "queue: create: %s\n", err.message);
            exit(1);
        }
        sem_post(&h->ready);
    }
    return NULL;
}

static void *
q_work(void *arg)
{
    q_host *h = arg;
    while (atomic_load(&q_done) < q_total) {
        jobstore_process p;
        kiln_error err = {0};
        double t0 = q_now_ms();
        int rc = jobstore_claim(h->s, (int64_t)time(NULL), 30, &p, &err);
        if (rc == KILN_ENOTFOUND) {
            /* The submitters are behind: wait to be woken, as the
             * runner's workers do (another host's work is found at the
             * next look, 10 ms later at most, as LISTEN would wake). */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            sem_timedwait(&h->ready, &ts);
            continue;
        }
        if (rc != KILN_OK) {
            fprintf(stderr, "queue: claim: %s\n", err.message);
            exit(1);
        }
        int k = atomic_fetch_add(&q_lat_n, 1);
        if (k < q_total) {
            q_lat[k] = q_now_ms() - t0;
        }
        if (jobstore_complete(h->s, p.id, p.lease_token, JOBSTORE_FINISHED,
                              q_result, NULL, &err) != KILN_OK) {
            fprintf(stderr, "queue: complete: %s\n", err.message);
            exit(1);
        }
        jobstore_process_clear(&p);
        atomic_fetch_add(&q_done, 1);
    }
    return NULL;
}

static int
q_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr,
                "usage: queue DRIVER TARGET HOSTS WORKERS N [SUBMITTERS]\n");
        return 2;
    }
    const char *driver = argv[1], *target = argv[2];
    int hosts = atoi(argv[3]), workers = atoi(argv[4]);
    int submitters = argc == 7 ? atoi(argv[6]) : 4;
    q_total = atoi(argv[5]);
    if (hosts < 1 || hosts > 16 || workers < 1 || workers > 64 ||
        submitters < 1 || submitters > 64 || q_total < 1) {
        fprintf(stderr, "queue: bad arguments\n");
        return 2;
    }
    q_lat = calloc((size_t)q_total, sizeof *q_lat);
    q_host *h = calloc((size_t)hosts, sizeof *h);
    pthread_t *th =
        calloc((size_t)hosts * (size_t)(workers + submitters), sizeof *th);
    if (q_lat == NULL || h == NULL || th == NULL) {
        return 1;
    }
    for (int i = 0; i < hosts; i++) {
        kiln_error err = {0};
        if (jobstore_open(driver, target, &h[i].s, &err) != KILN_OK) {
            fprintf(stderr, "queue: %s\n", err.message);
            return 1;
        }
        atomic_init(&h[i].n_create, q_total / hosts + (i < q_total % hosts));
        sem_init(&h[i].ready, 0, 0);
    }
    double t0 = q_now_ms();
    int n = 0;
    for (int i = 0; i < hosts; i++) {
        for (int k = 0; k < submitters; k++) {
            pthread_create(&th[n++], NULL, q_submit, &h[i]);
        }
        for (int w = 0; w < workers; w++) {
            pthread_create(&th[n++], NULL, q_work, &h[i]);
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
    double wall = q_now_ms() - t0;
    int nl = atomic_load(&q_lat_n) < q_total ? atomic_load(&q_lat_n) : q_total;
    qsort(q_lat, (size_t)nl, sizeof *q_lat, q_cmp);
    printf("%s\t%d host%s x %d workers, %d submitters\t%d processes\t"
           "%.0f processes/s\tclaim p50 %.2f ms\tp99 %.2f ms\n",
           driver, hosts, hosts == 1 ? "" : "s", workers, submitters, q_total,
           q_total / (wall / 1e3), nl ? q_lat[nl / 2] : 0,
           nl ? q_lat[(int)(nl * 0.99)] : 0);
    for (int i = 0; i < hosts; i++) {
        jobstore_close(h[i].s);
        sem_destroy(&h[i].ready);
    }
    free(q_lat);
    free(h);
    free(th);
    return 0;
}
