/*
 * The HTTP API of docs/api.md, without the HTTP: routing, bearer-token
 * authentication (constant time), the 401/403/404 rules, validation
 * answers with every error and its path, Idempotency-Key, per-token rate
 * limits, retry, dynamic processes, health and metrics. A transport plugin
 * (api-http) turns each request into a kiln_call and sends the kiln_reply
 * back; keeping the semantics here makes them testable without sockets and
 * shared by any transport.
 */
#include "server.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limiter.h"
#include "metrics.h"
#include "postback.h"
#include "runner.h"

/* ------------------------------------------------------------ replies */

static void
api_reply_json(kiln_reply *out, int status, cJSON *body)
{
    out->status = status;
    out->content_type = "application/json";
    out->body = cJSON_PrintUnformatted(body);
    out->body_len = out->body != NULL ? strlen(out->body) : 0;
    cJSON_Delete(body);
}

static void api_message(kiln_reply *out, int status, const char *fmt, ...)
    KILN_PRINTF(3, 4);

static void
api_message(kiln_reply *out, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    api_reply_json(out, status, o);
}

/* "job store: " unless the store's message already names it (the SQLite
 * store names its file). */
static const char *
api_store_prefix(const kiln_error *err)
{
    return strncmp(err->message, "job store", 9) == 0 ? "" : "job store: ";
}

/* 503: the job store failed, in its words. */
static void
api_store_failed(kiln_reply *out, const kiln_error *err)
{
    log_msg(KILN_LOG_WARN, "store", "%s%s", api_store_prefix(err),
            err->message);
    api_message(out, 503, "%s%s", api_store_prefix(err), err->message);
}

/* ------------------------------------------------------ authentication */

/* Compares in time that depends only on the configured token's length, so
 * a wrong guess learns nothing from how long the answer took. */
static bool
api_token_equal(const char *given, size_t given_len, const char *want)
{
    size_t want_len = strlen(want);
    unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < want_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)want[i];
    }
    return diff == 0;
}

/* The services a bearer token may use, into ids (at most max). Every
 * configured token is compared, match or not. */
static size_t
api_auth(const kiln_server *s, const char *authorization, int *ids, size_t max,
         const char **token, size_t *token_len)
{
    static const char prefix[] = "Bearer ";
    if (authorization == NULL ||
        strncmp(authorization, prefix, sizeof prefix - 1) != 0) {
        return 0;
    }
    const char *t = authorization + sizeof prefix - 1;
    size_t len = strlen(t);
    size_t n = 0;
    for (size_t i = 0; i < s->config->n_services; i++) {
        const config_service *svc = &s->config->services[i];
        bool match = false;
        for (size_t k = 0; k < svc->n_tokens; k++) {
            match |= api_token_equal(t, len, svc->tokens[k]);
        }
        if (match && n < max) {
            ids[n++] = svc->id;
        }
    }
    *token = t;
    *token_len = len;
    return n;
}

static bool
api_may_use(const int *ids, size_t n, int service_id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == service_id) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------ handlers */

static cJSON *
api_parse_body(const kiln_call *c)
{
    if (c->body == NULL || c->body_len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(c->body, c->body_len);
}

/* The service_id a body names, by the API's one rule
 * (dsl_service_id_json), or -1. */
static int
api_body_service(const cJSON *body)
{
    return dsl_service_id_json(
        cJSON_GetObjectItemCaseSensitive(body, "service_id"));
}

/* A 400 with one error at `path`, shaped like the compiler's. */
static void
api_invalid_one(kiln_reply *out, const char *path, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", "the request is not valid");
    cJSON *errs = cJSON_AddArrayToObject(o, "errors");
    cJSON *eo = cJSON_CreateObject();
    cJSON_AddStringToObject(eo, "path", path);
    cJSON_AddStringToObject(eo, "message", message);
    cJSON_AddItemToArray(errs, eo);
    api_reply_json(out, 400, o);
}

static void
api_invalid(kiln_reply *out, const errlist *errs)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", "the request is not valid");
    cJSON *arr = cJSON_AddArrayToObject(o, "errors");
    for (size_t i = 0; i < errs->n; i++) {
        cJSON *eo = cJSON_CreateObject();
        cJSON_AddStringToObject(eo, "path", errs->items[i].e.path);
        cJSON_AddStringToObject(eo, "message", errs->items[i].e.message);
        cJSON_AddItemToArray(arr, eo);
    }
    api_reply_json(out, 400, o);
}

static void
api_success(kiln_reply *out, const char *id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "SUCCESS");
    cJSON_AddStringToObject(o, "process_id", id);
    api_reply_json(out, 200, o);
}

/* An Idempotency-Key is stored and compared: 1 to 255 visible ASCII
 * characters (RFC 9110's token and quoted text fit), so one header cannot
 * fill the job store or carry bytes a log or status body would mangle.
 * Returns false after answering 400. */
