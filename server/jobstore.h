/*
 * The job store: the durable record of every batch process the HTTP API
 * accepted, its queue, and the postbacks still owed. The API server and
 * its workers call it from several threads; the store serialises access.
 *
 * Interface and drivers. A `jobstore` is an opaque handle whose first
 * member is a driver vtable (`jobstore_driver`): server/jobstore.c holds the
 * driver-independent parts (ids, status names, the postback schedule, the
 * dispatch), server/jobstore_sqlite.c the embedded SQLite driver and
 * server/jobstore_pg.c the PostgreSQL one (libpq), for hosts that share a
 * database. jobstore_open() opens either by name; a driver from elsewhere
 * implements the same vtable and is opened with jobstore_open_driver().
 * Nothing outside a driver sees SQL.
 *
 * Contract every driver keeps:
 * - Every mutating call is committed durably before it returns KILN_OK
 *   (SQLite: WAL, synchronous=FULL; PostgreSQL: a COMMIT with
 *   synchronous_commit on). A process whose create() returned survives a
 *   crash at any later moment.
 * - State changes are atomic: two workers (threads, processes on the
 *   same file, or hosts on the same database) never claim the same
 *   process or the same postback.
 * - Status codes: KILN_OK; KILN_ENOTFOUND (no such process, or one of
 *   another service: the API answers 404 either way); KILN_EEXIST (the id
 *   or the service's idempotency key is taken); KILN_EPERM (the process's
 *   status forbids the operation: HTTP 409); KILN_EINVAL (bad argument);
 *   KILN_ELIMIT (append_jobs past max_jobs); KILN_ENOMEM; KILN_EIO (the
 *   database failed); KILN_EABI (the driver lacks an operation added
 *   after it was built). The message goes to the caller-owned `err`,
 *   last.
 * - Timestamps are UTC seconds since the epoch. The store stamps
 *   created_at/updated_at with the wall clock; scheduling calls (claim,
 *   renew, postback_due, postback_record, counts) take `now` from the
 *   caller so tests and the server agree on one clock.
 * - Strings in structs handed *to* the store are borrowed; strings in
 *   structs filled *by* the store are malloc'd and owned by the caller,
 *   released with jobstore_process_clear() / jobstore_postbacks_free().
 *
 * Leases: claim() records lease_until = now + lease_seconds, and the
 * worker holding the process extends it with renew() while it runs. A
 * lease is live while now <= lease_until; once lease_until < now its
 * worker or host is taken for dead, and claim() takes the process back
 * like a queued one (in its old place in the queue), counting a re-queue
 * (n_requeues + 1, error "lease expired: re-run"). postback_due() leases
 * too: a taken postback's next_at moves to now + lease_seconds,
 * and from that second on, without a postback_record(), the postback is
 * due again (next_at is also its schedule, due when next_at <= now; a
 * lease that ran out is not counted as a delivery attempt). recover() at
 * start-up: SQLite's store is one host's, and it re-queues every
 * PROCESSING process at once, leases or not; PostgreSQL's is shared by
 * hosts, and it re-queues only processes whose lease ran out (a host that
 * died), never another live host's work. Nothing tells a worker that its lease
 * was taken over: complete(), requeue() and renew() from it still succeed while
 * the process is PROCESSING.
 */
#ifndef KILN_SERVER_JOBSTORE_H
#define KILN_SERVER_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/plugin.h"

#define JOBSTORE_ID_LEN 21 /* URL-safe characters, 126 random bits */

typedef enum jobstore_status {
    JOBSTORE_INCOMPLETE, /* dynamic process waiting for its jobs */
    JOBSTORE_QUEUED,
    JOBSTORE_PROCESSING,
    JOBSTORE_FINISHED,
    JOBSTORE_FAILED,
    JOBSTORE_CANCELLED, /* POST /cancel: ended without its outputs */
    JOBSTORE_N_STATUS
} jobstore_status;

typedef enum jobstore_postback_state {
    JOBSTORE_PB_PENDING,   /* to be sent at next_at */
    JOBSTORE_PB_DELIVERED, /* a 2xx came back */
    JOBSTORE_PB_GIVEN_UP,  /* retries exhausted or disabled */
    JOBSTORE_PB_N_STATE
} jobstore_postback_state;

