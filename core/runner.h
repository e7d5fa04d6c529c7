/*
 * The process runner: the engine's side of the API server. Submission
 * validates a request with the compiler and stores it durably; worker
 * threads claim queued processes from the job store, run them through the
 * same engine as `kiln run`, and store each outcome. Transport-free: the
 * HTTP plugin drives it through the host API, tests drive it directly.
 */
#ifndef KILN_CORE_RUNNER_H
#define KILN_CORE_RUNNER_H

#include "jobstore.h"
#include "kiln.h"

typedef struct runner runner;

/* How often a source that cannot be read yet is re-queued under
 * wait_retry_delay before the process fails (api.md). */
#define RUNNER_MAX_REQUEUES 5

/* Validates `body` (a POST /request body) and stores it as a new process
 * of its service: QUEUED, or INCOMPLETE when it says "process": false.
 * Every validation problem goes to errs (the caller answers 400 with
 * them); other failures (the store) go to err. On success id_out holds the
 * new process id. `idem_key` may be NULL. */
int runner_submit(kiln_engine *e, jobstore *js, const char *body, size_t len,
                  const char *idem_key, char id_out[JOBSTORE_ID_LEN + 1],
                  errlist *errs, kiln_error *err);

/* A claim's lease: a process whose worker stops renewing it (its host
 * died) is taken back by another worker after this many seconds. The
 * runner renews the leases of running processes three times per lease. */
#define RUNNER_LEASE_S 30

/* Re-queues whatever a previous run left PROCESSING, then starts n_workers
 * threads that claim and run queued processes until runner_stop(). A
 * process interrupted config max_interruptions times is failed when next
 * claimed; one running kill_after seconds past its max_process_time ends
 * the program (runner.c, runner_force_stop). */
int runner_start(kiln_engine *e, jobstore *js, int n_workers, runner **out,
                 kiln_error *err);
/* The same with another lease than RUNNER_LEASE_S (tests). */
int runner_start_lease(kiln_engine *e, jobstore *js, int n_workers, int lease_s,
                       runner **out, kiln_error *err);

/* Wakes idle workers at once (a process was just queued). */
void runner_wake(runner *r);

/* Stops claiming new processes, waits for the running ones for the
 * config's shutdown_timeout, then interrupts those still running (their
 * pipelines are killed, nothing is written, and they go back to the
 * queue), and frees the runner. Returns false when a process did not
 * stop within the config's kill_after of being interrupted: the runner is
 * then not freed, its threads still use the engine and store, and the
 * caller must end the program without freeing them (_exit); the process
 * stays PROCESSING in the store and the next runner_start() re-queues it,
 * counted as an interruption. */
bool runner_stop(runner *r);

/* A short hash of a request body, kept with an Idempotency-Key to tell a
 * repeated POST from a different one under the same key. */
void runner_body_hash(const char *body, size_t len, char out[17]);

/* Runs one claimed process and stores its outcome (exposed for tests). */
void runner_run_one(kiln_engine *e, jobstore *js, jobstore_process *p);

/* The GET /status body of a stored process (api.md). The caller deletes
 * it with cJSON_Delete. */
cJSON *runner_status_json(const jobstore_process *p);

#endif /* KILN_CORE_RUNNER_H */