#define API_IDEMPOTENCY_MAX 255
static bool
api_idempotency_ok(const char *key, kiln_reply *out)
{
    size_t len = strlen(key);
    if (len == 0 || len > API_IDEMPOTENCY_MAX) {
        api_message(out, 400,
                    "the Idempotency-Key header is %zu bytes long (expected "
                    "1 to %d visible ASCII characters)",
                    len, API_IDEMPOTENCY_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch < 0x20 || ch > 0x7e) {
            api_message(out, 400,
                        "the Idempotency-Key header has the byte 0x%02x at "
                        "offset %zu (expected visible ASCII characters)",
                        ch, i);
            return false;
        }
    }
    return true;
}

/* Wakes a worker of this host for work just queued (other hosts hear of
 * it from the store, when it can tell them). */
static void
api_wake(kiln_server *s)
{
    if (s->runner != NULL) {
        runner_wake(s->runner);
    }
}

/* The process of `service` created with Idempotency-Key `key`: answers
 * with its id when the body is the same (hash), 409 when not. False
 * when there is none (or the store cannot tell: the create that follows
 * then says what is wrong). */
static bool
api_idempotent(kiln_server *s, int service, const char *key, const char *hash,
               kiln_reply *out)
{
    jobstore_process p;
    memset(&p, 0, sizeof p);
    kiln_error err;
    err_clear(&err);
    if (jobstore_find_idempotent(s->store, service, key, &p, &err) != KILN_OK) {
        return false;
    }
    if (p.idem_hash != NULL && strcmp(p.idem_hash, hash) == 0) {
        api_success(out, p.id);
    } else {
        api_message(out, 409, "Idempotency-Key was used with a different body");
    }
    jobstore_process_clear(&p);
    return true;
}

/* What POST /request checks once the body is parsed, before it is
 * compiled (server_admit's gate). */
typedef struct api_create_gate {
    kiln_server *s;
    const int *ids;
    size_t n_ids;
    const kiln_call *c;
    const char *hash;
    kiln_reply *out;
    bool answered;
} api_create_gate;

/* A service the token may not use: 403, whatever else the body holds. A
 * key already used for that service: the first process's id, or 409 for
 * another body; the body is not compiled again. */
static bool
api_create_check(void *arg, int service)
{
    api_create_gate *g = arg;
    if (service < 0) {
        return true; /* the compiler says what is wrong */
    }
    if (!api_may_use(g->ids, g->n_ids, service)) {
        api_message(g->out, 403, "this token may not use service %d", service);
        g->answered = true;
        return false;
    }
    if (g->c->idempotency_key != NULL &&
        api_idempotent(g->s, service, g->c->idempotency_key, g->hash, g->out)) {
        g->answered = true;
        return false;
    }
    return true;
}

/* POST /request: parsed and compiled once (server_admit). */
static void
api_create(kiln_server *s, const kiln_call *c, const int *ids, size_t n_ids,
           kiln_reply *out, int *service_out)
{
    if (c->idempotency_key != NULL &&
        !api_idempotency_ok(c->idempotency_key, out)) {
        return;
    }
    const char *body = c->body != NULL ? c->body : "";
    kiln_error err;
    err_clear(&err);
    char hash[17];
    server_body_hash(body, c->body_len, hash);
    errlist errs = {0};
    char id[JOBSTORE_ID_LEN + 1];
    api_create_gate gate = {s, ids, n_ids, c, hash, out, false};
    int service = -1;
    int rc = server_admit(s, body, c->body_len, c->idempotency_key,
                          api_create_check, &gate, &service, id, &errs, &err);
    if (service >= 0) {
        *service_out = service;
    }
    if (rc == KILN_OK) {
        api_wake(s);
        api_success(out, id);
    } else if (gate.answered) {
        /* answered by the gate */
    } else if (rc == KILN_EEXIST && c->idempotency_key != NULL) {
        /* Two identical POSTs raced: the winner's id (or 409). */
        if (!api_idempotent(s, service, c->idempotency_key, hash, out)) {
            api_store_failed(out, &err);
        }
    } else if (errs.n > 0) {
        api_invalid(out, &errs);
    } else {
        api_store_failed(out, &err);
    }
    errlist_free(&errs);
}

/* Finds process `id` among the token's services. Otherwise answers, and
 * returns false: 404 when none has it (never 403: existence is not
 * revealed), 503 when the job store could not be read, as api.md says (a
 * store that fails is not a process that is missing). */
static bool
api_find(kiln_server *s, const char *id, const int *ids, size_t n_ids,
         jobstore_process *p, kiln_reply *out)
{
    kiln_error err;
    err_clear(&err);
    for (size_t i = 0; i < n_ids; i++) {
        memset(p, 0, sizeof *p);
        int rc = jobstore_get(s->store, id, ids[i], p, &err);
        if (rc == KILN_OK) {
            return true;
        }
        if (rc != KILN_ENOTFOUND) {
            api_message(out, 503, "the job store cannot be read: %s",
                        err.message);
            return false;
        }
    }
    api_message(out, 404, "Process not found");
    return false;
}

static void
api_status(kiln_server *s, const char *id, const int *ids, size_t n_ids,
           kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(s, id, ids, n_ids, &p, out)) {
        return;
    }
    api_reply_json(out, 200, server_status_json(&p));
    jobstore_process_clear(&p);
}