/* One batch process. The store keeps the request JSON as submitted (after
 * any appended jobs); the worker that runs it compiles it again (on any
 * host), so the store needs no knowledge of the request format. The two
 * postback settings are columns besides (below), so that a status change or a
 * delivery need not parse the request again. */
typedef struct jobstore_process {
    char id[JOBSTORE_ID_LEN + 1];
    int service_id;
    jobstore_status status;
    int attempt;    /* 1 on creation, +1 per retry() */
    int n_requeues; /* requeue() calls in this attempt (wait_retry_delay) */
    /* Runs of this attempt that ended with no outcome: interrupt() (a
     * shutdown), recover() (the host stopped or crashed while it ran) and
     * a lease taken back. The runner fails a process interrupted too often
     * (a poison pill would otherwise come back on every restart). */
    int n_interrupts;
    char *request;   /* JSON text, required on create */
    char *callback;  /* postback URL or NULL */
    char *result;    /* JSON text of the last run's per-job results, or NULL */
    char *error;     /* why the last run failed or was re-queued, or NULL */
    char *idem_key;  /* Idempotency-Key header or NULL */
    char *idem_hash; /* the caller's hash of the request body, or NULL */
    int64_t created_at;
    int64_t updated_at;
    int64_t not_before;  /* not claimed before this time (0: at once) */
    int64_t lease_until; /* PROCESSING: the claim's lease; else 0 */
    /* The claim's fencing token: grows by one with every claim of this
     * process, so a worker whose lease was taken back (another claim
     * holds it now) cannot complete, requeue, renew or interrupt it with
     * the token it got (KILN_EPERM, "its lease was taken back"). */
    int64_t lease_token;
    /* The request's postback settings (api.md), stored by create() from
     * the struct it is given and returned by every read, the notify
     * hook's process included. notify_status: a postback on every status
     * change, not only on FINISHED and FAILED (default false).
     * retry_postback: failed deliveries of its postbacks are retried
     * (default true). A zeroed struct says false to both: a caller that
     * builds one sets retry_postback itself. A store made by a build
     * without the columns gets them filled from each stored request when
     * it is opened (jobstore_request_flags). */
    bool notify_status;
    bool retry_postback;
    /* Jobs in the request: set by create() from the struct, kept by
     * append_jobs(); filled from the request for stores made before the
     * column (GET /processes lists it without reading the request). */
    int n_jobs;
    /* The last run's processing time in ms (complete_timed()), or -1
     * when it has not run to an outcome. */
    double duration_ms;
    /* POST /cancel asked to stop its run (PROCESSING only): the worker
     * holding it stops it and completes it CANCELLED. */
    bool cancel_requested;
} jobstore_process;

/* One postback owed to a callback URL; retries survive restarts. */
typedef struct jobstore_postback {
    int64_t id;
    char process_id[JOBSTORE_ID_LEN + 1];
    int service_id; /* picks the signing secret */
    char *url;
    char *body;
    jobstore_postback_state state;
    int attempt;      /* delivery attempts made so far */
    int64_t next_at;  /* PENDING: when to send (again) */
    int last_status;  /* HTTP status of the last attempt; 0: none or no reply */
    char *last_error; /* or NULL */
    /* A failed delivery is retried (jobstore_postback_delay) rather than
     * given up (default true): the sender passes it to
     * jobstore_postback_record(). A postback stored for the status-change
     * hook takes its process's retry_postback; postback_enqueue() stores
     * pb->retry. */
    bool retry;
} jobstore_postback;

/* What list() selects (GET /processes), newest first: created_at, then
 * id, descending. */
typedef struct jobstore_query {
    const int *service_ids; /* the token's services: at least one */
    size_t n_service_ids;
    int status;    /* a jobstore_status, or -1 for any */
    int64_t since; /* created_at >= since (0: no bound) */
    int64_t until; /* created_at < until (0: no bound) */
    /* Keyset cursor: only processes strictly older than (after_created,
     * after_id) in that order; after_id "" for the first page. */
    int64_t after_created;
    char after_id[JOBSTORE_ID_LEN + 1];
    int limit; /* 1..1000 */
} jobstore_query;

/* One ended process, for statistics (GET /stats: jobstore_list_ended). */
typedef struct jobstore_ended_process {
    int64_t updated_at;
    jobstore_status status; /* FINISHED, FAILED or CANCELLED */
    double duration_ms;     /* -1: none recorded */
} jobstore_ended_process;

