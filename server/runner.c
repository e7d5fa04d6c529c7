/*
 * The process runner (runner.h): durable submission, worker threads that
 * claim queued processes from the job store and run them through the
 * engine, and the status body built from what the store keeps. The store
 * is the only shared state: a crash at any point leaves every accepted
 * process QUEUED or PROCESSING, and PROCESSING is re-queued at start.
 */
#include "runner.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "postback.h"
#include "workers.h"

/* What one worker runs, as the keeper sees it. */
typedef struct runner_slot {
    char id[JOBSTORE_ID_LEN + 1]; /* "" when free */
    int64_t token;                /* the claim's fencing token */
    double started_ms;            /* monotonic clock, when claimed */
    double limit_s; /* its max_process_time once compiled; 0: none (yet) */
    /* Set by the keeper when POST /cancel asked to stop this run: the
     * engine's pipelines watch it (engine_execute_stoppable). */
    volatile int stop;
} runner_slot;

struct runner {
    kiln_server *server;
    kiln_engine *engine; /* the server's */
    jobstore *store;     /* the server's */
    int lease;           /* seconds a claim holds without renewal */
    workers w;           /* the workers that claim and run processes */
    workers keep;        /* one thread that renews the running claims */
    /* One thread that waits for other hosts' queued work (a store that
     * can tell: PostgreSQL's LISTEN/NOTIFY); not started for SQLite. */
    workers listen;
    bool listening;
    pthread_mutex_t mu;
    int n_slots; /* one per worker */
    runner_slot *slots;
};

/* Notes that this worker runs process `id`; returns its slot. There is a
 * slot per worker, so one is always free. */
static int
runner_track(runner *r, const char *id, int64_t token)
{
    pthread_mutex_lock(&r->mu);
    int slot = 0;
    while (slot < r->n_slots - 1 && r->slots[slot].id[0] != '\0') {
        slot++;
    }
    snprintf(r->slots[slot].id, sizeof r->slots[slot].id, "%s", id);
    r->slots[slot].token = token;
    r->slots[slot].started_ms = clock_ms();
    r->slots[slot].limit_s = 0;
    r->slots[slot].stop = 0;
    pthread_mutex_unlock(&r->mu);
    return slot;
}

static void
runner_set_limit(runner *r, int slot, double limit_s)
{
    pthread_mutex_lock(&r->mu);
    r->slots[slot].limit_s = limit_s;
    pthread_mutex_unlock(&r->mu);
}

static void
runner_untrack(runner *r, int slot)
{
    pthread_mutex_lock(&r->mu);
    r->slots[slot].id[0] = '\0';
    pthread_mutex_unlock(&r->mu);
}

/* The backstop of max_process_time. The engine cancels a pipeline at its
 * deadline, but only code that returns to libvips sees the cancel: a
 * decoder or plugin stuck inside one native call (librsvg rendering a
 * huge blur was one) never does, and a thread cannot be stopped from
 * outside without leaving the process's memory and locks in an unknown
 * state. So when a process is still running kill_after seconds past its
 * limit, kiln stores it FAILED (never to be re-queued), queues the other
 * running processes again (they lose their run, not their place or an
 * interruption), and ends the whole server with status 70 for its
 * supervisor (systemd, Kubernetes) to start again. Drastic, but the only
 * way that always ends the process; the API is back within a restart and
 * no accepted process is lost. */
#define RUNNER_KILLED_EXIT 70

static void
runner_force_stop(runner *r, const runner_slot *stuck, double over_s)
{
    kiln_error err;
    err_clear(&err);
    log_msg(KILN_LOG_ERROR, "process",
            "process %s ran %.0f s past its max_process_time of %g s "
            "and does not stop: ending it by force; the server exits with "
            "status %d for its supervisor to restart it",
            stuck->id, over_s, stuck->limit_s, RUNNER_KILLED_EXIT);
    char msg[300];
    snprintf(msg, sizeof msg,
             "ran past max_process_time (%g s) and could not be stopped (a "
             "source or op that kiln cannot interrupt): the process was "
             "ended by force and is not run again",
             stuck->limit_s);
    if (jobstore_complete(r->store, stuck->id, stuck->token, JOBSTORE_FAILED,
                          NULL, msg, &err) != KILN_OK) {
        log_msg(KILN_LOG_ERROR, "store",
                "process %s: cannot store its failure: %s", stuck->id,
                err.message);
    }
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n_slots; i++) {
        const char *id = r->slots[i].id;
        if (id[0] == '\0' || strcmp(id, stuck->id) == 0) {
            continue;
        }
        err_clear(&err);
        if (jobstore_requeue(r->store, id, r->slots[i].token, 0,
                             "re-run: the server restarted to end another "
                             "process that did not stop",
                             &err) != KILN_OK) {
            log_msg(KILN_LOG_ERROR, "store",
                    "process %s: cannot queue it again: %s", id, err.message);
        }
    }
    fflush(stderr);
    _exit(RUNNER_KILLED_EXIT);
}