/* Answers 400 at the path of what is wrong and returns false unless the
 * body is {"service_id": N, "process_ids": ["...", ...]} with N a service
 * id as POST /request takes it (1 or "1": dsl_service_id_json) and
 * every id a string. */
static bool
api_retry_body_ok(const cJSON *body, kiln_reply *out)
{
    char msg[256], *shown;
    if (!cJSON_IsObject(body)) {
        api_invalid_one(out, "",
                        "expected a JSON object {\"service_id\": N, "
                        "\"process_ids\": [\"...\"]}");
        return false;
    }
    if (api_body_service(body) < 0) {
        dsl_service_id_problem(
            cJSON_GetObjectItemCaseSensitive(body, "service_id"), msg,
            sizeof msg);
        api_invalid_one(out, "service_id", msg);
        return false;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "process_ids");
    if (!cJSON_IsArray(list)) {
        api_invalid_one(out, "process_ids",
                        list == NULL ? "missing (expected an array of "
                                       "process ids)"
                                     : "expected an array of process ids");
        return false;
    }
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it)) {
            char path[40];
            snprintf(path, sizeof path, "process_ids[%d]", k);
            shown = cJSON_PrintUnformatted(it);
            snprintf(msg, sizeof msg,
                     "got %.60s%s (expected a process id, a string)",
                     shown ? shown : "?",
                     shown != NULL && strlen(shown) > 60 ? "..." : "");
            cJSON_free(shown);
            api_invalid_one(out, path, msg);
            return false;
        }
        k++;
    }
    return true;
}

/* One id of POST /retry or POST /cancel: fills status (the entry's HTTP
 * status) and desc; returns true when a process was queued. */
typedef bool (*api_id_fn)(kiln_server *s, const char *id, int service,
                          int *status, char *desc, size_t size);

/* POST /retry and POST /cancel: {"service_id": N, "process_ids": [...]},
 * answered 200 with one entry per id. */
static void
api_each_id(kiln_server *s, const kiln_call *c, const int *ids, size_t n_ids,
            api_id_fn fn, kiln_reply *out)
{
    cJSON *body = api_parse_body(c);
    if (!api_retry_body_ok(body, out)) {
        cJSON_Delete(body);
        return;
    }
    int service = api_body_service(body);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "process_ids");
    if (!api_may_use(ids, n_ids, service)) {
        cJSON_Delete(body);
        api_message(out, 403, "this token may not use service %d", service);
        return;
    }
    cJSON *answer = cJSON_CreateArray();
    const cJSON *it;
    bool woke = false;
    cJSON_ArrayForEach(it, list)
    {
        const char *id = it->valuestring; /* a string: checked above */
        char desc[256];
        int status = 0;
        woke |= fn(s, id, service, &status, desc, sizeof desc);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "process_id", id);
        cJSON_AddStringToObject(o, "description", desc);
        cJSON_AddItemToArray(answer, o);
    }
    cJSON_Delete(body);
    if (woke) {
        api_wake(s);
    }
    api_reply_json(out, 200, answer);
}

/* The entry of an id the store could not act on: 404, or 503 in the
 * store's words. */
static int
api_id_failed(int rc, const kiln_error *err, char *desc, size_t size)
{
    if (rc == KILN_ENOTFOUND) {
        snprintf(desc, size, "Process not found");
        return 404;
    }
    snprintf(desc, size, "%s%.200s", api_store_prefix(err), err->message);
    return 503;
}

static bool
api_retry_one(kiln_server *s, const char *id, int service, int *status,
              char *desc, size_t size)
{
    kiln_error err;
    err_clear(&err);
    int attempt = 0;
    jobstore_status was = JOBSTORE_N_STATUS;
    int rc = jobstore_retry(s->store, id, service, &attempt, &was, &err);
    if (rc == KILN_OK) {
        snprintf(desc, size, "Reprocessing process, attempt: %d", attempt);
        *status = 200;
        return true;
    }
    if (rc == KILN_EPERM) {
        /* Only an ended process runs again; say why this one is not. */
        const char *why = "Process is still running";
        if (was == JOBSTORE_QUEUED) {
            why = "Process is queued: it has not run yet";
        } else if (was == JOBSTORE_INCOMPLETE) {
            why = "Process is INCOMPLETE: it has not been queued yet";
        }
        snprintf(desc, size, "%s", why);
        *status = 409;
    } else {
        *status = api_id_failed(rc, &err, desc, size);
    }
    return false;
}

/* A queued process is cancelled at once; a running one is stopped by
 * the worker that holds it (runner.c, within a second or two), which
 * then ends it CANCELLED. */
static bool
api_cancel_one(kiln_server *s, const char *id, int service, int *status,
               char *desc, size_t size)
{
    kiln_error err;
    err_clear(&err);
    jobstore_status was = JOBSTORE_QUEUED;
    int rc = jobstore_cancel(s->store, id, service, &was, &err);
    if (rc == KILN_OK && was == JOBSTORE_PROCESSING) {
        snprintf(desc, size, "Cancelling: the run is being stopped");
        *status = 202;
    } else if (rc == KILN_OK) {
        snprintf(desc, size, "Cancelled");
        *status = 200;
    } else if (rc == KILN_EPERM) {
        snprintf(desc, size, "Process has already ended (%s)",
                 jobstore_status_name(was));
        *status = 409;
    } else {
        *status = api_id_failed(rc, &err, desc, size);
    }
    return false;
}