/* For /metrics. */
typedef struct jobstore_counts {
    int64_t processes[JOBSTORE_N_STATUS];
    int64_t queue_ready; /* QUEUED with not_before <= now */
    int64_t postbacks[JOBSTORE_PB_N_STATE];
} jobstore_counts;

typedef struct jobstore jobstore;

/* The driver vtable; see the public functions below for each contract.
 * A driver's handle embeds `jobstore` as its first member. */
typedef struct jobstore_driver {
    const char *name;
    int (*open)(const char *target, jobstore **out, kiln_error *err);
    void (*close)(jobstore *s);
    int (*ping)(jobstore *s, kiln_error *err);
    int (*create)(jobstore *s, const jobstore_process *p, kiln_error *err);
    int (*get)(jobstore *s, const char *id, int service_id,
               jobstore_process *out, kiln_error *err);
    int (*find_idempotent)(jobstore *s, int service_id, const char *key,
                           jobstore_process *out, kiln_error *err);
    int (*claim)(jobstore *s, int64_t now, int lease_seconds,
                 jobstore_process *out, kiln_error *err);
    int (*complete)(jobstore *s, const char *id, int64_t token,
                    jobstore_status status, const char *result_json,
                    const char *error, kiln_error *err);
    int (*requeue)(jobstore *s, const char *id, int64_t token,
                   int64_t not_before, const char *error, kiln_error *err);
    int (*recover)(jobstore *s, int *n_requeued, kiln_error *err);
    int (*retry)(jobstore *s, const char *id, int service_id, int *attempt,
                 jobstore_status *was, kiln_error *err);
    int (*append_jobs)(jobstore *s, const char *id, int service_id,
                       const char *jobs_json, size_t max_jobs, size_t *n_jobs,
                       kiln_error *err);
    int (*set_processing)(jobstore *s, const char *id, int service_id,
                          const char *callback, kiln_error *err);
    int (*postback_enqueue)(jobstore *s, const jobstore_postback *pb,
                            int64_t *id, kiln_error *err);
    int (*postback_due)(jobstore *s, int64_t now, int lease_seconds, size_t max,
                        jobstore_postback **out, size_t *n_out,
                        kiln_error *err);
    int (*postback_record)(jobstore *s, int64_t id, bool delivered,
                           int http_status, const char *error, int64_t now,
                           bool retry, jobstore_postback_state *state,
                           kiln_error *err);
    int (*postback_get)(jobstore *s, int64_t id, jobstore_postback *out,
                        kiln_error *err);
    int (*counts)(jobstore *s, int64_t now, jobstore_counts *out,
                  kiln_error *err);
    /* Added after the first drivers, last so that their tables keep their
     * layout; NULL in a driver without it (jobstore_renew: KILN_EABI). */
    int (*renew)(jobstore *s, const char *id, int64_t token, int64_t now,
                 int lease_seconds, kiln_error *err);
    /* NULL: jobstore_interrupt falls back to requeue (nothing counted). */
    int (*interrupt)(jobstore *s, const char *id, int64_t token,
                     const char *error, kiln_error *err);
    /* NULL: jobstore_prune answers KILN_EABI. */
    int (*prune)(jobstore *s, int64_t before, int max, int *n_pruned,
                 kiln_error *err);
    /* NULL: jobstore_wait_work answers KILN_EABI (workers poll). */
    int (*wait_work)(jobstore *s, int timeout_ms, kiln_error *err);
    /* NULL: jobstore_rate answers KILN_EABI (each host counts its own). */
    int (*rate)(jobstore *s, const char *key, double rate, double burst,
                int cost, int *wait, kiln_error *err);
    /* Issue 16: listing, cancelling, statistics (see the functions). */
    int (*complete_timed)(jobstore *s, const char *id, int64_t token,
                          jobstore_status status, const char *result_json,
                          const char *error, double duration_ms,
                          kiln_error *err);
    int (*list)(jobstore *s, const jobstore_query *q, jobstore_process **out,
                size_t *n_out, kiln_error *err);
    int (*cancel)(jobstore *s, const char *id, int service_id,
                  jobstore_status *was, kiln_error *err);
    int (*cancel_requested)(jobstore *s, const char *const *ids, size_t n,
                            bool *out, kiln_error *err);
    int (*ended)(jobstore *s, const int *service_ids, size_t n_service_ids,
                 int64_t since, int64_t until, jobstore_ended_process **out,
                 size_t *n_out, kiln_error *err);
    int (*postbacks_of)(jobstore *s, const char *process_id,
                        jobstore_postback **out, size_t *n_out,
                        kiln_error *err);
} jobstore_driver;

