/*
 * Admission (server.h, server_admit): a POST /request body is parsed and
 * compiled once, checked against what the token may use, the network
 * guard and the deployment, and stored as a process whose columns carry
 * what the server needs later (service, callback, postback settings), so
 * nothing re-reads the stored JSON for them. The worker compiles the
 * stored text again when it runs it: the process may run on another host,
 * or after a restart, and a compiled graph does not outlive its arena.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#include "postback.h"

/* FNV-1a of the body: tells a repeated POST with the same Idempotency-Key
 * and body from one with a different body. */
void
server_body_hash(const char *body, size_t len, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)body[i];
        h *= 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

typedef struct admit_gate {
    server_gate_fn gate;
    void *user;
    int service;   /* the last id the gate was asked about */
    bool is_asked; /* the body parsed, and the gate was asked */
    bool refused;
} admit_gate;

/* dsl_stages.admit: notes the service and asks the caller's gate. */
static bool
admit_service(void *arg, int service_id)
{
    admit_gate *g = arg;
    g->service = service_id;
    g->is_asked = true;
    if (g->gate != NULL && !g->gate(g->user, service_id)) {
        g->refused = true;
        return false;
    }
    return true;
}

/* One validation problem at `path`, for errs. */
static int
admit_invalid(errlist *errs, const char *path, const char *message)
{
    kiln_error ve;
    err_set_path(&ve, KILN_EINVAL, path, "%s", message);
    errlist_add(errs, &ve, NULL);
    return KILN_EINVAL;
}

static bool
admit_has_error_at(const errlist *errs, const char *path)
{
    for (size_t i = 0; i < errs->n; i++) {
        if (strcmp(errs->items[i].e.path, path) == 0) {
            return true;
        }
    }
    return false;
}

/* Called when the gate was asked about no valid service id: service_id
 * is missing, or in a form the parse-time reading (dsl_request_service)
 * does not take. The compiler reads some forms the API's rule refuses
 * ("1.0", "-0": such a body was stored for its service without the gate
 * ever seeing it, whatever the token) and the parse-time reading misses
 * one the rule takes (ten digits in a string). So the body's service_id
 * is read again by the rule (dsl_service_id_json): an id it takes goes
 * through the gate now; a form it refuses is an error at "service_id",
 * unless the compiler reported one there. Returns rc, or KILN_EINVAL for
 * a refused form. */
static int
admit_check_form(const char *body, size_t len, admit_gate *ag, errlist *errs,
                 int rc)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "service_id");
    if (v != NULL) {
        int id = dsl_service_id_json(v);
        if (id >= 0) {
            (void)admit_service(ag, id);
        } else if (!admit_has_error_at(errs, "service_id")) {
            char msg[200];
            dsl_service_id_problem(v, msg, sizeof msg);
            rc = admit_invalid(errs, "service_id", msg);
        }
    }
    cJSON_Delete(root);
    return rc;
}

int
server_admit(kiln_server *s, const char *body, size_t len, const char *idem_key,
             server_gate_fn gate, void *user, int *service,
             char id_out[JOBSTORE_ID_LEN + 1], errlist *errs, kiln_error *err)
{
    kiln_engine *e = s->engine;
    admit_gate ag = {.gate = gate, .user = user, .service = -1};
    arena *a = NULL;
    graph *g = NULL;
    int rc =
        engine_compile_admit(e, body, len, admit_service, &ag, &a, &g, errs);
    if (ag.is_asked && ag.service < 0 && !ag.refused && rc != KILN_ENOMEM) {
        rc = admit_check_form(body, len, &ag, errs, rc);
    }
    /* The gate must have said yes to the service the process is stored
     * under, however the body wrote it: asked again if it has not. */
    if (rc == KILN_OK && !ag.refused && ag.service != g->req.service_id) {
        (void)admit_service(&ag, g->req.service_id);
    }
    *service = ag.service;
    if (ag.refused) {
        arena_free(a);
        return KILN_EPERM;
    }
    if (rc != KILN_OK) {
        arena_free(a);
        return rc == KILN_ENOMEM ? err_set(err, rc, "out of memory") : rc;
    }
    kiln_error ve;
    err_clear(&ve);
    if (config_find_service(e->config, g->req.service_id) == NULL) {
        char msg[80];
        snprintf(msg, sizeof msg, "no service %d in this deployment",
                 g->req.service_id);
        rc = admit_invalid(errs, "service_id", msg);
    } else if (engine_check_source(e, g->req.service_id, g->req.source, &ve) !=
               KILN_OK) {
        /* A URL source the service may not read, or the network guard
         * refuses, is refused now (400). */
        errlist_add(errs, &ve, NULL);
        rc = KILN_EINVAL;
    } else if (g->req.callback != NULL &&
               postback_check_url(e, g->req.callback, &ve) != KILN_OK) {
        /* A callback the network guard refuses is refused now, at
         * submission (400), not discovered at the first postback. */
        rc = admit_invalid(errs, "callback", ve.message);
    }
    if (rc != KILN_OK) {
        arena_free(a);
        return rc;
    }
    jobstore_process p;
    memset(&p, 0, sizeof p);
    rc = jobstore_new_id(p.id, err);
    if (rc != KILN_OK) {
        arena_free(a);
        return rc;
    }
    char hash[17];
    server_body_hash(body, len, hash);
    /* The store keeps the request as text; it must be a C string. */
    char *text = strndup(body, len);
    if (text == NULL) {
        arena_free(a);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    p.service_id = g->req.service_id;
    p.status = g->req.process ? JOBSTORE_QUEUED : JOBSTORE_INCOMPLETE;
    p.request = text;
    p.callback = (char *)g->req.callback;
    p.notify_status = g->req.notify_status;
    p.retry_postback = g->req.retry_postback;
    p.n_jobs = (int)g->n_jobs;
    p.duration_ms = -1;
    p.idem_key = (char *)idem_key;
    p.idem_hash = idem_key != NULL ? hash : NULL;
    rc = jobstore_create(s->store, &p, err);
    free(text);
    arena_free(a);
    if (rc == KILN_OK) {
        memcpy(id_out, p.id, sizeof p.id);
    }
    return rc;
}