/* 400 for a query parameter: its name, the value quoted, what was
 * expected. */
static void
api_bad_param(kiln_reply *out, const char *name, const char *value,
              const char *expected)
{
    char shown[80];
    err_quote(shown, sizeof shown, value);
    api_message(out, 400, "query parameter \"%s\": got %s (expected %s)", name,
                shown, expected);
}

/* Reads query parameter `name` into buf: false after answering 400 when
 * it cannot be decoded; *found says whether it was there. */
static bool
api_param(const kiln_call *c, const char *name, char *buf, size_t size,
          bool *found, kiln_reply *out)
{
    int rc = server_query_get(c->query, name, buf, size);
    *found = rc == 1;
    if (rc < 0) {
        api_message(out, 400,
                    "query parameter \"%s\" cannot be read (a bad %%-escape "
                    "or over %zu bytes)",
                    name, size - 1);
        return false;
    }
    return true;
}

/* The services a GET narrows the token's to with ?service_id=N: false
 * after answering 400 or 403. */
static bool
api_param_services(const kiln_call *c, const int *ids, size_t n_ids, int *out,
                   size_t *n_out, kiln_reply *reply)
{
    char v[32];
    bool found = false;
    if (!api_param(c, "service_id", v, sizeof v, &found, reply)) {
        return false;
    }
    if (!found) {
        memcpy(out, ids, n_ids * sizeof *ids);
        *n_out = n_ids;
        return true;
    }
    int id = dsl_service_id_text(v);
    if (id < 0) {
        api_bad_param(reply, "service_id", v,
                      "a service id: a whole number from 0 to 2147483647");
        return false;
    }
    if (!api_may_use(ids, n_ids, id)) {
        api_message(reply, 403, "this token may not use service %d", id);
        return false;
    }
    out[0] = id;
    *n_out = 1;
    return true;
}

#define API_LIST_DEFAULT 50
#define API_LIST_MAX 200

/* GET /processes: the token's processes, newest first, a page at a time
 * (docs/api.md). */
static void
api_processes(kiln_server *s, const kiln_call *c, const int *ids, size_t n_ids,
              kiln_reply *out)
{
    jobstore_query q;
    memset(&q, 0, sizeof q);
    int services[64];
    size_t n_services = 0;
    if (!api_param_services(c, ids, n_ids, services, &n_services, out)) {
        return;
    }
    q.service_ids = services;
    q.n_service_ids = n_services;
    q.status = -1;
    q.limit = API_LIST_DEFAULT;
    char v[128];
    bool found;
    if (!api_param(c, "status", v, sizeof v, &found, out)) {
        return;
    }
    if (found && (q.status = jobstore_status_parse(v)) < 0) {
        api_bad_param(out, "status", v,
                      "INCOMPLETE, QUEUED, PROCESSING, FINISHED, FAILED or "
                      "CANCELLED");
        return;
    }
    static const char *const bounds[] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        if (!api_param(c, bounds[i], v, sizeof v, &found, out)) {
            return;
        }
        if (found && !server_parse_time(v, i == 0 ? &q.since : &q.until)) {
            api_bad_param(out, bounds[i], v,
                          "a UTC time: \"YYYY-MM-DD HH:MM:SS\", "
                          "\"YYYY-MM-DDTHH:MM:SSZ\" or seconds since 1970");
            return;
        }
    }
    if (!api_param(c, "limit", v, sizeof v, &found, out)) {
        return;
    }
    if (found) {
        char *end;
        long n = strtol(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || n < 1 || n > API_LIST_MAX) {
            api_bad_param(out, "limit", v, "a whole number from 1 to 200");
            return;
        }
        q.limit = (int)n;
    }
    if (!api_param(c, "cursor", v, sizeof v, &found, out)) {
        return;
    }
    if (found) {
        /* "CREATED.ID", as next_cursor gives it. */
        char *dot = strchr(v, '.');
        size_t idlen = dot != NULL ? strlen(dot + 1) : 0;
        if (dot == NULL || dot == v || idlen == 0 || idlen > JOBSTORE_ID_LEN ||
            strspn(v, "0123456789") != (size_t)(dot - v) ||
            strspn(dot + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                            "xyz0123456789-_") != idlen) {
            api_bad_param(out, "cursor", v,
                          "the next_cursor of a previous page");
            return;
        }
        q.after_created = strtoll(v, NULL, 10);
        memcpy(q.after_id, dot + 1, idlen + 1);
    }
    jobstore_process *ps = NULL;
    size_t n = 0;
    kiln_error err;
    err_clear(&err);
    /* One more than asked: whether a next page exists. */
    q.limit++;
    if (jobstore_list(s->store, &q, &ps, &n, &err) != KILN_OK) {
        api_store_failed(out, &err);
        return;
    }
    q.limit--;
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "processes");
    size_t shown = n < (size_t)q.limit ? n : (size_t)q.limit;
    for (size_t i = 0; i < shown; i++) {
        const jobstore_process *p = &ps[i];
        cJSON *po = cJSON_CreateObject();
        char when[32];
        cJSON_AddStringToObject(po, "process_id", p->id);
        cJSON_AddNumberToObject(po, "service_id", p->service_id);
        cJSON_AddStringToObject(po, "status", jobstore_status_name(p->status));
        cJSON_AddNumberToObject(po, "attempt", p->attempt);
        server_format_time(p->created_at, when);
        cJSON_AddStringToObject(po, "created_at", when);
        server_format_time(p->updated_at, when);
        cJSON_AddStringToObject(po, "updated_at", when);
        if (p->duration_ms >= 0) {
            cJSON_AddNumberToObject(po, "duration_ms", p->duration_ms);
        } else {
            cJSON_AddNullToObject(po, "duration_ms");
        }
        cJSON_AddNumberToObject(po, "jobs", p->n_jobs);
        if (p->error != NULL) {
            cJSON_AddStringToObject(po, "error", p->error);
        } else {
            cJSON_AddNullToObject(po, "error");
        }
        cJSON_AddItemToArray(arr, po);
    }
    if (n > shown && shown > 0) {
        char cursor[64];
        snprintf(cursor, sizeof cursor, "%lld.%s",
                 (long long)ps[shown - 1].created_at, ps[shown - 1].id);
        cJSON_AddStringToObject(o, "next_cursor", cursor);
    } else {
        cJSON_AddNullToObject(o, "next_cursor");
    }
    jobstore_processes_free(ps, n);
    api_reply_json(out, 200, o);
}