/* The status-change hook (jobstore_set_notify): called by a driver inside
 * the transaction of every status change, with the process as it now
 * stands. It returns a malloc'd postback body to store, in the same
 * transaction, for p->callback (due at once, retried as
 * p->retry_postback says), or NULL for none. It runs
 * with the store locked: it must not call the store. */
typedef char *(*jobstore_notify_fn)(const jobstore_process *p, void *arg);

struct jobstore {
    const jobstore_driver *drv;
    jobstore_notify_fn notify; /* NULL: none */
    void *notify_arg;
};

extern const jobstore_driver jobstore_sqlite_driver;
extern const jobstore_driver jobstore_pg_driver;

/* ------------------------------------------------- driver-independent */

/* Writes a new process id (JOBSTORE_ID_LEN characters of [A-Za-z0-9_-]
 * from getrandom, NUL-terminated) into `out`. KILN_EIO if the kernel's
 * CSPRNG fails. */
int jobstore_new_id(char out[JOBSTORE_ID_LEN + 1], kiln_error *err);

/* "QUEUED" etc.; "?" for an out-of-range value. */
const char *jobstore_status_name(jobstore_status st);
/* Parses a status name; -1 if unknown. */
int jobstore_status_parse(const char *name);
/* FINISHED, FAILED or CANCELLED: a process whose run is over (retry,
 * prune and list_ended take these; cancel refuses them). */
bool jobstore_status_ended(jobstore_status st);
const char *jobstore_postback_state_name(jobstore_postback_state st);
int jobstore_postback_state_parse(const char *name);

/* The retry schedule of postbacks (api.md): the delay in seconds before
 * the next attempt after `n_failed` failed attempts (1, 3, 15, 600), or -1
 * when the postback should be given up. */
int jobstore_postback_delay(int n_failed);

/* The postback settings a request's JSON text states, read the way the
 * server read them before they were columns (cJSON): notify_status only
 * when it is JSON true, retry_postback unless it is JSON false; a text
 * that is not a JSON object gives the defaults (false, true). Drivers
 * fill the columns of an older store with it. */
void jobstore_request_flags(const char *request, bool *notify_status,
                            bool *retry_postback);

/* The number of jobs a request's JSON text holds (its "jobs" array), read
 * with cJSON like jobstore_request_flags; 0 for a text that is not a JSON
 * object or has no such array. Drivers fill n_jobs of an older store with
 * it. */
int jobstore_request_n_jobs(const char *request);

/* For drivers filling an array row by row: `items` (NULL at first, with
 * *cap 0) grown, when it must, to room for n_wanted items of `size`
 * bytes, doubling. Returns the array to use from then on, or NULL when
 * memory ran out (`items` is then still valid, and *cap unchanged). */
void *jobstore_grow(void *items, size_t *cap, size_t n_wanted, size_t size);

/* What a driver's list() selects from q, as bounds it compares directly:
 * created_at >= *since, and (created_at, id) < (*before_created,
 * *before_id) as a pair, ids in byte order. q's until and its cursor are
 * folded into that one pair (a bound of 0 is none), so one statement
 * serves the first page and the next ones. */
void jobstore_query_bounds(const jobstore_query *q, int64_t *since,
                           int64_t *before_created, const char **before_id);

/* Frees the strings of a process the store filled and zeroes it; safe on
 * a zeroed struct. */
void jobstore_process_clear(jobstore_process *p);
/* Frees the n postbacks of an array from jobstore_postback_due() and the
 * array; NULL is a no-op. */
void jobstore_postbacks_free(jobstore_postback *pbs, size_t n);
/* Frees the strings of one postback the store filled and zeroes it. */
void jobstore_postback_clear(jobstore_postback *pb);

/* ---------------------------------------------------------- lifecycle */

/* Opens (creating if needed, schema included) the store of `driver`
 * ("sqlite": `target` is a file path whose missing parent directories are
 * created; "postgres": `target` is a libpq connection string or URI, which
 * messages never repeat). KILN_ENOTFOUND for an unknown driver, KILN_EINVAL
 * for a database whose schema is newer than this build, KILN_EIO
 * otherwise. */
int jobstore_open(const char *driver, const char *target, jobstore **out,
                  kiln_error *err);