/* Retention (jobstore.retention_days): deletes the processes that ended
 * before it, in batches of RUNNER_PRUNE_BATCH, at most ten a minute so
 * that a first prune of a large store does not hold the database. */
#define RUNNER_PRUNE_BATCH 1000
static void
runner_prune(runner *r)
{
    int days = r->engine->config->jobstore_retention_days;
    if (days <= 0) {
        return;
    }
    int64_t before = (int64_t)time(NULL) - (int64_t)days * 86400;
    long total = 0;
    for (int i = 0; i < 10; i++) {
        kiln_error err;
        err_clear(&err);
        int n = 0;
        if (jobstore_prune(r->store, before, RUNNER_PRUNE_BATCH, &n, &err) !=
            KILN_OK) {
            log_msg(KILN_LOG_WARN, "store",
                    "job store: cannot prune old processes: %s", err.message);
            break;
        }
        total += n;
        if (n < RUNNER_PRUNE_BATCH) {
            break;
        }
    }
    if (total > 0) {
        log_msg(KILN_LOG_INFO, "retention",
                "pruned %ld process%s that ended over %d day%s ago "
                "(jobstore.retention_days)",
                total, total == 1 ? "" : "es", days, days == 1 ? "" : "s");
    }
}

/* Asks the store which running processes POST /cancel wants stopped
 * (any host may have taken the request) and tells their runs. */
static void
runner_poll_cancels(runner *r, const runner_slot *snap)
{
    /* In batches: one question to the store for up to 64 runs. */
    enum { BATCH = 64 };
    const char *ids[BATCH];
    int slot_of[BATCH];
    bool stop[BATCH];
    for (int i = 0; i < r->n_slots;) {
        size_t n = 0;
        for (; i < r->n_slots && n < BATCH; i++) {
            if (snap[i].id[0] != '\0') {
                ids[n] = snap[i].id;
                slot_of[n++] = i;
            }
        }
        kiln_error err;
        err_clear(&err);
        if (n == 0 || jobstore_cancel_requested(r->store, ids, n, stop, &err) !=
                          KILN_OK) {
            continue; /* a store that is down: renewals say so */
        }
        pthread_mutex_lock(&r->mu);
        for (size_t k = 0; k < n; k++) {
            runner_slot *sl = &r->slots[slot_of[k]];
            if (stop[k] && strcmp(sl->id, ids[k]) == 0) {
                sl->stop = 1;
            }
        }
        pthread_mutex_unlock(&r->mu);
    }
}

/* The keeper: wakes every second to look for a process past its hard
 * deadline (runner_force_stop), renews the lease of every running
 * process three times per lease, so a process that runs long is not taken
 * back by another worker or host while its worker is alive, and one whose
 * host died is taken back within a lease, and prunes old processes once a
 * minute (runner_prune). */