/* GET /stats?window=24h|30d. */
static void
api_stats(kiln_server *s, const kiln_call *c, const int *ids, size_t n_ids,
          kiln_reply *out)
{
    int services[64];
    size_t n_services = 0;
    if (!api_param_services(c, ids, n_ids, services, &n_services, out)) {
        return;
    }
    char v[16];
    bool found;
    if (!api_param(c, "window", v, sizeof v, &found, out)) {
        return;
    }
    if (found && strcmp(v, "24h") != 0 && strcmp(v, "30d") != 0) {
        api_bad_param(out, "window", v, "24h or 30d");
        return;
    }
    kiln_error err;
    err_clear(&err);
    cJSON *o = server_stats_json(s, found ? v : "24h", services, n_services,
                                 (int64_t)time(NULL), &err);
    if (o == NULL) {
        api_store_failed(out, &err);
        return;
    }
    api_reply_json(out, 200, o);
}

/* GET /status/{id}/postbacks: the postbacks owed for a process and what
 * came of each attempt (the URL is not shown: it may hold a secret). */
static void
api_postbacks(kiln_server *s, const char *id, const int *ids, size_t n_ids,
              kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(s, id, ids, n_ids, &p, out)) {
        return;
    }
    jobstore_process_clear(&p);
    jobstore_postback *pbs = NULL;
    size_t n = 0;
    kiln_error err;
    err_clear(&err);
    if (jobstore_postbacks_of(s->store, id, &pbs, &n, &err) != KILN_OK) {
        api_store_failed(out, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "postbacks");
    for (size_t i = 0; i < n; i++) {
        const jobstore_postback *pb = &pbs[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddNumberToObject(po, "id", (double)pb->id);
        cJSON_AddStringToObject(po, "state",
                                jobstore_postback_state_name(pb->state));
        cJSON_AddNumberToObject(po, "attempt", pb->attempt);
        if (pb->state == JOBSTORE_PB_PENDING) {
            char when[32];
            server_format_time(pb->next_at, when);
            cJSON_AddStringToObject(po, "next_at", when);
        } else {
            cJSON_AddNullToObject(po, "next_at");
        }
        cJSON_AddNumberToObject(po, "last_status", pb->last_status);
        if (pb->last_error != NULL) {
            cJSON_AddStringToObject(po, "last_error", pb->last_error);
        } else {
            cJSON_AddNullToObject(po, "last_error");
        }
        cJSON_AddItemToArray(arr, po);
    }
    jobstore_postbacks_free(pbs, n);
    api_reply_json(out, 200, o);
}

/* POST /request/{id}/jobs: validated by compiling the stored request with
 * the new jobs appended, so the errors read as they would at creation. */
static void
api_add_jobs(kiln_server *s, const kiln_call *c, const char *id, const int *ids,
             size_t n_ids, kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(s, id, ids, n_ids, &p, out)) {
        return;
    }
    cJSON *body = api_parse_body(c);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(body, "jobs");
    if (!cJSON_IsArray(jobs)) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_message(out, 400, "expected {\"jobs\": [...]}");
        return;
    }
    cJSON *merged = cJSON_Parse(p.request);
    cJSON *mjobs = cJSON_GetObjectItemCaseSensitive(merged, "jobs");
    if (cJSON_IsObject(merged) && mjobs == NULL) {
        mjobs = cJSON_AddArrayToObject(merged, "jobs");
    }
    if (!cJSON_IsArray(mjobs)) {
        /* The store holds what the compiler accepted; anything else is
         * our bug, not the client's. */
        cJSON_Delete(merged);
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_message(out, 500, "the stored request cannot be read");
        return;
    }
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        cJSON_AddItemToArray(mjobs, cJSON_Duplicate(j, true));
    }
    /* Replace fails when the member is absent (every process not created
     * with "process": false), which leaked the new item. */
    cJSON_DeleteItemFromObjectCaseSensitive(merged, "process");
    cJSON_AddTrueToObject(merged, "process");
    char *text = cJSON_PrintUnformatted(merged);
    cJSON_Delete(merged);
    if (text == NULL) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_message(out, 500, "out of memory");
        return;
    }
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    int rc = engine_compile(s->engine, text, strlen(text), &a, &g, &errs);
    cJSON_free(text);
    arena_free(a);
    if (rc != KILN_OK) {
        api_invalid(out, &errs);
    } else {
        kiln_error err;
        err_clear(&err);
        char *jtext = cJSON_PrintUnformatted(jobs);
        size_t n = 0;
        rc = jobstore_append_jobs(s->store, id, p.service_id, jtext,
                                  (size_t)s->config->limits.max_jobs, &n, &err);
        cJSON_free(jtext);
        if (rc == KILN_OK) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "status", "SUCCESS");
            cJSON_AddStringToObject(o, "process_id", id);
            cJSON_AddNumberToObject(o, "jobs", (double)n);
            api_reply_json(out, 200, o);
        } else if (rc == KILN_EPERM) {
            api_message(out, 409, "Process is not INCOMPLETE");
        } else if (rc == KILN_ELIMIT) {
            api_message(out, 400, "%s", err.message);
        } else {
            api_store_failed(out, &err);
        }
    }
    errlist_free(&errs);
    cJSON_Delete(body);
    jobstore_process_clear(&p);
}