/* The same with a driver table a plugin provides. */
int jobstore_open_driver(const jobstore_driver *drv, const char *target,
                         jobstore **out, kiln_error *err);
/* Installs the status-change hook. Status changes are create's (no),
 * claim (QUEUED or an expired lease -> PROCESSING), complete, requeue,
 * retry, set_processing and cancel, and every change of a process with
 * cancel_requested to CANCELLED (in claim, requeue, interrupt and
 * recover); a postback the hook asks for is committed
 * with the change, so a crash cannot keep one and lose the other. Set it
 * before the store is shared between threads. */
void jobstore_set_notify(jobstore *s, jobstore_notify_fn fn, void *arg);

/* Closes the store; NULL is a no-op. No call may be running on it. */
void jobstore_close(jobstore *s);
/* KILN_OK when the database answers (GET /health). */
int jobstore_ping(jobstore *s, kiln_error *err);

/* ---------------------------------------------------------- processes */

/* Inserts a process from p's id, service_id, status (QUEUED or INCOMPLETE,
 * else KILN_EINVAL), request (required), callback, idem_key, idem_hash,
 * not_before, notify_status, retry_postback and n_jobs (>= 0); attempt is
 * 1, timestamps are now. Durable on return.
 * KILN_EEXIST if the id exists or the service already has idem_key. */
int jobstore_create(jobstore *s, const jobstore_process *p, kiln_error *err);

/* Fills *out (owned by the caller) with the process `id` of `service_id`.
 * KILN_ENOTFOUND if absent or of another service. */
int jobstore_get(jobstore *s, const char *id, int service_id,
                 jobstore_process *out, kiln_error *err);

/* Fills *out with the service's process created with Idempotency-Key
 * `key`; the caller compares out->idem_hash with its body's hash.
 * KILN_ENOTFOUND if none. */
int jobstore_find_idempotent(jobstore *s, int service_id, const char *key,
                             jobstore_process *out, kiln_error *err);

/* Atomically takes the process first in queue order among the QUEUED ones
 * whose not_before <= now and the PROCESSING ones whose lease expired
 * (lease_until < now; taken back with n_requeues + 1, n_interrupts + 1
 * and error "lease expired: re-run"), makes it PROCESSING with lease_until =
 * now + lease_seconds, and fills *out with it as stored. An expired one
 * with cancel_requested is not run again: it becomes CANCELLED on the
 * way, and the claim goes on to the next. KILN_ENOTFOUND when none is
 * ready; KILN_EINVAL if lease_seconds <= 0. */
int jobstore_claim(jobstore *s, int64_t now, int lease_seconds,
                   jobstore_process *out, kiln_error *err);

/* Extends the lease of a PROCESSING process: lease_until = now +
 * lease_seconds (nothing else changes, updated_at included). A worker
 * calls it well within its lease while it runs the process. KILN_ENOTFOUND
 * if absent; KILN_EPERM if it is not PROCESSING any more; KILN_EINVAL if
 * lease_seconds <= 0; KILN_EABI if the driver predates renewal. */
int jobstore_renew(jobstore *s, const char *id, int64_t token, int64_t now,
                   int lease_seconds, kiln_error *err);

/* Ends a PROCESSING process as FINISHED or FAILED (else KILN_EINVAL),
 * storing the per-job results JSON and error (either may be NULL).
 * KILN_ENOTFOUND if absent, KILN_EPERM if it is not PROCESSING.
 *
 * Fencing, here and in requeue, renew and interrupt: `token` is the
 * lease_token of the claim the caller holds; when the process has been
 * claimed again since (its lease ran out and another worker or host took
 * it back), the call changes nothing and answers KILN_EPERM saying the
 * lease was taken back. Token 0 means any holder (an operator's action,
 * tests). */
int jobstore_complete(jobstore *s, const char *id, int64_t token,
                      jobstore_status status, const char *result_json,
                      const char *error, kiln_error *err);

/* complete() recording the run's processing time (duration_ms >= 0, or
 * -1 for none), and accepting CANCELLED too (a run stopped by POST
 * /cancel: cancel_requested is cleared). jobstore_complete() is this
 * with -1 and FINISHED or FAILED only. */
int jobstore_complete_timed(jobstore *s, const char *id, int64_t token,
                            jobstore_status status, const char *result_json,
                            const char *error, double duration_ms,
                            kiln_error *err);