static void *
runner_keeper(void *arg)
{
    runner *r = arg;
    unsigned seen;
    double kill_after = r->engine->config->kill_after;
    double renewed_ms = clock_ms();
    double pruned_ms = renewed_ms - 60e3; /* at start, then every minute */
    runner_slot *snap = calloc((size_t)r->n_slots, sizeof *snap);
    while (snap != NULL && workers_running(&r->keep, &seen)) {
        pthread_mutex_lock(&r->mu);
        memcpy(snap, r->slots, (size_t)r->n_slots * sizeof *snap);
        pthread_mutex_unlock(&r->mu);
        double now = clock_ms();
        for (int i = 0; i < r->n_slots; i++) {
            const runner_slot *sl = &snap[i];
            if (sl->id[0] == '\0' || sl->limit_s <= 0) {
                continue;
            }
            double over_s = (now - sl->started_ms) / 1e3 - sl->limit_s;
            if (over_s > kill_after) {
                runner_force_stop(r, sl, over_s);
            }
        }
        runner_poll_cancels(r, snap);
        if (now - renewed_ms >= r->lease * 1000.0 / 3) {
            renewed_ms = now;
            for (int i = 0; i < r->n_slots; i++) {
                if (snap[i].id[0] == '\0') {
                    continue;
                }
                kiln_error err;
                err_clear(&err);
                if (jobstore_renew(r->store, snap[i].id, snap[i].token,
                                   (int64_t)time(NULL), r->lease,
                                   &err) != KILN_OK) {
                    log_msg(KILN_LOG_WARN, "store",
                            "process %s: cannot renew its lease: %s",
                            snap[i].id, err.message);
                }
            }
        }
        if (now - pruned_ms >= 60e3) {
            pruned_ms = now;
            runner_prune(r);
        }
        long renew_ms = r->lease * 1000L / 3;
        workers_sleep(&r->keep, seen, renew_ms < 1000 ? renew_ms : 1000);
    }
    free(snap);
    return NULL;
}

/* Runs one claimed process and stores its outcome; `r` (may be NULL)
 * learns the process's time limit for the keeper. */