/* PATCH /request/{id} {"process": true, "callback": ...}: queues an
 * INCOMPLETE process. */
static void
api_patch(kiln_server *s, const kiln_call *c, const char *id, const int *ids,
          size_t n_ids, kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(s, id, ids, n_ids, &p, out)) {
        return;
    }
    cJSON *body = api_parse_body(c);
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(body, "process");
    const cJSON *cb = cJSON_GetObjectItemCaseSensitive(body, "callback");
    if (!cJSON_IsTrue(proc) || (cb != NULL && !cJSON_IsString(cb))) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_message(out, 400,
                    "expected {\"process\": true} and an optional "
                    "\"callback\" URL");
        return;
    }
    /* A process with no jobs would only fail once queued. */
    cJSON *stored = cJSON_Parse(p.request);
    int n_jobs =
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(stored, "jobs"));
    cJSON_Delete(stored);
    if (n_jobs == 0) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_invalid_one(out, "jobs",
                        "the process has no jobs yet (add them with POST "
                        "/request/{id}/jobs, then queue it)");
        return;
    }
    kiln_error err;
    err_clear(&err);
    if (cb != NULL &&
        postback_check_url(s->engine, cb->valuestring, &err) != KILN_OK) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_invalid_one(out, "callback", err.message);
        return;
    }
    int rc = jobstore_set_processing(s->store, id, p.service_id,
                                     cb ? cb->valuestring : NULL, &err);
    jobstore_process_clear(&p);
    cJSON_Delete(body);
    if (rc == KILN_OK) {
        api_wake(s);
        api_status(s, id, ids, n_ids, out);
    } else if (rc == KILN_EPERM) {
        api_message(out, 409, "Process is not INCOMPLETE");
    } else {
        api_store_failed(out, &err);
    }
}

void
server_metrics(kiln_server *s, kiln_reply *out)
{
    memset(out, 0, sizeof *out);
    jobstore_counts n;
    kiln_error err;
    if (jobstore_counts_get(s->store, (int64_t)time(NULL), &n, &err) !=
        KILN_OK) {
        api_store_failed(out, &err);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        api_message(out, 503, "out of memory");
        return;
    }
    fputs("# HELP kiln_processes Processes in the job store by status.\n"
          "# TYPE kiln_processes gauge\n",
          f);
    for (int s = 0; s < JOBSTORE_N_STATUS; s++) {
        fprintf(f, "kiln_processes{status=\"%s\"} %lld\n",
                jobstore_status_name((jobstore_status)s),
                (long long)n.processes[s]);
    }
    fprintf(f,
            "# HELP kiln_queue_depth Queued processes ready to run.\n"
            "# TYPE kiln_queue_depth gauge\nkiln_queue_depth %lld\n"
            "# HELP kiln_postbacks Postbacks in the job store by state.\n"
            "# TYPE kiln_postbacks gauge\n",
            (long long)n.queue_ready);
    for (int s = 0; s < JOBSTORE_PB_N_STATE; s++) {
        fprintf(f, "kiln_postbacks{state=\"%s\"} %lld\n",
                jobstore_postback_state_name((jobstore_postback_state)s),
                (long long)n.postbacks[s]);
    }
    metrics_write(s->metrics, f);
    if (fclose(f) != 0 || buf == NULL) {
        free(buf);
        api_message(out, 503, "out of memory");
        return;
    }
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4";
    out->body = buf;
    out->body_len = len;
}