/* Returns a PROCESSING process to QUEUED, not to be claimed before
 * not_before, counting n_requeues + 1 (the caller enforces the 5-attempt
 * limit of wait_retry_delay by reading n_requeues) and keeping `error`
 * (may be NULL) for GET /status. KILN_ENOTFOUND, KILN_EPERM as complete.
 * Here, in interrupt and in recover, a process with cancel_requested
 * becomes CANCELLED instead (error "cancelled while it ran"). */
int jobstore_requeue(jobstore *s, const char *id, int64_t token,
                     int64_t not_before, const char *error, kiln_error *err);

/* A run that was interrupted (shutdown): the PROCESSING process back to
 * QUEUED in its old place in the queue, ready at once, n_interrupts + 1,
 * keeping `error`. KILN_ENOTFOUND, KILN_EPERM as complete. */
int jobstore_interrupt(jobstore *s, const char *id, int64_t token,
                       const char *error, kiln_error *err);

/* Start-up: every PROCESSING process (SQLite), or every one whose lease
 * ran out (PostgreSQL, shared by hosts), back to QUEUED, keeping its place
 * in the queue, n_interrupts + 1 (its run ended with its host).
 * *n_requeued (may be NULL) gets how many. */
int jobstore_recover(jobstore *s, int *n_requeued, kiln_error *err);

/* Retention: deletes up to `max` FINISHED, FAILED or CANCELLED processes last
 * updated before `before` (oldest first), with their postbacks, keeping
 * any that still owes a postback (PENDING). Short transactions: the
 * caller repeats while *n_pruned == max. Several hosts may prune at once.
 * KILN_EINVAL if max < 1; KILN_EABI if the driver cannot prune. */
int jobstore_prune(jobstore *s, int64_t before, int max, int *n_pruned,
                   kiln_error *err);

/* Waits up to timeout_ms until some handle on the same store (another
 * host's too) puts a process in the queue: KILN_OK when that happened
 * (wake the workers), KILN_ENOTFOUND when the time ran out, KILN_EIO when
 * the store cannot be reached, KILN_EABI when the driver cannot tell
 * (SQLite: a host's own submissions wake its workers, and they poll).
 * One thread at a time per handle. */
int jobstore_wait_work(jobstore *s, int timeout_ms, kiln_error *err);

/* Rate limits shared by every host on the store: the token bucket `key`
 * (at most 80 bytes; the caller's opaque name, never a secret), refilled
 * at `rate` per second (> 0) up to `burst` (>= 1) on the store's clock,
 * full when new. With cost 1 it spends a token when it holds a whole one;
 * with cost 0 it only looks. *wait gets 0 when the bucket held a whole
 * token before the call, else the seconds until it will (at least 1).
 * KILN_EABI when the driver does not count (SQLite: one host, which
 * counts in memory). */
int jobstore_rate(jobstore *s, const char *key, double rate, double burst,
                  int cost, int *wait, kiln_error *err);

/* POST /retry for one id: a FINISHED, FAILED or CANCELLED process goes
 * back to QUEUED as attempt + 1 (result, error, duration_ms, n_requeues
 * and not_before reset);
 * *attempt (may be NULL) gets the new attempt, *was (may be NULL) the
 * status it had. KILN_ENOTFOUND (404); KILN_EPERM when INCOMPLETE, QUEUED
 * or PROCESSING (409, *was says which). */
int jobstore_retry(jobstore *s, const char *id, int service_id, int *attempt,
                   jobstore_status *was, kiln_error *err);

/* Appends the elements of the JSON array `jobs_json` to the "jobs" array
 * of an INCOMPLETE process's stored request, in one transaction (two
 * concurrent appends both land). max_jobs > 0 caps the total
 * (KILN_ELIMIT, nothing stored). *n_jobs (may be NULL) gets the new total.
 * KILN_EINVAL if jobs_json is not an array; KILN_ENOTFOUND; KILN_EPERM if
 * the process is not INCOMPLETE. */
int jobstore_append_jobs(jobstore *s, const char *id, int service_id,
                         const char *jobs_json, size_t max_jobs, size_t *n_jobs,
                         kiln_error *err);

/* PATCH {"process": true}: INCOMPLETE -> QUEUED, replacing the callback
 * when `callback` is not NULL. KILN_ENOTFOUND; KILN_EPERM if not
 * INCOMPLETE. */
