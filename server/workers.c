/*
 * Looping worker threads (workers.h): a mutex, a condition variable, a
 * stop flag and a wake-up counter. Counting wake-ups instead of keeping a
 * flag means a wake that arrives while a thread is busy is not lost: the
 * thread sees the count moved and starts another round at once.
 */
#include "workers.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* The CLOCK_REALTIME moment `ms` milliseconds from now, for timed waits. */
static struct timespec
workers_deadline(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int
workers_start(workers *w, int n, void *(*fn)(void *), void *arg)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->stopping = false;
    w->wakeups = 0;
    w->n_threads = 0;
    if (n < 1) {
        n = 1;
    } else if (n > WORKERS_MAX) {
        n = WORKERS_MAX;
    }
    w->threads = calloc((size_t)n, sizeof *w->threads);
    for (int i = 0; w->threads != NULL && i < n; i++) {
        if (pthread_create(&w->threads[i], NULL, fn, arg) != 0) {
            break;
        }
        w->n_threads++;
    }
    if (w->n_threads == 0) {
        free(w->threads);
        w->threads = NULL;
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
    }
    return w->n_threads;
}

bool
workers_running(workers *w, unsigned *seen)
{
    pthread_mutex_lock(&w->mu);
    bool run = !w->stopping;
    *seen = w->wakeups;
    pthread_mutex_unlock(&w->mu);
    return run;
}

void
workers_sleep(workers *w, unsigned seen, long ms)
{
    struct timespec until = workers_deadline(ms);
    pthread_mutex_lock(&w->mu);
    while (!w->stopping && w->wakeups == seen) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

void
workers_wake(workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->wakeups++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void
workers_wake_one(workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->wakeups++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void
workers_stop(workers *w)
{
    workers_stop_within(w, -1, NULL, NULL, -1);
}

bool
workers_stop_within(workers *w, long ms, void (*on_late)(void *), void *arg,
                    long give_up_ms)
{
    if (w->n_threads == 0) {
        return true;
    }
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    struct timespec until = workers_deadline(ms);
    bool late = false;
    for (int i = 0; i < w->n_threads; i++) {
        if (ms >= 0 && !late &&
            pthread_timedjoin_np(w->threads[i], NULL, &until) == 0) {
            continue;
        }
        if (ms >= 0 && !late) {
            late = true;
            if (on_late != NULL) {
                on_late(arg);
            }
            until = workers_deadline(give_up_ms);
        }
        if (late && give_up_ms >= 0) {
            if (pthread_timedjoin_np(w->threads[i], NULL, &until) != 0) {
                return false;
            }
            continue;
        }
        pthread_join(w->threads[i], NULL);
    }
    w->n_threads = 0;
    free(w->threads);
    w->threads = NULL;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    return true;
}
