/*
 * Postback delivery (postback.h): the notify side stores what is owed in
 * the job store; sender threads claim due postbacks, POST them with
 * libcurl to the address the network guard approved (signed, and named
 * by a delivery id that stays the same on every attempt), and record
 * each attempt so the store can schedule the next one.
 */
#include "postback.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "workers.h"

/* A claimed postback is not handed to another sender for this long; it
 * covers one attempt with a wide margin. */
#define POSTBACK_LEASE_S 60
/* Idle senders look for due retries this often. */
#define POSTBACK_TICK_MS 200

struct postbacker {
    kiln_server *server;
    workers w;
};

void
postback_sign(const char *secret, const char *body, size_t len,
              char out[POSTBACK_SIG_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
         len, md, &md_len);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < md_len && i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i + 1] = hex[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

void
postback_delivery_id(const jobstore_postback *pb,
                     char out[POSTBACK_DELIVERY_ID_LEN])
{
    snprintf(out, POSTBACK_DELIVERY_ID_LEN, "%s.%lld", pb->process_id,
             (long long)pb->id);
}

int
postback_check_url(const kiln_engine *e, const char *url, kiln_error *err)
{
    netguard_target t;
    return netguard_check_url("callback", url, e->net_allow, &t, err);
}

/* The last check, where libcurl makes the socket: even if something
 * upstream changed the address (a redirect is off, but a proxy setting or
 * a future option might not be), a refused address gets no socket. */
static curl_socket_t
postback_open_socket(void *user, curlsocktype purpose, struct curl_sockaddr *a)
{
    const netguard_allow *allow = user;
    if (purpose != CURLSOCKTYPE_IPCXN ||
        !netguard_is_allowed(allow, &a->addr)) {
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t
postback_discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

int
postback_deliver(const kiln_engine *e, const char *url, const char *body,
                 const char *secret, const char *delivery_id, int *http_status,
                 kiln_error *err)
{
    *http_status = 0;
    netguard_target t;
    int rc = netguard_check_url("callback", url, e->net_allow, &t, err);
    if (rc != KILN_OK) {
        return rc;
    }
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return err_set(err, KILN_ENOMEM, "cannot start an HTTP client");
    }
    struct curl_slist *resolve = NULL, *headers = NULL;
    if (t.resolve[0] != '\0') {
        resolve = curl_slist_append(resolve, t.resolve);
    }
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers =
        curl_slist_append(headers, "User-Agent: kiln/" KILN_VERSION_STRING);
    headers = curl_slist_append(headers, "Expect:");
    char sig[POSTBACK_SIG_LEN + 32];
    if (secret != NULL && secret[0] != '\0') {
        char hex[POSTBACK_SIG_LEN];
        postback_sign(secret, body, strlen(body), hex);
        snprintf(sig, sizeof sig, "X-Kiln-Signature: %s", hex);
        headers = curl_slist_append(headers, sig);
    }
    char delivery[POSTBACK_DELIVERY_ID_LEN + 32];
    if (delivery_id != NULL) {
        snprintf(delivery, sizeof delivery, "Kiln-Delivery-Id: %s",
                 delivery_id);
        headers = curl_slist_append(headers, delivery);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    /* No proxy from the environment: the guard checked the callback's own
     * address, and that is the one we connect to. */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)POSTBACK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)POSTBACK_TIMEOUT_MS / 2);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, postback_open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, e->net_allow);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, postback_discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    curl_slist_free_all(headers);
    *http_status = (int)code;
    if (cc != CURLE_OK) {
        return err_set(err, KILN_EIO, "callback: %s",
                       errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    if (code < 200 || code > 299) {
        return err_set(err, KILN_EIO, "callback answered HTTP %ld", code);
    }
    return KILN_OK;
}

/* The job store's status-change hook (jobstore_set_notify): runs inside
 * the store's transaction, so it only builds the body. */
static char *
postback_hook(const jobstore_process *p, void *arg)
{
    kiln_server *s = arg;
    bool final = jobstore_status_ended(p->status);
    if (!final && !p->notify_status) {
        return NULL;
    }
    cJSON *o = server_status_json(p);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* The store frees with free(); cJSON allocates with malloc unless
     * told otherwise, but copy to be independent of its hooks. */
    char *body = text != NULL ? strdup(text) : NULL;
    cJSON_free(text);
    if (body != NULL && s->postbacker != NULL) {
        postbacker_wake(s->postbacker);
    }
    return body;
}

void
postback_attach(kiln_server *s)
{
    jobstore_set_notify(s->store, postback_hook, s);
}

/* The store schedules in whole seconds; rounding the attempt's time up
 * makes "retry after 1 s" never come sooner than 1 s. */
static int64_t
postback_now_ceil(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec + (ts.tv_nsec > 0);
}

/* Delivers one claimed postback and records the attempt. */
static void
postback_attempt(kiln_server *s, const jobstore_postback *pb)
{
    kiln_engine *e = s->engine;
    const config_service *svc = config_find_service(e->config, pb->service_id);
    kiln_error err;
    err_clear(&err);
    int status = 0;
    char delivery_id[POSTBACK_DELIVERY_ID_LEN];
    postback_delivery_id(pb, delivery_id);
    int rc =
        postback_deliver(e, pb->url, pb->body, svc != NULL ? svc->secret : NULL,
                         delivery_id, &status, &err);
    jobstore_postback_state st = JOBSTORE_PB_PENDING;
    kiln_error rerr;
    err_clear(&rerr);
    if (jobstore_postback_record(s->store, pb->id, rc == KILN_OK, status,
                                 rc == KILN_OK ? NULL : err.message,
                                 postback_now_ceil(), pb->retry, &st,
                                 &rerr) != KILN_OK) {
        log_msg(KILN_LOG_ERROR, "store", "postback %lld: cannot record: %s",
                (long long)pb->id, rerr.message);
        return;
    }
    metrics_postback_attempt(s->metrics,
                             st == JOBSTORE_PB_DELIVERED ? METRICS_PB_DELIVERED
                             : st == JOBSTORE_PB_PENDING ? METRICS_PB_FAILED
                                                         : METRICS_PB_GIVEN_UP);
    if (st == JOBSTORE_PB_PENDING) {
        /* The URL is the client's and may carry a token in its query:
         * lines name the process, never the URL. */
        log_event(KILN_LOG_WARN, "postback",
                  (log_field[]){LOG_S("process_id", pb->process_id),
                                LOG_N("attempt", pb->attempt + 1),
                                LOG_N("http_status", status),
                                LOG_S("error", err.message),
                                LOG_S("next", "retried")},
                  5);
    }
    if (st == JOBSTORE_PB_GIVEN_UP) {
        /* The URL is the client's; it may carry a token in its query, so
         * the log names the process, not the URL. */
        log_msg(KILN_LOG_WARN, "postback",
                "postback for process %s given up after attempt %d: "
                "%s",
                pb->process_id, pb->attempt + 1, err.message);
    }
}

static void *
postback_sender(void *arg)
{
    postbacker *b = arg;
    kiln_server *s = b->server;
    unsigned seen;
    while (workers_running(&b->w, &seen)) {
        jobstore_postback *due = NULL;
        size_t n = 0;
        kiln_error err;
        err_clear(&err);
        if (jobstore_postback_due(s->store, (int64_t)time(NULL),
                                  POSTBACK_LEASE_S, 1, &due, &n,
                                  &err) != KILN_OK) {
            log_msg(KILN_LOG_ERROR, "store", "postbacks: %s", err.message);
        }
        for (size_t i = 0; i < n; i++) {
            postback_attempt(s, &due[i]);
        }
        jobstore_postbacks_free(due, n);
        if (n == 0) {
            workers_sleep(&b->w, seen, POSTBACK_TICK_MS);
        }
    }
    return NULL;
}

int
postbacker_start(kiln_server *s, int n_threads, postbacker **out,
                 kiln_error *err)
{
    postbacker *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    b->server = s;
    if (workers_start(&b->w, n_threads, postback_sender, b) == 0) {
        free(b);
        return err_set(err, KILN_EINTERNAL, "cannot start postback threads");
    }
    *out = b;
    return KILN_OK;
}

void
postbacker_wake(postbacker *b)
{
    workers_wake_one(&b->w);
}

void
postbacker_stop(postbacker *b)
{
    if (b == NULL) {
        return;
    }
    workers_stop(&b->w);
    free(b);
}