static void
runner_run(kiln_server *s, jobstore_process *p, runner *r, int slot)
{
    kiln_engine *e = s->engine;
    jobstore *js = s->store;
    kiln_error err;
    err_clear(&err);
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    char msg[1100];
    int rc = engine_compile(e, p->request, strlen(p->request), &a, &g, &errs);
    if (rc != KILN_OK) {
        /* Validated at submission: only a changed deployment (an op plugin
         * disabled since) gets here. The process fails, named. */
        msg[0] = '\0';
        if (errs.n > 0) {
            err_format(&errs.items[0].e, msg, sizeof msg);
        }
        jobstore_complete(js, p->id, p->lease_token, JOBSTORE_FAILED, NULL,
                          msg[0] ? msg : "the request no longer compiles",
                          &err);
        log_event(KILN_LOG_WARN, "process",
                  (log_field[]){LOG_S("process_id", p->id),
                                LOG_N("service", p->service_id),
                                LOG_S("outcome", "failed"),
                                LOG_N("attempt", p->attempt),
                                LOG_S("error", msg[0] ? msg
                                                      : "the request no "
                                                        "longer compiles")},
                  5);
        errlist_free(&errs);
        arena_free(a);
        return;
    }
    errlist_free(&errs);
    if (p->n_interrupts >= e->config->max_interruptions) {
        /* A run that never ends with an outcome, time after time, is most
         * likely what ended it: a poison pill must not come back on every
         * restart. POST /retry starts the count again. */
        snprintf(msg, sizeof msg,
                 "interrupted %d times while it ran (the server stopped, "
                 "crashed or lost its lease each time): not run again, as "
                 "it may be what stops the server (max_interruptions %d)",
                 p->n_interrupts, e->config->max_interruptions);
        jobstore_complete(js, p->id, p->lease_token, JOBSTORE_FAILED, NULL, msg,
                          &err);
        log_event(KILN_LOG_WARN, "process",
                  (log_field[]){LOG_S("process_id", p->id),
                                LOG_N("service", p->service_id),
                                LOG_S("outcome", "failed"),
                                LOG_N("attempt", p->attempt),
                                LOG_S("error", msg)},
                  5);
        metrics_process_of(s->metrics, p->service_id, 0, "failed");
        arena_free(a);
        return;
    }
    if (r != NULL) {
        runner_set_limit(r, slot, engine_process_limits(e, g).max_process_time);
    }
    exec_result res;
    static const volatile int never = 0;
    engine_execute_stoppable(e, g, r != NULL ? &r->slots[slot].stop : &never,
                             &res);
    const char *outcome;
    bool retryable = !res.ok && res.source_failed &&
                     g->req.wait_retry_delay >= 0 &&
                     p->n_requeues < RUNNER_MAX_REQUEUES;
    if (res.stopped) {
        /* POST /cancel: nothing was written; the process ends here. */
        jobstore_complete_timed(js, p->id, p->lease_token, JOBSTORE_CANCELLED,
                                NULL,
                                "cancelled while it ran (POST /cancel): "
                                "nothing was written",
                                res.duration_ms, &err);
        outcome = "cancelled";
    } else if (res.cancelled) {
        /* Shutdown: nothing was written; the process runs again from the
         * start on the next server (or another host). */
        jobstore_interrupt(js, p->id, p->lease_token, res.error, &err);
        outcome = "interrupted";
    } else if (retryable) {
        int64_t at = (int64_t)time(NULL) + (int64_t)g->req.wait_retry_delay;
        jobstore_requeue(js, p->id, p->lease_token, at, res.error, &err);
        outcome = "requeued";
    } else {
        /* fail_on_conversion_error false: the jobs that worked are written
         * and the process FINISHES with the failures reported (api.md);
         * a source that could not be read fails it either way. */
        bool finished = res.ok || (res.ran_jobs && !res.timed_out &&
                                   !g->req.fail_on_conversion_error);
        cJSON *jobs = exec_result_jobs_json(&res);
        char *jobs_text = jobs != NULL ? cJSON_PrintUnformatted(jobs) : NULL;
        jobstore_complete_timed(js, p->id, p->lease_token,
                                finished ? JOBSTORE_FINISHED : JOBSTORE_FAILED,
                                jobs_text, res.ok ? NULL : res.error,
                                res.duration_ms, &err);
        cJSON_free(jobs_text);
        cJSON_Delete(jobs);
        outcome = res.timed_out ? "timeout" : finished ? "finished" : "failed";
    }
    if (err.code == KILN_EPERM && strstr(err.message, "lease was taken back")) {
        /* Fencing: this worker stalled past its lease and another claim
         * holds the process now; that run's outcome is the one kept. */
        log_msg(KILN_LOG_WARN, "process",
                "process %s: its lease was taken back while this run "
                "went on (claimed again since): this run's result (%s) is "
                "dropped",
                p->id, outcome);
        outcome = "dropped";
    } else if (err.message[0] != '\0') {
        log_msg(KILN_LOG_ERROR, "store",
                "process %s: cannot store its outcome: %s", p->id, err.message);
    }
    bool bad = strcmp(outcome, "failed") == 0 ||
               strcmp(outcome, "timeout") == 0 ||
               strcmp(outcome, "dropped") == 0;
    log_field f[] = {LOG_S("process_id", p->id),
                     LOG_N("service", p->service_id),
                     LOG_S("outcome", outcome),
                     LOG_N("attempt", p->attempt),
                     LOG_N("ms", round(res.duration_ms * 10) / 10),
                     LOG_S("error", res.ok ? NULL : res.error)};
    log_event(bad ? KILN_LOG_WARN : KILN_LOG_INFO, "process", f,
              sizeof f / sizeof f[0]);
    for (size_t j = 0; res.ran_jobs && j < res.n_jobs; j++) {
        metrics_job(s->metrics, res.jobs[j].duration_ms / 1e3, res.jobs[j].ok);
    }
    metrics_process_of(s->metrics, p->service_id, res.duration_ms / 1e3,
                       outcome);
    metrics_storage_errors(s->metrics, res.storage_errors);
    metrics_redecodes(s->metrics, res.redecodes);
    exec_result_free(&res);
    arena_free(a);
}

void
runner_run_one(kiln_server *s, jobstore_process *p)
{
    runner_run(s, p, NULL, -1);
}

static void *
runner_worker(void *arg)
{
    runner *r = arg;
    unsigned seen;
    while (workers_running(&r->w, &seen)) {
        jobstore_process p;
        memset(&p, 0, sizeof p);
        kiln_error err;
        err_clear(&err);
        int rc =
            jobstore_claim(r->store, (int64_t)time(NULL), r->lease, &p, &err);
        if (rc == KILN_OK) {
            int slot = runner_track(r, p.id, p.lease_token);
            metrics_running(r->server->metrics, 1);
            runner_run(r->server, &p, r, slot);
            metrics_running(r->server->metrics, -1);
            runner_untrack(r, slot);
            jobstore_process_clear(&p);
            continue;
        }
        if (rc != KILN_ENOTFOUND) {
            log_msg(KILN_LOG_ERROR, "store", "job store: %s", err.message);
        }
        /* Nothing ready: sleep until woken, or a second (a re-queued
         * process's not_before may come due meanwhile). */
        workers_sleep(&r->w, seen, 1000);
    }
    return NULL;
}

