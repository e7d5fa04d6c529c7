/*
 * The HTTP API of docs/api.md, without the HTTP: routing, bearer-token
 * authentication (constant time), the 401/403/404 rules, validation
 * answers with every error and its path, Idempotency-Key, per-token rate
 * limits, retry, dynamic processes, health and metrics. A transport plugin
 * (api-http) turns each request into a kiln_call and sends the kiln_reply
 * back; keeping the semantics here makes them testable without sockets and
 * shared by any transport.
 */
#include "kiln.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobstore.h"
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
    api_message(out, 503, "%s%s", api_store_prefix(err), err->message);
}

void
api_reply_free(kiln_reply *r)
{
    if (r != NULL) {
        cJSON_free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
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
api_auth(const kiln_engine *e, const char *authorization, int *ids, size_t max,
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
    for (size_t i = 0; i < e->config->n_services; i++) {
        const config_service *s = &e->config->services[i];
        bool match = false;
        for (size_t k = 0; k < s->n_tokens; k++) {
            match |= api_token_equal(t, len, s->tokens[k]);
        }
        if (match && n < max) {
            ids[n++] = s->id;
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

/* --------------------------------------------------------- rate limits */

/* One token bucket per bearer token, refilled at rate_limit.per_second up
 * to rate_limit.burst. Buckets are keyed by the token itself (an open
 * hash table that grows), so two tokens never share or reset one
 * another's bucket; only tokens that authenticated get one, so the
 * configuration bounds the table. */
typedef struct api_bucket {
    char *token; /* NULL: an empty slot */
    size_t len;
    uint64_t hash;
    double tokens;
    double at;
} api_bucket;

/* Failed authentications, one bucket per client address (an IPv4
 * address, an IPv6 /64: one host usually holds a whole /64), refilled at
 * rate_limit.failed_auth_per_second up to failed_auth_burst. Keyed by the
 * address itself, never by a hash slot. Any address may fail, so the
 * table is bounded: a bucket that has refilled is the same as none and
 * is dropped whenever the table would grow; when API_FAILED_MAX
 * addresses are all still short of their budget, a new address is
 * refused as if its own were spent (a flood from that many addresses is
 * an attack, and refusing keeps guessing slow). */
#define API_FAILED_MAX 16384
#define API_ADDR_LEN 9 /* family (4 or 6), then 4 or 8 address bytes */

typedef struct api_addr_bucket {
    unsigned char key[API_ADDR_LEN]; /* key[0] == 0: an empty slot */
    double tokens;
    double at;
} api_addr_bucket;

struct api_limiter {
    pthread_mutex_t mu;
    api_bucket *slots;
    size_t cap, used; /* cap a power of two; used at most cap / 2 */
    api_addr_bucket *failed;
    size_t failed_cap, failed_used; /* likewise */
    double failed_full_at; /* when a rebuild last found it full, or 0 */
    uint64_t seed;         /* so no one picks colliding addresses */
};

struct api_limiter *
api_limiter_new(void)
{
    struct api_limiter *l = calloc(1, sizeof *l);
    if (l != NULL) {
        pthread_mutex_init(&l->mu, NULL);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        l->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
                  (uint64_t)(uintptr_t)l;
    }
    return l;
}

void
api_limiter_free(struct api_limiter *l)
{
    if (l != NULL) {
        for (size_t i = 0; i < l->cap; i++) {
            free(l->slots[i].token);
        }
        free(l->slots);
        free(l->failed);
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}

/* The slot of `token`: its bucket, or the empty slot where it belongs. */
static api_bucket *
api_slot(api_bucket *slots, size_t cap, const char *token, size_t len,
         uint64_t hash)
{
    for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        api_bucket *b = &slots[i];
        if (b->token == NULL || (b->hash == hash && b->len == len &&
                                 memcmp(b->token, token, len) == 0)) {
            return b;
        }
    }
}

/* The bucket of `token`, made full when new; NULL when out of memory. */
static api_bucket *
api_bucket_of(struct api_limiter *l, const char *token, size_t len,
              uint64_t hash, double burst, double now)
{
    if (l->cap > 0) {
        api_bucket *b = api_slot(l->slots, l->cap, token, len, hash);
        if (b->token != NULL) {
            return b;
        }
    }
    if (2 * (l->used + 1) > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        api_bucket *slots = calloc(cap, sizeof *slots);
        if (slots == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < l->cap; i++) {
            if (l->slots[i].token != NULL) {
                *api_slot(slots, cap, l->slots[i].token, l->slots[i].len,
                          l->slots[i].hash) = l->slots[i];
            }
        }
        free(l->slots);
        l->slots = slots;
        l->cap = cap;
    }
    api_bucket *b = api_slot(l->slots, l->cap, token, len, hash);
    b->token = malloc(len + 1);
    if (b->token == NULL) {
        return NULL;
    }
    memcpy(b->token, token, len);
    b->token[len] = '\0';
    b->len = len;
    b->hash = hash;
    b->tokens = burst;
    b->at = now;
    l->used++;
    return b;
}

/* 0 when allowed, else the seconds to wait. */
static int
api_rate(kiln_engine *e, const char *token, size_t len)
{
    struct api_limiter *l = e->limiter;
    if (l == NULL || e->config->rate_per_second <= 0) {
        return 0;
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)token[i]) * 1099511628211ull;
    }
    double rate = e->config->rate_per_second, burst = e->config->rate_burst;
    double now = clock_ms() / 1e3;
    pthread_mutex_lock(&l->mu);
    api_bucket *b = api_bucket_of(l, token, len, h, burst, now);
    int wait = 0;
    if (b == NULL) {
        wait = 1; /* out of memory: refuse rather than not limit */
    } else {
        b->tokens = fmin(burst, b->tokens + (now - b->at) * rate);
        b->at = now;
        if (b->tokens >= 1) {
            b->tokens -= 1;
        } else {
            wait = (int)ceil((1 - b->tokens) / rate);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return wait;
}

/* The key of a client address; false for a family without one. An
 * IPv4-mapped IPv6 address is its IPv4 address. */
static bool
api_addr_key(const struct sockaddr *peer, unsigned char key[API_ADDR_LEN])
{
    memset(key, 0, API_ADDR_LEN);
    if (peer == NULL) {
        return false;
    }
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
        key[0] = 4;
        memcpy(key + 1, &a->sin_addr, 4);
        return true;
    }
    if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            key[0] = 4;
            memcpy(key + 1, a->sin6_addr.s6_addr + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a->sin6_addr.s6_addr, 8);
        }
        return true;
    }
    return false;
}

static api_addr_bucket *
api_addr_slot(api_addr_bucket *slots, size_t cap, uint64_t seed,
              const unsigned char key[API_ADDR_LEN])
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < API_ADDR_LEN; i++) {
        h = (h ^ key[i]) * 1099511628211ull;
    }
    h ^= h >> 29;
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (slots[i].key[0] == 0 ||
            memcmp(slots[i].key, key, API_ADDR_LEN) == 0) {
            return &slots[i];
        }
    }
}

