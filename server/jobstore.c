/*
 * The driver-independent half of the job store: process ids, status names,
 * the postback retry schedule, freeing what the store hands out, and the
 * dispatch of every operation through the driver vtable (jobstore.h).
 */
#include "jobstore.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../core/kiln.h"

static const char *const js_status_names[JOBSTORE_N_STATUS] = {
    "INCOMPLETE", "QUEUED", "PROCESSING", "FINISHED", "FAILED", "CANCELLED"};

static const char *const js_pb_state_names[JOBSTORE_PB_N_STATE] = {
    "PENDING", "DELIVERED", "GIVEN_UP"};

/* 64 symbols: a random byte masked to 6 bits picks one without bias. */
static const char js_id_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/* api.md: retry failed postbacks after 1, 3, 15 and 600 s, then give up. */
static const int js_postback_delays[] = {1, 3, 15, 600};

int
jobstore_new_id(char out[JOBSTORE_ID_LEN + 1], kiln_error *err)
{
    unsigned char buf[JOBSTORE_ID_LEN];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = getrandom(buf + got, sizeof buf - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return err_set(err, KILN_EIO, "getrandom: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < JOBSTORE_ID_LEN; i++) {
        out[i] = js_id_alphabet[buf[i] & 63];
    }
    out[JOBSTORE_ID_LEN] = '\0';
    return KILN_OK;
}

const char *
jobstore_status_name(jobstore_status st)
{
    if ((int)st < 0 || st >= JOBSTORE_N_STATUS) {
        return "?";
    }
    return js_status_names[st];
}

int
jobstore_status_parse(const char *name)
{
    for (int i = 0; i < JOBSTORE_N_STATUS; i++) {
        if (name != NULL && strcmp(name, js_status_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

bool
jobstore_status_ended(jobstore_status st)
{
    return st == JOBSTORE_FINISHED || st == JOBSTORE_FAILED ||
           st == JOBSTORE_CANCELLED;
}

const char *
jobstore_postback_state_name(jobstore_postback_state st)
{
    if ((int)st < 0 || st >= JOBSTORE_PB_N_STATE) {
        return "?";
    }
    return js_pb_state_names[st];
}

int
jobstore_postback_state_parse(const char *name)
{
    for (int i = 0; i < JOBSTORE_PB_N_STATE; i++) {
        if (name != NULL && strcmp(name, js_pb_state_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int
jobstore_postback_delay(int n_failed)
{
    int n = (int)(sizeof js_postback_delays / sizeof js_postback_delays[0]);
    if (n_failed < 1 || n_failed > n) {
        return -1;
    }
    return js_postback_delays[n_failed - 1];
}

void
jobstore_request_flags(const char *request, bool *notify_status,
                       bool *retry_postback)
{
    /* cJSON, as the server read them before they were columns: it is more
     * lenient than PostgreSQL's jsonb or SQLite's json functions (text after
     * the object, for one), and it takes the first of repeated keys, so a store
     * keeps the meaning its requests had. */
    cJSON *req = request != NULL ? cJSON_Parse(request) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "notify_status");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(req, "retry_postback");
    *notify_status = cJSON_IsTrue(n);
    *retry_postback = !cJSON_IsFalse(r);
    cJSON_Delete(req);
}

int
jobstore_request_n_jobs(const char *request)
{
    /* cJSON for the reasons jobstore_request_flags gives. */
    cJSON *req = request != NULL ? cJSON_Parse(request) : NULL;
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(req, "jobs");
    int n = cJSON_IsObject(req) && cJSON_IsArray(jobs)
                ? cJSON_GetArraySize(jobs)
                : 0;
    cJSON_Delete(req);
    return n;
}

void *
jobstore_grow(void *items, size_t *cap, size_t n_wanted, size_t size)
{
    if (n_wanted <= *cap) {
        return items;
    }
    size_t ncap = *cap > 0 ? *cap : 8;
    while (ncap < n_wanted && ncap <= SIZE_MAX / 2) {
        ncap *= 2;
    }
    if (ncap < n_wanted || ncap > SIZE_MAX / size) {
        return NULL;
    }
    void *grown = realloc(items, ncap * size);
    if (grown != NULL) {
        *cap = ncap;
    }
    return grown;
}

void
jobstore_query_bounds(const jobstore_query *q, int64_t *since,
                      int64_t *before_created, const char **before_id)
{
    *since = q->since != 0 ? q->since : INT64_MIN;
    /* (until, "") excludes created_at == until whatever the id: no id
     * sorts before "". */
    *before_created = q->until != 0 ? q->until : INT64_MAX;
    *before_id = "";
    /* A cursor older than that bound is the tighter one; any id sorts
     * after "", so only its created_at decides. */
    if (q->after_id[0] != '\0' && q->after_created < *before_created) {
        *before_created = q->after_created;
        *before_id = q->after_id;
    }
}

void
jobstore_process_clear(jobstore_process *p)
{
    if (p == NULL) {
        return;
    }
    free(p->request);
    free(p->callback);
    free(p->result);
    free(p->error);
    free(p->idem_key);
    free(p->idem_hash);
    memset(p, 0, sizeof *p);
}

void
jobstore_processes_free(jobstore_process *ps, size_t n)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        jobstore_process_clear(&ps[i]);
    }
    free(ps);
}

void
jobstore_postback_clear(jobstore_postback *pb)
{
    if (pb == NULL) {
        return;
    }
    free(pb->url);
    free(pb->body);
    free(pb->last_error);
    memset(pb, 0, sizeof *pb);
}

void
jobstore_postbacks_free(jobstore_postback *pbs, size_t n)
{
    if (pbs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        jobstore_postback_clear(&pbs[i]);
    }
    free(pbs);
}

/* ---------------------------------------------------------- dispatch */

int
jobstore_open_driver(const jobstore_driver *drv, const char *target,
                     jobstore **out, kiln_error *err)
{
    *out = NULL;
    if (target == NULL || target[0] == '\0') {
        return err_set(err, KILN_EINVAL, "job store %s: no %s configured",
                       drv->name,
                       strcmp(drv->name, "sqlite") == 0 ? "path" : "dsn");
    }
    jobstore *s = NULL;
    int rc = drv->open(target, &s, err);
    if (rc != KILN_OK) {
        return rc;
    }
    s->drv = drv;
    *out = s;
    return KILN_OK;
}

void
jobstore_set_notify(jobstore *s, jobstore_notify_fn fn, void *arg)
{
    s->notify = fn;
    s->notify_arg = arg;
}

int
jobstore_open(const char *driver, const char *target, jobstore **out,
              kiln_error *err)
{
    *out = NULL;
    if (driver == NULL || strcmp(driver, "sqlite") == 0) {
        return jobstore_open_driver(&jobstore_sqlite_driver, target, out, err);
    }
    if (strcmp(driver, "postgres") == 0) {
        return jobstore_open_driver(&jobstore_pg_driver, target, out, err);
    }
    return err_set(err, KILN_ENOTFOUND,
                   "unknown job store driver \"%s\" (expected sqlite or "
                   "postgres)",
                   driver);
}

void
jobstore_close(jobstore *s)
{
    if (s != NULL) {
        s->drv->close(s);
    }
}

int
jobstore_ping(jobstore *s, kiln_error *err)
{
    return s->drv->ping(s, err);
}

int
jobstore_create(jobstore *s, const jobstore_process *p, kiln_error *err)
{
    if (p->status != JOBSTORE_QUEUED && p->status != JOBSTORE_INCOMPLETE) {
        return err_set(err, KILN_EINVAL,
                       "new process status \"%s\" (expected QUEUED or "
                       "INCOMPLETE)",
                       jobstore_status_name(p->status));
    }
    if (p->request == NULL || strlen(p->id) != JOBSTORE_ID_LEN ||
        p->n_jobs < 0) {
        return err_set(err, KILN_EINVAL,
                       "new process needs a %d-character id, a request and "
                       "a number of jobs",
                       JOBSTORE_ID_LEN);
    }
    return s->drv->create(s, p, err);
}

int
jobstore_get(jobstore *s, const char *id, int service_id, jobstore_process *out,
             kiln_error *err)
{
    memset(out, 0, sizeof *out);
    return s->drv->get(s, id, service_id, out, err);
}

int
jobstore_find_idempotent(jobstore *s, int service_id, const char *key,
                         jobstore_process *out, kiln_error *err)
{
    memset(out, 0, sizeof *out);
    return s->drv->find_idempotent(s, service_id, key, out, err);
}

/* KILN_OK when the driver has the operation (`has`), else KILN_EABI
 * saying what it cannot do. */
static int
js_driver_can(jobstore *s, bool has, const char *what, kiln_error *err)
{
    if (has) {
        return KILN_OK;
    }
    return err_set(err, KILN_EABI, "job store driver \"%s\" cannot %s",
                   s->drv->name, what);
}

/* KILN_OK for a lease a driver can add to a timestamp, else KILN_EINVAL
 * naming the call. */
static int
js_check_lease(const char *what, int lease_seconds, kiln_error *err)
{
    if (lease_seconds <= 0) {
        return err_set(err, KILN_EINVAL,
                       "%s: lease of %d seconds (expected at least 1)", what,
                       lease_seconds);
    }
    return KILN_OK;
}

int
jobstore_claim(jobstore *s, int64_t now, int lease_seconds,
               jobstore_process *out, kiln_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = js_check_lease("claim", lease_seconds, err);
    if (rc != KILN_OK) {
        return rc;
    }
    return s->drv->claim(s, now, lease_seconds, out, err);
}

int
jobstore_renew(jobstore *s, const char *id, int64_t token, int64_t now,
               int lease_seconds, kiln_error *err)
{
    int rc = js_check_lease("renew", lease_seconds, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (s->drv->renew == NULL) {
        return err_set(err, KILN_EABI,
                       "job store driver \"%s\" cannot renew leases",
                       s->drv->name);
    }
    return s->drv->renew(s, id, token, now, lease_seconds, err);
}

int
jobstore_complete(jobstore *s, const char *id, int64_t token,
                  jobstore_status status, const char *result_json,
                  const char *error, kiln_error *err)
{
    if (status != JOBSTORE_FINISHED && status != JOBSTORE_FAILED) {
        return err_set(err, KILN_EINVAL,
                       "final status \"%s\" (expected FINISHED or FAILED)",
                       jobstore_status_name(status));
    }
    /* One operation in the drivers that have both; a driver from before
     * complete_timed keeps its own. */
    if (s->drv->complete_timed != NULL) {
        return s->drv->complete_timed(s, id, token, status, result_json, error,
                                      -1, err);
    }
    return s->drv->complete(s, id, token, status, result_json, error, err);
}

int
jobstore_complete_timed(jobstore *s, const char *id, int64_t token,
                        jobstore_status status, const char *result_json,
                        const char *error, double duration_ms, kiln_error *err)
{
    if (!jobstore_status_ended(status)) {
        return err_set(err, KILN_EINVAL,
                       "final status \"%s\" (expected FINISHED, FAILED or "
                       "CANCELLED)",
                       jobstore_status_name(status));
    }
    /* -1 is none; NaN, infinities and other negatives are a caller's
     * mistake, not a time. */
    if (!(duration_ms >= 0 && isfinite(duration_ms)) && duration_ms != -1) {
        return err_set(err, KILN_EINVAL,
                       "processing time %g ms (expected 0 or more, or -1)",
                       duration_ms);
    }
    int rc = js_driver_can(s, s->drv->complete_timed != NULL,
                           "record processing times", err);
    if (rc != KILN_OK) {
        return rc;
    }
    return s->drv->complete_timed(s, id, token, status, result_json, error,
                                  duration_ms, err);
}

int
jobstore_requeue(jobstore *s, const char *id, int64_t token, int64_t not_before,
                 const char *error, kiln_error *err)
{
    return s->drv->requeue(s, id, token, not_before, error, err);
}

int
jobstore_interrupt(jobstore *s, const char *id, int64_t token,
                   const char *error, kiln_error *err)
{
    if (s->drv->interrupt == NULL) {
        return s->drv->requeue(s, id, token, 0, error, err);
    }
    return s->drv->interrupt(s, id, token, error, err);
}

int
jobstore_recover(jobstore *s, int *n_requeued, kiln_error *err)
{
    int n = 0;
    int rc = s->drv->recover(s, &n, err);
    if (n_requeued != NULL) {
        *n_requeued = n;
    }
    return rc;
}

int
jobstore_prune(jobstore *s, int64_t before, int max, int *n_pruned,
               kiln_error *err)
{
    int n = 0;
    int rc;
    if (max < 1) {
        rc = err_set(err, KILN_EINVAL, "prune: max %d (expected 1 or more)",
                     max);
    } else if (s->drv->prune == NULL) {
        rc = err_set(err, KILN_EABI,
                     "job store driver \"%s\" cannot prune old processes",
                     s->drv->name);
    } else {
        rc = s->drv->prune(s, before, max, &n, err);
    }
    if (n_pruned != NULL) {
        *n_pruned = rc == KILN_OK ? n : 0;
    }
    return rc;
}

int
jobstore_wait_work(jobstore *s, int timeout_ms, kiln_error *err)
{
    if (s->drv->wait_work == NULL) {
        return err_set(err, KILN_EABI,
                       "job store driver \"%s\" cannot tell when work is "
                       "queued",
                       s->drv->name);
    }
    return s->drv->wait_work(s, timeout_ms < 0 ? 0 : timeout_ms, err);
}

int
jobstore_rate(jobstore *s, const char *key, double rate, double burst, int cost,
              int *wait, kiln_error *err)
{
    if (s->drv->rate == NULL) {
        return err_set(err, KILN_EABI,
                       "job store driver \"%s\" does not count rate limits",
                       s->drv->name);
    }
    if (key == NULL || strlen(key) > 80 || !(rate > 0) || !(burst >= 1) ||
        (cost != 0 && cost != 1)) {
        return err_set(err, KILN_EINVAL, "job store: rate: bad argument");
    }
    return s->drv->rate(s, key, rate, burst, cost, wait, err);
}

int
jobstore_retry(jobstore *s, const char *id, int service_id, int *attempt,
               jobstore_status *was, kiln_error *err)
{
    int a = 0;
    jobstore_status st = JOBSTORE_N_STATUS;
    int rc = s->drv->retry(s, id, service_id, &a, &st, err);
    if (attempt != NULL) {
        *attempt = a;
    }
    if (was != NULL) {
        *was = st;
    }
    return rc;
}

int
jobstore_append_jobs(jobstore *s, const char *id, int service_id,
                     const char *jobs_json, size_t max_jobs, size_t *n_jobs,
                     kiln_error *err)
{
    size_t n = 0;
    int rc =
        s->drv->append_jobs(s, id, service_id, jobs_json, max_jobs, &n, err);
    if (n_jobs != NULL) {
        *n_jobs = n;
    }
    return rc;
}

int
jobstore_set_processing(jobstore *s, const char *id, int service_id,
                        const char *callback, kiln_error *err)
{
    return s->drv->set_processing(s, id, service_id, callback, err);
}

/* KILN_OK for a list of at least one service id, else KILN_EINVAL naming
 * the call. */
static int
js_check_services(const char *what, const int *ids, size_t n, kiln_error *err)
{
    if (ids == NULL || n == 0) {
        return err_set(err, KILN_EINVAL, "%s: no service given", what);
    }
    return KILN_OK;
}

int
jobstore_list(jobstore *s, const jobstore_query *q, jobstore_process **out,
              size_t *n_out, kiln_error *err)
{
    *out = NULL;
    *n_out = 0;
    int rc = js_check_services("list", q->service_ids, q->n_service_ids, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (q->limit < 1 || q->limit > 1000) {
        return err_set(err, KILN_EINVAL, "list: limit %d (expected 1 to 1000)",
                       q->limit);
    }
    if (q->status < -1 || q->status >= JOBSTORE_N_STATUS) {
        return err_set(err, KILN_EINVAL, "list: unknown status %d", q->status);
    }
    if (memchr(q->after_id, '\0', sizeof q->after_id) == NULL) {
        return err_set(err, KILN_EINVAL, "list: cursor id too long");
    }
    rc = js_driver_can(s, s->drv->list != NULL, "list processes", err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = s->drv->list(s, q, out, n_out, err);
    if (rc != KILN_OK) {
        jobstore_processes_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

int
jobstore_cancel(jobstore *s, const char *id, int service_id,
                jobstore_status *was, kiln_error *err)
{
    jobstore_status st = JOBSTORE_N_STATUS;
    int rc = id != NULL ? KILN_OK
                        : err_set(err, KILN_EINVAL, "cancel: no process id");
    if (rc == KILN_OK) {
        rc = js_driver_can(s, s->drv->cancel != NULL, "cancel processes", err);
    }
    if (rc == KILN_OK) {
        rc = s->drv->cancel(s, id, service_id, &st, err);
    }
    if (was != NULL) {
        *was = st;
    }
    return rc;
}

int
jobstore_cancel_requested(jobstore *s, const char *const *ids, size_t n,
                          bool *out, kiln_error *err)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = false;
    }
    if (n > JOBSTORE_MAX_IDS) {
        return err_set(err, KILN_EINVAL,
                       "cancel_requested: %zu ids (at most %d at once)", n,
                       JOBSTORE_MAX_IDS);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL) {
            return err_set(err, KILN_EINVAL, "cancel_requested: no id");
        }
    }
    int rc = js_driver_can(s, s->drv->cancel_requested != NULL,
                           "tell which runs to cancel", err);
    if (rc != KILN_OK || n == 0) {
        return rc;
    }
    return s->drv->cancel_requested(s, ids, n, out, err);
}

int
jobstore_list_ended(jobstore *s, const int *service_ids, size_t n_service_ids,
                    int64_t since, int64_t until, jobstore_ended_process **out,
                    size_t *n_out, kiln_error *err)
{
    *out = NULL;
    *n_out = 0;
    int rc = js_check_services("list_ended", service_ids, n_service_ids, err);
    if (rc == KILN_OK) {
        rc = js_driver_can(s, s->drv->ended != NULL, "read ended processes",
                           err);
    }
    if (rc == KILN_OK && since < until) {
        rc = s->drv->ended(s, service_ids, n_service_ids, since, until, out,
                           n_out, err);
    }
    if (rc != KILN_OK) {
        free(*out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

int
jobstore_postbacks_of(jobstore *s, const char *process_id,
                      jobstore_postback **out, size_t *n_out, kiln_error *err)
{
    *out = NULL;
    *n_out = 0;
    int rc = process_id != NULL
                 ? KILN_OK
                 : err_set(err, KILN_EINVAL, "postbacks_of: no process id");
    if (rc == KILN_OK) {
        rc = js_driver_can(s, s->drv->postbacks_of != NULL,
                           "list a process's postbacks", err);
    }
    if (rc == KILN_OK) {
        rc = s->drv->postbacks_of(s, process_id, out, n_out, err);
    }
    if (rc != KILN_OK) {
        jobstore_postbacks_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

int
jobstore_postback_enqueue(jobstore *s, const jobstore_postback *pb, int64_t *id,
                          kiln_error *err)
{
    if (pb->url == NULL || pb->body == NULL ||
        strlen(pb->process_id) != JOBSTORE_ID_LEN) {
        return err_set(err, KILN_EINVAL,
                       "postback needs a process id, a url and a body");
    }
    int64_t v = 0;
    int rc = s->drv->postback_enqueue(s, pb, &v, err);
    if (id != NULL) {
        *id = v;
    }
    return rc;
}

int
jobstore_postback_due(jobstore *s, int64_t now, int lease_seconds, size_t max,
                      jobstore_postback **out, size_t *n_out, kiln_error *err)
{
    *out = NULL;
    *n_out = 0;
    int rc = js_check_lease("postback_due", lease_seconds, err);
    if (rc != KILN_OK || max == 0) {
        return rc;
    }
    return s->drv->postback_due(s, now, lease_seconds, max, out, n_out, err);
}

int
jobstore_postback_record(jobstore *s, int64_t id, bool delivered,
                         int http_status, const char *error, int64_t now,
                         bool retry, jobstore_postback_state *state,
                         kiln_error *err)
{
    jobstore_postback_state st = JOBSTORE_PB_PENDING;
    int rc = s->drv->postback_record(s, id, delivered, http_status, error, now,
                                     retry, &st, err);
    if (state != NULL) {
        *state = st;
    }
    return rc;
}

int
jobstore_postback_get(jobstore *s, int64_t id, jobstore_postback *out,
                      kiln_error *err)
{
    memset(out, 0, sizeof *out);
    return s->drv->postback_get(s, id, out, err);
}

int
jobstore_counts_get(jobstore *s, int64_t now, jobstore_counts *out,
                    kiln_error *err)
{
    memset(out, 0, sizeof *out);
    return s->drv->counts(s, now, out, err);
}
