/*
 * A small set of identical threads that loop until stopped and sleep
 * between rounds until woken or a timeout passes: the shape of both the
 * process runner and the postback senders. The threads poll a durable
 * store, so a lost wake-up costs at most one timeout, never work.
 */
#ifndef KILN_SERVER_WORKERS_H
#define KILN_SERVER_WORKERS_H

#include <pthread.h>
#include <stdbool.h>

/* Threads in one set: the configuration's "workers" is at most 1024. */
#define WORKERS_MAX 1024

typedef struct workers {
    pthread_t *threads; /* n_threads of them, allocated by workers_start */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
    unsigned wakeups;
} workers;

/* Starts n (1..WORKERS_MAX) threads running fn(arg). Returns the number
 * started; 0 means none could be (w is then already cleaned up). */
int workers_start(workers *w, int n, void *(*fn)(void *), void *arg);
/* Called by a thread at the top of a round: false once stopping; *seen
 * gets the wake-up count to hand to workers_sleep. */
bool workers_running(workers *w, unsigned *seen);
/* Sleeps until woken after `seen`, stopped, or `ms` milliseconds. */
void workers_sleep(workers *w, unsigned seen, long ms);
/* Wakes every sleeping thread for a new round. */
void workers_wake(workers *w);
/* Wakes one sleeping thread: one new item of work needs one thread, and
 * waking them all makes the others race for nothing. */
void workers_wake_one(workers *w);
/* Stops the threads, waits for their current round, and releases w. */
void workers_stop(workers *w);
/* The same, but when the threads are not done within `ms` milliseconds
 * calls on_late(arg) once (to cancel their work), then waits at most
 * `give_up_ms` more (negative: for ever). Returns false when some thread
 * was still running then: w is not released and its threads may still
 * use `arg`, so the caller can only end the program. */
bool workers_stop_within(workers *w, long ms, void (*on_late)(void *),
                         void *arg, long give_up_ms);

#endif /* KILN_SERVER_WORKERS_H */