/* Makes room for one more address: a new table holding only the buckets
 * not yet refilled, at most a quarter full (so the next rebuild is at
 * least as many inserts away as this one costs). -1 when API_FAILED_MAX
 * buckets are still live or memory is short. */
static int
api_failed_rebuild(struct api_limiter *l, double rate, double burst, double now)
{
    size_t live = 0;
    for (size_t i = 0; i < l->failed_cap; i++) {
        const api_addr_bucket *b = &l->failed[i];
        live += b->key[0] != 0 && b->tokens + (now - b->at) * rate < burst;
    }
    if (live >= API_FAILED_MAX) {
        l->failed_full_at = now;
        return -1;
    }
    size_t cap = 64;
    while (cap < 4 * (live + 1)) {
        cap *= 2;
    }
    api_addr_bucket *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < l->failed_cap; i++) {
        const api_addr_bucket *b = &l->failed[i];
        if (b->key[0] != 0 && b->tokens + (now - b->at) * rate < burst) {
            *api_addr_slot(slots, cap, l->seed, b->key) = *b;
        }
    }
    free(l->failed);
    l->failed = slots;
    l->failed_cap = cap;
    l->failed_used = live;
    l->failed_full_at = 0;
    return 0;
}

/* Failed authentications from `peer`: with `spend`, counts one. Returns
 * 0 when the address still has budget (before this failure), else the
 * seconds until it has one again. An address without a key (unknown
 * peer) is never limited. */