int jobstore_set_processing(jobstore *s, const char *id, int service_id,
                            const char *callback, kiln_error *err);

/* GET /processes: up to q->limit processes that q selects, newest first,
 * into *out (a malloc'd array of *n_out, freed with
 * jobstore_processes_free; request and result are NOT filled: NULL).
 * KILN_EINVAL for a query without services or a limit out of range. */
int jobstore_list(jobstore *s, const jobstore_query *q, jobstore_process **out,
                  size_t *n_out, kiln_error *err);
/* Frees what jobstore_list filled; NULL is a no-op. */
void jobstore_processes_free(jobstore_process *ps, size_t n);

/* POST /cancel for one id of `service_id`. An INCOMPLETE or QUEUED
 * process becomes CANCELLED at once (a status change: the notify hook
 * runs and its postback is stored with it); a PROCESSING one gets
 * cancel_requested (no status change: its worker stops the run and
 * completes it CANCELLED). *was (may be NULL) gets the status it had.
 * KILN_ENOTFOUND (404); KILN_EPERM when it has ended already (FINISHED,
 * FAILED, CANCELLED: 409, *was says which). A second cancel of a running
 * process is KILN_OK again. */
int jobstore_cancel(jobstore *s, const char *id, int service_id,
                    jobstore_status *was, kiln_error *err);

/* For the runner's keeper: out[i] is true when process ids[i] is
 * PROCESSING with cancel_requested (false when absent); n at most
 * JOBSTORE_MAX_IDS (KILN_EINVAL), in one query. */
#define JOBSTORE_MAX_IDS 64
int jobstore_cancel_requested(jobstore *s, const char *const *ids, size_t n,
                              bool *out, kiln_error *err);

/* GET /stats: every FINISHED, FAILED or CANCELLED process of the services
 * whose updated_at is in [since, until), in updated_at order, into *out
 * (malloc'd, *n_out entries; NULL when 0; free() it). */
int jobstore_list_ended(jobstore *s, const int *service_ids,
                        size_t n_service_ids, int64_t since, int64_t until,
                        jobstore_ended_process **out, size_t *n_out,
                        kiln_error *err);

/* GET /status/{id}/postbacks: the postbacks of a process, oldest first
 * (url and body filled), into *out; free with jobstore_postbacks_free. */
int jobstore_postbacks_of(jobstore *s, const char *process_id,
                          jobstore_postback **out, size_t *n_out,
                          kiln_error *err);

/* ---------------------------------------------------------- postbacks */

/* Stores a PENDING postback from pb's process_id, service_id, url, body,
 * next_at and retry (attempt 0). *id (may be NULL) gets its id. */
int jobstore_postback_enqueue(jobstore *s, const jobstore_postback *pb,
                              int64_t *id, kiln_error *err);

/* Claims up to `max` PENDING postbacks with next_at <= now, oldest first:
 * their next_at moves to now + lease_seconds (the lease), so another
 * sender does not take them and a crash mid-delivery sends them again
 * once the lease is over. *out is a malloc'd array of *n_out (NULL when
 * 0), freed with jobstore_postbacks_free(). KILN_EINVAL if lease_seconds
 * <= 0. */
int jobstore_postback_due(jobstore *s, int64_t now, int lease_seconds,
                          size_t max, jobstore_postback **out, size_t *n_out,
                          kiln_error *err);

/* Records one delivery attempt: delivered -> DELIVERED; otherwise, when
 * `retry` (the postback's own, as postback_due() gave it) and
 * jobstore_postback_delay(attempts) >= 0, PENDING at now + delay, else
 * GIVEN_UP. http_status and error (may be NULL) are kept.
 * *state (may be NULL) gets the new state. KILN_ENOTFOUND; KILN_EPERM if
 * the postback is no longer PENDING. */
int jobstore_postback_record(jobstore *s, int64_t id, bool delivered,
                             int http_status, const char *error, int64_t now,
                             bool retry, jobstore_postback_state *state,
                             kiln_error *err);

/* Fills *out with postback `id`; KILN_ENOTFOUND if absent. */
int jobstore_postback_get(jobstore *s, int64_t id, jobstore_postback *out,
                          kiln_error *err);

/* ------------------------------------------------------------ metrics */

/* Processes per status, ready queue depth and postbacks per state. */
int jobstore_counts_get(jobstore *s, int64_t now, jobstore_counts *out,
                        kiln_error *err);

#endif