/* What a route does (api_dispatch). */
typedef enum api_op {
    API_HEALTH,
    API_CREATE,
    API_STATUS,
    API_POSTBACKS,
    API_RETRY,
    API_CANCEL,
    API_PROCESSES,
    API_STATS,
    API_ADD_JOBS,
    API_PATCH,
    API_METRICS,
    API_OPENAPI
} api_op;

/* The API's routes, as docs/openapi.yaml lists them (tests/exec/openapi.sh
 * reads this table and checks both agree): a method and a path template,
 * where "{id}" is one path segment of 1 to JOBSTORE_ID_LEN characters.
 * Every method of a path is here, so a path asked with another method is
 * a 405 naming them. GET /openapi.json is answered by the transport and
 * never reaches the dispatcher; its path is here for that 405 (and the
 * log's route). */
typedef struct api_route_def {
    const char *method;
    const char *path;
    api_op op;
} api_route_def;

static const api_route_def api_routes[] = {
    {"GET", "/health", API_HEALTH},
    {"POST", "/request", API_CREATE},
    {"GET", "/status/{id}", API_STATUS},
    {"GET", "/status/{id}/postbacks", API_POSTBACKS},
    {"POST", "/retry", API_RETRY},
    {"POST", "/cancel", API_CANCEL},
    {"GET", "/processes", API_PROCESSES},
    {"GET", "/stats", API_STATS},
    {"POST", "/request/{id}/jobs", API_ADD_JOBS},
    {"PATCH", "/request/{id}", API_PATCH},
    {"GET", "/metrics", API_METRICS},
    {"GET", "/openapi.json", API_OPENAPI},
};

/* True when path matches template tmpl; its "{id}" segment, if it has
 * one, is copied to id. */
static bool
api_match(const char *tmpl, const char *path, char id[JOBSTORE_ID_LEN + 1])
{
    const char *hole = strstr(tmpl, "{id}");
    if (hole == NULL) {
        return strcmp(tmpl, path) == 0;
    }
    size_t n_prefix = (size_t)(hole - tmpl);
    if (strncmp(path, tmpl, n_prefix) != 0) {
        return false;
    }
    const char *rest = path + n_prefix;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n > JOBSTORE_ID_LEN || strcmp(rest + n, hole + 4) != 0) {
        return false;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    return true;
}

/* The route of method m on path, or NULL. *tmpl gets the template of the
 * path (NULL: no route has it), id its "{id}", and allow the methods its
 * routes serve ("GET, POST"), whatever m is. No two templates match one
 * path, so whichever route matched filled id. */
static const api_route_def *
api_lookup(const char *m, const char *path, char id[JOBSTORE_ID_LEN + 1],
           const char **tmpl, char *allow, size_t size)
{
    const api_route_def *found = NULL;
    *tmpl = NULL;
    allow[0] = '\0';
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        const api_route_def *r = &api_routes[i];
        if (!api_match(r->path, path, id)) {
            continue;
        }
        size_t len = strlen(allow);
        snprintf(allow + len, size - len, "%s%s", len > 0 ? ", " : "",
                 r->method);
        *tmpl = r->path;
        if (found == NULL && strcmp(r->method, m) == 0) {
            found = r;
        }
    }
    return found;
}

/* GET /health: whether the store can take a new process, with the
 * version and how long this server has run (for a monitor or a human). */