static int
api_failed(kiln_engine *e, const struct sockaddr *peer, bool spend)
{
    struct api_limiter *l = e->limiter;
    unsigned char key[API_ADDR_LEN];
    if (l == NULL || !api_addr_key(peer, key)) {
        return 0;
    }
    double rate = e->config->failed_auth_per_second;
    double burst = e->config->failed_auth_burst;
    double now = clock_ms() / 1e3;
    int wait = 0;
    pthread_mutex_lock(&l->mu);
    api_addr_bucket *b = NULL;
    if (l->failed_cap > 0) {
        b = api_addr_slot(l->failed, l->failed_cap, l->seed, key);
    }
    if (b == NULL || b->key[0] == 0) {
        /* No bucket is a full one, unless the table is full: then every
         * new address is refused, and a rebuild (it costs the whole
         * table) is tried again once a second at most. */
        if (l->failed_full_at > 0 && now - l->failed_full_at < 1) {
            wait = 1;
            goto done;
        }
        if (!spend && l->failed_full_at == 0) {
            goto done;
        }
        if (2 * (l->failed_used + 1) > l->failed_cap &&
            api_failed_rebuild(l, rate, burst, now) != 0) {
            wait = 1;
            goto done;
        }
        if (!spend) {
            goto done;
        }
        b = api_addr_slot(l->failed, l->failed_cap, l->seed, key);
        memcpy(b->key, key, API_ADDR_LEN);
        b->tokens = burst;
        b->at = now;
        l->failed_used++;
    }
    b->tokens = fmin(burst, b->tokens + (now - b->at) * rate);
    b->at = now;
    if (b->tokens < 1) {
        wait = (int)ceil((1 - b->tokens) / rate);
    } else if (spend) {
        b->tokens -= 1;
    }
done:
    pthread_mutex_unlock(&l->mu);
    return wait;
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

/* The service_id a body names, or -1. */
static int
api_body_service(const cJSON *body)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "service_id");
    /* Only ids an int holds: a cast of 1e300 is undefined, and "4294967297"
     * would wrap to service 1 (the fuzzer found both). The compiler then
     * refuses whatever is out of range, with its path. */
    if (cJSON_IsNumber(s) && s->valuedouble == floor(s->valuedouble) &&
        s->valuedouble >= 0 && s->valuedouble <= INT_MAX) {
        return (int)s->valuedouble;
    }
    if (cJSON_IsString(s)) {
        char *end;
        errno = 0;
        long v = strtol(s->valuestring, &end, 10);
        return *end == '\0' && end != s->valuestring && errno == 0 && v >= 0 &&
                       v <= INT_MAX
                   ? (int)v
                   : -1;
    }
    return -1;
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

