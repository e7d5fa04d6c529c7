/*
 * The server's life (server.h): what `kiln serve` opens, starts, stops
 * and frees, in an order that loses nothing: the store and its
 * status-change hook before any thread, the workers stopped before the
 * senders (their last status changes owe postbacks too), the hook on the
 * engine removed before the server is freed.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include "limiter.h"
#include "metrics.h"
#include "postback.h"
#include "runner.h"

/* engine_serve_fn: the engine's API hook. */
static void
server_serve(void *user, const kiln_call *call, const struct sockaddr *peer,
             kiln_reply *out)
{
    server_call(user, call, peer, out);
}

static void
server_serve_metrics(void *user, kiln_reply *out)
{
    server_metrics(user, out);
}

int
server_new(kiln_engine *e, jobstore *store, kiln_server **out, kiln_error *err)
{
    kiln_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    s->engine = e;
    s->config = e->config;
    s->store = store;
    if (store == NULL) {
        const kiln_config *c = e->config;
        bool pg = c->jobstore_driver != NULL &&
                  strcmp(c->jobstore_driver, "postgres") == 0;
        int rc = jobstore_open(c->jobstore_driver,
                               pg ? c->jobstore_dsn : c->jobstore_path,
                               &s->store, err);
        if (rc != KILN_OK) {
            free(s);
            return rc;
        }
        s->own_store = true;
    }
    s->limiter = limiter_new(e->config, s->store);
    s->metrics = metrics_new();
    if (s->limiter == NULL || s->metrics == NULL) {
        server_free(s);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    postback_attach(s);
    e->serve = server_serve;
    e->serve_metrics = server_serve_metrics;
    e->serve_user = s;
    *out = s;
    return KILN_OK;
}

int
server_start(kiln_server *s, int n_workers, int lease_s, int n_senders,
             kiln_error *err)
{
    int rc = runner_start(s, n_workers, lease_s, &s->runner, err);
    if (rc == KILN_OK && n_senders > 0) {
        rc = postbacker_start(s, n_senders, &s->postbacker, err);
    }
    return rc;
}

bool
server_stop(kiln_server *s)
{
    if (s == NULL) {
        return true;
    }
    if (!runner_stop(s->runner)) {
        return false;
    }
    s->runner = NULL;
    /* Whatever is not delivered by now stays in the store for later. */
    postbacker_stop(s->postbacker);
    s->postbacker = NULL;
    return true;
}

void
server_free(kiln_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->engine->serve_user == s) {
        s->engine->serve = NULL;
        s->engine->serve_metrics = NULL;
        s->engine->serve_user = NULL;
    }
    if (s->store != NULL) {
        jobstore_set_notify(s->store, NULL, NULL);
        if (s->own_store) {
            jobstore_close(s->store);
        }
    }
    limiter_free(s->limiter);
    metrics_free(s->metrics);
    free(s);
}