static void
api_health(kiln_server *s, kiln_reply *out)
{
    kiln_error err;
    err_clear(&err);
    bool up = jobstore_ping(s->store, &err) == KILN_OK;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double uptime =
        (double)ts.tv_sec + ts.tv_nsec / 1e9 - metrics_started(s->metrics);
    char msg[1200];
    if (up) {
        snprintf(msg, sizeof msg, "ok");
    } else {
        snprintf(msg, sizeof msg, "the job store cannot take new processes: %s",
                 err.message);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddStringToObject(o, "version", KILN_VERSION_STRING);
    cJSON_AddNumberToObject(o, "uptime_s", floor(uptime));
    cJSON_AddStringToObject(o, "store", up ? "ok" : "down");
    api_reply_json(out, up ? 200 : 503, o);
}

/* Answers a call; *service gets the service it was for, when known (the
 * token's one service, or the one a new process names). */
static void
api_dispatch(kiln_server *s, const kiln_call *c, const struct sockaddr *peer,
             kiln_reply *out, int *service)
{
    const char *m = c->method ? c->method : "";
    const char *path = c->path ? c->path : "";
    char id[JOBSTORE_ID_LEN + 1];
    const char *tmpl;
    char allow[64];
    const api_route_def *r =
        api_lookup(m, path, id, &tmpl, allow, sizeof allow);
    /* A known path asked with a method it does not serve: 405 before the
     * token checks, as for the transport's own paths. Which methods a
     * path serves is no secret (GET /openapi.json tells), and a client
     * without a token learns its mistake rather than a 401. The
     * transport sends the Allow header. */
    if (r == NULL && tmpl != NULL) {
        char shown[40];
        err_quote(shown, sizeof shown, m);
        api_message(out, 405, "method %s is not allowed on %s (expected %s)",
                    shown, tmpl, allow);
        return;
    }
    if (r != NULL && r->op == API_HEALTH) {
        api_health(s, out);
        return;
    }
    /* An address that has spent its failed-authentication budget gets a
     * 429 before any token is compared, valid or not: were a valid token
     * let through, the answer (429 or not) would tell a guesser which
     * guess was right, and guessing would go on at full speed. */
    int wait = limiter_failed(s->limiter, peer, false);
    if (wait > 0) {
        log_event(KILN_LOG_WARN, "rate_limited",
                  (log_field[]){LOG_S("request_id", c->request_id),
                                LOG_S("limit", "failed authentications "
                                               "(address)"),
                                LOG_N("retry_after", wait)},
                  3);
        api_message(out, 429,
                    "too many failed authentications from this address; "
                    "try again in %d s",
                    wait);
        out->retry_after = wait;
        return;
    }
    int ids[64];
    const char *token = NULL;
    size_t token_len = 0;
    size_t n_ids = api_auth(s, c->authorization, ids, 64, &token, &token_len);
    if (n_ids == 0) {
        (void)limiter_failed(s->limiter, peer, true);
        api_message(out, 401, "Invalid Secret");
        return;
    }
    if (n_ids == 1) {
        *service = ids[0];
    }
    wait = limiter_token(s->limiter, token, token_len);
    if (wait > 0) {
        log_event(KILN_LOG_WARN, "rate_limited",
                  (log_field[]){LOG_S("request_id", c->request_id),
                                LOG_S("limit", "rate_limit (token)"),
                                LOG_N("retry_after", wait)},
                  3);
        api_message(out, 429, "too many requests for this token");
        out->retry_after = wait;
        return;
    }
    if (r == NULL) {
        api_message(out, 404, "no endpoint %s %s", m, path);
        return;
    }
    switch (r->op) {
    case API_CREATE:
        api_create(s, c, ids, n_ids, out, service);
        break;
    case API_STATUS:
        api_status(s, id, ids, n_ids, out);
        break;
    case API_POSTBACKS:
        api_postbacks(s, id, ids, n_ids, out);
        break;
    case API_RETRY:
        api_each_id(s, c, ids, n_ids, api_retry_one, out);
        break;
    case API_CANCEL:
        api_each_id(s, c, ids, n_ids, api_cancel_one, out);
        break;
    case API_PROCESSES:
        api_processes(s, c, ids, n_ids, out);
        break;
    case API_STATS:
        api_stats(s, c, ids, n_ids, out);
        break;
    case API_ADD_JOBS:
        api_add_jobs(s, c, id, ids, n_ids, out);
        break;
    case API_PATCH:
        api_patch(s, c, id, ids, n_ids, out);
        break;
    case API_METRICS:
        server_metrics(s, out);
        break;
    case API_HEALTH:  /* answered before the token checks */
    case API_OPENAPI: /* the transport's own: it never asks */
        api_message(out, 404, "no endpoint %s %s", m, path);
        break;
    }
}

/* The route of a call for the log and the metrics: its path template
 * (ids as {id}), so a line never carries more of the client's text than
 * the method; "(unknown)" for a path no route has. */
static const char *
api_route(const char *path)
{
    char id[JOBSTORE_ID_LEN + 1];
    const char *tmpl;
    char allow[64];
    (void)api_lookup("", path, id, &tmpl, allow, sizeof allow);
    return tmpl != NULL ? tmpl : "(unknown)";
}

void
server_call(kiln_server *s, const kiln_call *c, const struct sockaddr *peer,
            kiln_reply *out)
{
    memset(out, 0, sizeof *out);
    double t0 = clock_ms();
    int service = -1;
    api_dispatch(s, c, peer, out, &service);
    const char *m = c->method != NULL ? c->method : "";
    const char *route = api_route(c->path != NULL ? c->path : "");
    bool health = strcmp(route, "/health") == 0;
    /* Health checks come every few seconds: at debug level only, unless
     * they fail. */
    kiln_log_level level = out->status >= 500 ? KILN_LOG_WARN
                           : health           ? KILN_LOG_DEBUG
                                              : KILN_LOG_INFO;
    log_field f[] = {LOG_S("request_id", c->request_id),
                     LOG_S("method", m),
                     LOG_S("route", route),
                     LOG_N("status", out->status),
                     LOG_N("bytes", out->body_len),
                     LOG_N("ms", round((clock_ms() - t0) * 10) / 10),
                     service >= 0 ? LOG_N("service", service)
                                  : LOG_S("service", NULL)};
    log_event(level, "request", f, sizeof f / sizeof f[0]);
    metrics_http(s->metrics, route, out->status, (clock_ms() - t0) / 1e3);
}