static void
api_create(kiln_engine *e, const kiln_call *c, const int *ids, size_t n_ids,
           kiln_reply *out)
{
    if (c->idempotency_key != NULL &&
        !api_idempotency_ok(c->idempotency_key, out)) {
        return;
    }
    cJSON *body = api_parse_body(c);
    int service = api_body_service(body);
    cJSON_Delete(body);
    if (service >= 0 && !api_may_use(ids, n_ids, service)) {
        api_message(out, 403, "this token may not use service %d", service);
        return;
    }
    kiln_error err;
    err_clear(&err);
    char hash[17];
    runner_body_hash(c->body ? c->body : "", c->body_len, hash);
    if (c->idempotency_key != NULL && service >= 0) {
        jobstore_process p;
        memset(&p, 0, sizeof p);
        if (jobstore_find_idempotent(e->store, service, c->idempotency_key, &p,
                                     &err) == KILN_OK) {
            bool same = p.idem_hash != NULL && strcmp(p.idem_hash, hash) == 0;
            if (same) {
                api_success(out, p.id);
            } else {
                api_message(out, 409,
                            "Idempotency-Key was used with a different body");
            }
            jobstore_process_clear(&p);
            return;
        }
    }
    errlist errs = {0};
    char id[JOBSTORE_ID_LEN + 1];
    int rc = runner_submit(e, e->store, c->body ? c->body : "", c->body_len,
                           c->idempotency_key, id, &errs, &err);
    if (rc == KILN_OK) {
        runner_wake(e->runner);
        api_success(out, id);
    } else if (errs.n > 0) {
        api_invalid(out, &errs);
    } else if (rc == KILN_EEXIST && c->idempotency_key != NULL) {
        /* Two identical POSTs raced: answer with the winner's id. */
        jobstore_process p;
        memset(&p, 0, sizeof p);
        if (jobstore_find_idempotent(e->store, service, c->idempotency_key, &p,
                                     &err) == KILN_OK) {
            api_success(out, p.id);
            jobstore_process_clear(&p);
        } else {
            api_store_failed(out, &err);
        }
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
api_find(kiln_engine *e, const char *id, const int *ids, size_t n_ids,
         jobstore_process *p, kiln_reply *out)
{
    kiln_error err;
    err_clear(&err);
    for (size_t i = 0; i < n_ids; i++) {
        memset(p, 0, sizeof *p);
        int rc = jobstore_get(e->store, id, ids[i], p, &err);
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
api_status(kiln_engine *e, const char *id, const int *ids, size_t n_ids,
           kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(e, id, ids, n_ids, &p, out)) {
        return;
    }
    api_reply_json(out, 200, runner_status_json(&p));
    jobstore_process_clear(&p);
}

/* Answers 400 at the path of what is wrong and returns false unless the
 * body is {"service_id": N, "process_ids": ["...", ...]} with N a whole
 * number an int holds (not "1": api.md gives an integer) and every id a
 * string. */
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
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "service_id");
    if (!cJSON_IsNumber(s) || api_body_service(body) < 0) {
        shown = s != NULL ? cJSON_PrintUnformatted(s) : NULL;
        snprintf(msg, sizeof msg,
                 "%s%.60s%s (expected a service id: a whole number from 0)",
                 shown != NULL ? "got " : "missing", shown ? shown : "",
                 shown != NULL && strlen(shown) > 60 ? "..." : "");
        cJSON_free(shown);
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

static void
api_retry(kiln_engine *e, const kiln_call *c, const int *ids, size_t n_ids,
          kiln_reply *out)
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
        cJSON *o = cJSON_CreateObject();
        kiln_error err;
        err_clear(&err);
        int attempt = 0;
        int rc = jobstore_retry(e->store, id, service, &attempt, &err);
        char desc[128];
        int status = rc == KILN_OK          ? 200
                     : rc == KILN_EPERM     ? 409
                     : rc == KILN_ENOTFOUND ? 404
                                            : 503;
        if (rc == KILN_OK) {
            snprintf(desc, sizeof desc, "Reprocessing process, attempt: %d",
                     attempt);
            woke = true;
        } else if (rc == KILN_EPERM) {
            snprintf(desc, sizeof desc, "Process is still running");
        } else if (rc == KILN_ENOTFOUND) {
            snprintf(desc, sizeof desc, "Process not found");
        } else {
            snprintf(desc, sizeof desc, "%s%.200s", api_store_prefix(&err),
                     err.message);
        }
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "process_id", id);
        cJSON_AddStringToObject(o, "description", desc);
        cJSON_AddItemToArray(answer, o);
    }
    cJSON_Delete(body);
    if (woke) {
        runner_wake(e->runner);
    }
    api_reply_json(out, 200, answer);
}

/* POST /request/{id}/jobs: validated by compiling the stored request with
 * the new jobs appended, so the errors read as they would at creation. */
