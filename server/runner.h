/*
 * The process runner (runner.c): worker threads that claim queued
 * processes from the server's job store, run them through the engine as
 * `kiln run` does, and store each outcome; a keeper that renews their
 * leases, ends a run that cannot be stopped and prunes old processes; on
 * a store that can tell (PostgreSQL), a listener that wakes the workers
 * when any host queues work.
 */
#ifndef KILN_SERVER_RUNNER_H
#define KILN_SERVER_RUNNER_H

#include "server.h"

typedef struct runner runner;

/* How often a source that cannot be read yet is re-queued under
 * wait_retry_delay before the process fails (api.md). */
#define RUNNER_MAX_REQUEUES 5

/* A claim's lease: a process whose worker stops renewing it (its host
 * died) is taken back by another worker after this many seconds. The
 * runner renews the leases of running processes three times per lease. */
#define RUNNER_LEASE_S 30

/* Re-queues whatever a previous run left PROCESSING, then starts n_workers
 * threads that claim and run s's queued processes until runner_stop(),
 * with leases of lease_s seconds (0: RUNNER_LEASE_S). A process
 * interrupted config max_interruptions times is failed when next
 * claimed; one running kill_after seconds past its max_process_time ends
 * the program (runner.c, runner_force_stop). */
int runner_start(kiln_server *s, int n_workers, int lease_s, runner **out,
                 kiln_error *err);
/* Wakes an idle worker at once (a process was just queued). */
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
/* Runs one claimed process and stores its outcome (exposed for tests). */
void runner_run_one(kiln_server *s, jobstore_process *p);

#endif /* KILN_SERVER_RUNNER_H */