/* The listener: wakes the idle workers as soon as any host queues a
 * process, instead of their next look a second later. */
static void *
runner_listener(void *arg)
{
    runner *r = arg;
    unsigned seen;
    while (workers_running(&r->listen, &seen)) {
        kiln_error err;
        err_clear(&err);
        int rc = jobstore_wait_work(r->store, 1000, &err);
        if (rc == KILN_OK) {
            workers_wake(&r->w);
        } else if (rc == KILN_EIO) {
            /* The store is down: the workers say so; try again later. */
            workers_sleep(&r->listen, seen, 1000);
        } else if (rc != KILN_ENOTFOUND) {
            break;
        }
    }
    return NULL;
}

int
runner_start(kiln_server *s, int n_workers, int lease_s, runner **out,
             kiln_error *err)
{
    jobstore *js = s->store;
    int n_requeued = 0;
    int rc = jobstore_recover(js, &n_requeued, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (n_requeued > 0) {
        log_msg(KILN_LOG_INFO, "recover", "re-queued %d interrupted process%s",
                n_requeued, n_requeued == 1 ? "" : "es");
    }
    runner *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    r->server = s;
    r->engine = s->engine;
    r->store = js;
    r->lease = lease_s > 0 ? lease_s : RUNNER_LEASE_S;
    r->n_slots = n_workers < 1             ? 1
                 : n_workers > WORKERS_MAX ? WORKERS_MAX
                                           : n_workers;
    r->slots = calloc((size_t)r->n_slots, sizeof *r->slots);
    if (r->slots == NULL) {
        free(r);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&r->mu, NULL);
    if (workers_start(&r->keep, 1, runner_keeper, r) == 0) {
        pthread_mutex_destroy(&r->mu);
        free(r->slots);
        free(r);
        return err_set(err, KILN_EINTERNAL, "cannot start the lease keeper");
    }
    if (workers_start(&r->w, n_workers, runner_worker, r) == 0) {
        workers_stop(&r->keep);
        pthread_mutex_destroy(&r->mu);
        free(r->slots);
        free(r);
        return err_set(err, KILN_EINTERNAL, "cannot start worker threads");
    }
    /* A store that cannot tell when work is queued answers at once. */
    kiln_error lerr;
    err_clear(&lerr);
    if (jobstore_wait_work(js, 0, &lerr) != KILN_EABI) {
        r->listening = workers_start(&r->listen, 1, runner_listener, r) != 0;
    }
    *out = r;
    return KILN_OK;
}

void
runner_wake(runner *r)
{
    workers_wake_one(&r->w);
}

static void
runner_cancel(void *arg)
{
    runner *r = arg;
    log_msg(KILN_LOG_WARN, "shutdown",
            "shutdown_timeout passed: interrupting the running "
            "processes; they stay queued");
    r->engine->cancel = 1;
}

bool
runner_stop(runner *r)
{
    if (r == NULL) {
        return true;
    }
    const kiln_config *c = r->engine->config;
    if (!workers_stop_within(&r->w, (long)(c->shutdown_timeout * 1e3),
                             runner_cancel, r, (long)(c->kill_after * 1e3))) {
        /* Something that cannot be interrupted: the process stays
         * PROCESSING and the next start counts the interruption. The keeper
         * keeps renewing nothing: the caller ends the program now. */
        log_msg(KILN_LOG_ERROR, "shutdown",
                "a running process did not stop within kill_after "
                "(%g s) of being interrupted: exiting without it; it is "
                "queued again at the next start",
                c->kill_after);
        return false;
    }
    if (r->listening) {
        workers_stop(&r->listen);
    }
    workers_stop(&r->keep);
    pthread_mutex_destroy(&r->mu);
    free(r->slots);
    free(r);
    return true;
}