static void
api_add_jobs(kiln_engine *e, const kiln_call *c, const char *id, const int *ids,
             size_t n_ids, kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(e, id, ids, n_ids, &p, out)) {
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
    int rc = engine_compile(e, text, strlen(text), &a, &g, &errs);
    cJSON_free(text);
    arena_free(a);
    if (rc != KILN_OK) {
        api_invalid(out, &errs);
    } else {
        kiln_error err;
        err_clear(&err);
        char *jtext = cJSON_PrintUnformatted(jobs);
        size_t n = 0;
        rc = jobstore_append_jobs(e->store, id, p.service_id, jtext,
                                  (size_t)e->config->limits.max_jobs, &n, &err);
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
api_patch(kiln_engine *e, const kiln_call *c, const char *id, const int *ids,
          size_t n_ids, kiln_reply *out)
{
    jobstore_process p;
    if (!api_find(e, id, ids, n_ids, &p, out)) {
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
    if (cb != NULL && postback_check_url(e, cb->valuestring, &err) != KILN_OK) {
        cJSON_Delete(body);
        jobstore_process_clear(&p);
        api_invalid_one(out, "callback", err.message);
        return;
    }
    int rc = jobstore_set_processing(e->store, id, p.service_id,
                                     cb ? cb->valuestring : NULL, &err);
    jobstore_process_clear(&p);
    cJSON_Delete(body);
    if (rc == KILN_OK) {
        runner_wake(e->runner);
        api_status(e, id, ids, n_ids, out);
    } else if (rc == KILN_EPERM) {
        api_message(out, 409, "Process is not INCOMPLETE");
    } else {
        api_store_failed(out, &err);
    }
}

static void
api_metrics(kiln_engine *e, kiln_reply *out)
{
    jobstore_counts n;
    kiln_error err;
    if (jobstore_counts_get(e->store, (int64_t)time(NULL), &n, &err) !=
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
    metrics_write(e->metrics, f);
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

/* Splits "/request/ID/jobs" style paths: returns true when path starts with
 * prefix and the rest (up to the next '/') is an id, copied to id. */
static bool
api_path_id(const char *path, const char *prefix, const char *suffix,
            char id[JOBSTORE_ID_LEN + 1])
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0) {
        return false;
    }
    const char *rest = path + pl;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n > JOBSTORE_ID_LEN || strcmp(rest + n, suffix) != 0) {
        return false;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    return true;
}

void
api_call(kiln_engine *e, const kiln_call *c, kiln_reply *out)
{
    api_call_from(e, c, NULL, out);
}

void
api_call_from(kiln_engine *e, const kiln_call *c, const struct sockaddr *peer,
              kiln_reply *out)
{
    memset(out, 0, sizeof *out);
    const char *m = c->method ? c->method : "";
    const char *path = c->path ? c->path : "";
    if (e->store == NULL) {
        api_message(out, 503, "the engine is not serving");
        return;
    }
    if (strcmp(path, "/health") == 0 && strcmp(m, "GET") == 0) {
        kiln_error err;
        if (jobstore_ping(e->store, &err) == KILN_OK) {
            api_message(out, 200, "ok");
        } else {
            api_message(out, 503, "the job store cannot take new processes: %s",
                        err.message);
        }
        return;
    }
    /* An address that has spent its failed-authentication budget gets a
     * 429 before any token is compared, valid or not: were a valid token
     * let through, the answer (429 or not) would tell a guesser which
     * guess was right, and guessing would go on at full speed. */
    int wait = api_failed(e, peer, false);
    if (wait > 0) {
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
    size_t n_ids = api_auth(e, c->authorization, ids, 64, &token, &token_len);
    if (n_ids == 0) {
        (void)api_failed(e, peer, true);
        api_message(out, 401, "Invalid Secret");
        return;
    }
    wait = api_rate(e, token, token_len);
    if (wait > 0) {
        api_message(out, 429, "too many requests for this token");
        out->retry_after = wait;
        return;
    }
    char id[JOBSTORE_ID_LEN + 1];
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
    if (strcmp(path, "/request") == 0 && post) {
        api_create(e, c, ids, n_ids, out);
    } else if (get && api_path_id(path, "/status/", "", id)) {
        api_status(e, id, ids, n_ids, out);
    } else if (strcmp(path, "/retry") == 0 && post) {
        api_retry(e, c, ids, n_ids, out);
    } else if (post && api_path_id(path, "/request/", "/jobs", id)) {
        api_add_jobs(e, c, id, ids, n_ids, out);
    } else if (strcmp(m, "PATCH") == 0 &&
               api_path_id(path, "/request/", "", id)) {
        api_patch(e, c, id, ids, n_ids, out);
    } else if (strcmp(path, "/metrics") == 0 && get) {
        api_metrics(e, out);
    } else {
        api_message(out, 404, "no endpoint %s %s", m, path);
    }
}
