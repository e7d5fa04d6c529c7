/*
 * kiln submit: the HTTP API's client on the command line. Posts a request
 * file to a running `kiln serve` (POST /request) and prints the process id;
 * with --wait it polls GET /status/{id} until the process is FINISHED or
 * FAILED and prints the server's final status body, pretty printed. Talks
 * to the server with libcurl only; it shares nothing with the engine.
 */
#include "submit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "kiln/version.h"

#define SUBMIT_DEFAULT_URL "http://127.0.0.1:8080"
/* Answers larger than this are cut off: a status body is a few KiB. */
#define SUBMIT_MAX_ANSWER (16u << 20)
#define SUBMIT_CONNECT_TIMEOUT_MS 10000L
/* Polling starts fast (most processes take well under a second) and backs
 * off to one call a second. */
#define SUBMIT_POLL_FIRST_MS 50L
#define SUBMIT_POLL_MAX_MS 1000L
/* Connection failures and 5xx answers in a row that --wait rides out (a
 * server restarting); the next one ends the command. */
#define SUBMIT_MAX_TRANSIENT 5
/* Told to come back later (429, or 503 with Retry-After), kiln submit
 * waits what Retry-After asks, but never more than this at a time: a
 * misconfigured proxy asking for an hour should not hang a script. */
#define SUBMIT_RETRY_CAP_S 60L
/* Without --timeout, how many times a refused POST is tried again. */
#define SUBMIT_MAX_RETRIES 10

enum {
    SUBMIT_EXIT_OK = 0,
    SUBMIT_EXIT_FAIL = 1,
    SUBMIT_EXIT_USAGE = 2,
    SUBMIT_EXIT_TIMEOUT = 3
};

typedef struct submit_opts {
    const char *url;
    const char *token;
    const char *idempotency_key;
    const char *file;
    bool is_wait;
    double timeout; /* seconds; 0: none */
} submit_opts;

/* One connection to the server, reused for every call. */
typedef struct submit_ctx {
    CURL *curl;
    struct curl_slist *post_headers;
    struct curl_slist *get_headers;
    char *base; /* the URL without trailing slashes */
    bool has_token;
    bool is_tty; /* progress lines on stderr */
    double start;
    double deadline; /* monotonic seconds; 0: none */
    char errbuf[CURL_ERROR_SIZE];
} submit_ctx;

/* One answer. status is 0 when there was none (rc says why). */
typedef struct submit_reply {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    bool is_cut;
    long retry_after; /* seconds, from either form; -1 when absent */
} submit_reply;

static void submit_progress(const submit_ctx *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const cli_option submit_options[] = {
    {"url", 0, "URL", "the server", "$KILN_URL, else " SUBMIT_DEFAULT_URL},
    {"token", 0, "TOKEN", "the bearer token, never printed", "$KILN_TOKEN"},
    {"wait", 0, NULL,
     "wait for the process to end and print its final status body", NULL},
    {"timeout", 0, "SECONDS",
     "give up after this long, waits for Retry-After included; exit status "
     "3",
     "no limit"},
    {"idempotency-key", 0, "KEY",
     "send Idempotency-Key: KEY (a repeated submission answers the first "
     "process id)",
     NULL},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_operand submit_operands[] = {
    {"REQUEST.json", "the request; - reads standard input"}, {NULL, NULL}};

const cli_command submit_command = {
    .name = "submit",
    .summary = "post a request to a running server and print its process id",
    .doc =
        "Posts REQUEST.json to URL/request and prints the process id. With "
        "--wait, polls URL/status/ID until the process is FINISHED or FAILED "
        "and prints the final status body, pretty printed. Answered 429 or 503 "
        "with Retry-After, it says so on stderr, waits that long (at most 60 s "
        "a time) and tries again: within --timeout when given, else up to 10 "
        "times. A refused request prints each error as \"path: message\" on "
        "stderr.",
    .operands = submit_operands,
    .min_operands = 1,
    .max_operands = 1,
    .expected = "one REQUEST.json",
    .options = submit_options,
    .exit_status =
        "Exit status: 0 submitted (with --wait: FINISHED), 1 refused, "
        "unreachable or FAILED, 2 usage error, 3 timed out.",
};

/* A header value is sent as given: a line break would start a header of
 * the caller's choosing, so it is refused. */
static bool
submit_is_header_safe(const char *v)
{
    return strpbrk(v, "\r\n") == NULL;
}

/* Parses the options into o; returns CLI_GO_ON, or the exit status after
 * --help (0) or a message on a usage error (2). */
static int
submit_parse(int argc, char **argv, submit_opts *o)
{
    const cli_command *cmd = &submit_command;
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, &a);
    if (rc != CLI_GO_ON) {
        return rc;
    }
    o->url = cli_get(&a, "url");
    o->token = cli_get(&a, "token");
    o->is_wait = cli_get(&a, "wait") != NULL;
    o->idempotency_key = cli_get(&a, "idempotency-key");
    const char *timeout = cli_get(&a, "timeout");
    if (timeout != NULL) {
        char *end;
        errno = 0;
        double t = strtod(timeout, &end);
        if (end == timeout || *end != '\0' || errno != 0 || !(t > 0) ||
            t > 1e9) {
            cli_usage_error(cmd,
                            "--timeout \"%s\" is not valid (expected a "
                            "number of seconds above 0)",
                            timeout);
            return SUBMIT_EXIT_USAGE;
        }
        o->timeout = t;
    }
    o->file = a.operands[0];
    if (o->url == NULL) {
        o->url = getenv("KILN_URL");
    }
    if (o->url == NULL || o->url[0] == '\0') {
        o->url = SUBMIT_DEFAULT_URL;
    }
    if (o->token == NULL) {
        o->token = getenv("KILN_TOKEN");
    }
    if (o->token != NULL && !submit_is_header_safe(o->token)) {
        fprintf(stderr, "kiln submit: the token holds a line break\n");
        return SUBMIT_EXIT_USAGE;
    }
    if (o->idempotency_key != NULL &&
        (o->idempotency_key[0] == '\0' ||
         !submit_is_header_safe(o->idempotency_key))) {
        cli_usage_error(cmd,
                        "--idempotency-key \"%s\" is not valid (expected a "
                        "non-empty value on one line)",
                        o->idempotency_key);
        return SUBMIT_EXIT_USAGE;
    }
    return CLI_GO_ON;
}

/* Reads the whole request (stdin for "-") into a malloc'd buffer. */
static char *
submit_read_file(const char *path, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *in = is_stdin ? stdin : fopen(path, "rb");
    if (in == NULL) {
        fprintf(stderr, "kiln submit: cannot open %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);
    char chunk[65536];
    while (mem != NULL) {
        size_t n = fread(chunk, 1, sizeof chunk, in);
        if (n == 0 || fwrite(chunk, 1, n, mem) != n) {
            break;
        }
    }
    bool is_bad = mem == NULL || ferror(in) || ferror(mem);
    int saved = errno;
    if (mem != NULL && fclose(mem) != 0) {
        is_bad = true;
    }
    if (!is_stdin) {
        fclose(in);
    }
    if (is_bad) {
        fprintf(stderr, "kiln submit: cannot read %s: %s\n",
                is_stdin ? "standard input" : path, strerror(saved));
        free(text);
        return NULL;
    }
    return text;
}

static double
submit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool
submit_is_expired(const submit_ctx *s)
{
    return s->deadline > 0 && submit_now() >= s->deadline;
}

/* Sleeps ms milliseconds, or less when the deadline comes first. */
static void
submit_sleep(const submit_ctx *s, long ms)
{
    double secs = (double)ms / 1000.0;
    if (s->deadline > 0) {
        double left = s->deadline - submit_now();
        secs = left < secs ? left : secs;
    }
    if (secs <= 0) {
        return;
    }
    struct timespec ts = {(time_t)secs,
                          (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Prints a progress line; only a person at a terminal wants them. */
static void
submit_progress(const submit_ctx *s, const char *fmt, ...)
{
    if (!s->is_tty) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln submit: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%.1f s)\n", submit_now() - s->start);
    va_end(ap);
}

/* Retry-After as delay-seconds or as an HTTP date (RFC 9110 10.2.3), in
 * seconds from now; -1 when it is neither. */
static long
submit_parse_retry_after(const char *v)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end != v && errno == 0 && n >= 0 && end[strspn(end, " \t")] == '\0') {
        return n;
    }
    time_t at = curl_getdate(v, NULL);
    if (at == (time_t)-1) {
        return -1;
    }
    time_t now = time(NULL);
    return at > now ? (long)(at - now) : 0;
}

static size_t
submit_on_data(char *data, size_t size, size_t n, void *user)
{
    submit_reply *r = user;
    size_t add = size * n;
    if (r->len + add > SUBMIT_MAX_ANSWER) {
        r->is_cut = true;
        return add;
    }
    char *grown = realloc(r->body, r->len + add + 1);
    if (grown == NULL) {
        return 0;
    }
    memcpy(grown + r->len, data, add);
    r->body = grown;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static void
submit_reply_free(submit_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One call: POST body to base+path when body is not NULL, else GET. Fills
 * r (the caller frees it with submit_reply_free). Past the deadline no
 * call is made and r->rc is CURLE_OPERATION_TIMEDOUT. */
static void
submit_call(submit_ctx *s, const char *path, const char *body, size_t len,
            submit_reply *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    s->errbuf[0] = '\0';
    long timeout_ms = 0;
    if (s->deadline > 0) {
        timeout_ms = (long)((s->deadline - submit_now()) * 1000.0);
        if (timeout_ms <= 0) {
            r->rc = CURLE_OPERATION_TIMEDOUT;
            return;
        }
    }
    size_t n_url = strlen(s->base) + strlen(path) + 1;
    char *url = malloc(n_url);
    if (url == NULL) {
        r->rc = CURLE_OUT_OF_MEMORY;
        return;
    }
    snprintf(url, n_url, "%s%s", s->base, path);
    CURL *h = s->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->post_headers);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->get_headers);
    }
    r->rc = curl_easy_perform(h);
    free(url);
    if (r->rc != CURLE_OK) {
        return;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    struct curl_header *hdr = NULL;
    if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hdr) ==
        CURLHE_OK) {
        r->retry_after = submit_parse_retry_after(hdr->value);
    }
}

/* Whether answer r asks to be tried again later: 429, or 503 with a
 * Retry-After (a server or proxy that is briefly unable to take it). */
static bool
submit_is_retry(const submit_reply *r)
{
    return r->rc == CURLE_OK &&
           (r->status == 429 || (r->status == 503 && r->retry_after >= 0));
}

/* Says on stderr that the server asked to come back later and waits as
 * long as it asked (1 s when it did not say; at most SUBMIT_RETRY_CAP_S).
 * Returns false, after saying so, when that wait would pass the
 * deadline: the caller ends with exit status 3. */
static bool
submit_back_off(submit_ctx *s, const submit_reply *r, const char *what)
{
    long asked = r->retry_after >= 0 ? r->retry_after : 1;
    long secs = asked > SUBMIT_RETRY_CAP_S ? SUBMIT_RETRY_CAP_S : asked;
    cJSON *j = r->body != NULL ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
    char why[160];
    snprintf(why, sizeof why, "HTTP %ld%s%.100s%s", r->status,
             msg != NULL ? " (" : "", msg != NULL ? msg : "",
             msg != NULL ? ")" : "");
    cJSON_Delete(j);
    if (s->deadline > 0 && submit_now() + (double)secs > s->deadline) {
        fprintf(stderr,
                "kiln submit: %s: %s; the server asks to wait %ld s, which "
                "would pass --timeout (%g s)\n",
                what, why, asked, s->deadline - s->start);
        return false;
    }
    if (asked > secs) {
        fprintf(stderr,
                "kiln submit: %s: %s; trying again in %ld s (Retry-After "
                "asked %ld s; kiln submit waits at most %ld s at a time)\n",
                what, why, secs, asked, SUBMIT_RETRY_CAP_S);
    } else {
        fprintf(stderr, "kiln submit: %s: %s; trying again in %ld s\n", what,
                why, secs);
    }
    submit_sleep(s, secs * 1000);
    return true;
}

/* Says why a call got no answer: the URL, libcurl's reason, and a hint
 * when nothing listens there. */
static void
submit_print_transport(const submit_ctx *s, const submit_reply *r,
                       const char *what)
{
    const char *why =
        s->errbuf[0] != '\0' ? s->errbuf : curl_easy_strerror(r->rc);
    fprintf(stderr, "kiln submit: %s: cannot reach %s: %s%s\n", what, s->base,
            why,
            r->rc == CURLE_COULDNT_CONNECT ? " (is kiln serve running there?)"
                                           : "");
}

/* Prints a non-200 answer on stderr: the code and the server's message,
 * then each of its errors as "path: message". */
static void
submit_print_refusal(const submit_ctx *s, const submit_reply *r,
                     const char *what)
{
    cJSON *j = r->body != NULL ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "message"));
    if (msg != NULL) {
        fprintf(stderr, "kiln submit: %s: HTTP %ld: %s", what, r->status, msg);
    } else if (r->len > 0) {
        fprintf(stderr, "kiln submit: %s: HTTP %ld: %.*s", what, r->status,
                r->len > 300 ? 300 : (int)r->len, r->body);
    } else {
        fprintf(stderr, "kiln submit: %s: HTTP %ld with an empty body", what,
                r->status);
    }
    if (r->status == 401 && !s->has_token) {
        fprintf(stderr, " (no token given: set KILN_TOKEN or pass --token)");
    }
    if (r->status == 429 && r->retry_after >= 0) {
        fprintf(stderr, " (retry after %ld s)", r->retry_after);
    }
    fputc('\n', stderr);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "errors"))
    {
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
        if (path != NULL && path[0] != '\0') {
            fprintf(stderr, "%s: %s\n", path, m != NULL ? m : "(no message)");
        } else {
            fprintf(stderr, "%s\n", m != NULL ? m : "(no message)");
        }
    }
    cJSON_Delete(j);
}

/* A process id goes into the status URL: only the API's alphabet. */
static bool
submit_is_id(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    return n > 0 && n <= 64 &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789-_") == n;
}

/* Polls GET /status/{id} until FINISHED or FAILED, then prints the body on
 * stdout. Returns the exit status. */
static int
submit_wait(submit_ctx *s, const char *id)
{
    char path[96];
    snprintf(path, sizeof path, "/status/%s", id);
    char last[32] = "";
    long delay_ms = SUBMIT_POLL_FIRST_MS;
    int n_transient = 0;
    char what[112];
    snprintf(what, sizeof what, "GET %s", path);
    for (;;) {
        submit_reply r;
        submit_call(s, path, NULL, 0, &r);
        if (r.rc != CURLE_OK && submit_is_expired(s)) {
            submit_reply_free(&r);
            fprintf(stderr,
                    "kiln submit: timed out after %g s waiting for process "
                    "%s (last status %s)\n",
                    s->deadline - s->start, id,
                    last[0] != '\0' ? last : "unknown");
            return SUBMIT_EXIT_TIMEOUT;
        }
        bool is_transient = r.rc != CURLE_OK || r.status == 502 ||
                            r.status == 503 || r.status == 504;
        /* 429 as often as it comes (the deadline bounds it), 5xx only a
         * few times in a row; each waits what Retry-After asks. */
        if ((r.status == 429 ||
             (is_transient && ++n_transient <= SUBMIT_MAX_TRANSIENT)) &&
            submit_is_retry(&r)) {
            bool is_waited = submit_back_off(s, &r, what);
            submit_reply_free(&r);
            if (!is_waited) {
                return SUBMIT_EXIT_TIMEOUT;
            }
            continue;
        }
        if (is_transient && n_transient <= SUBMIT_MAX_TRANSIENT) {
            submit_progress(s, "%s: no answer yet, trying again", what);
            submit_reply_free(&r);
            submit_sleep(s, SUBMIT_POLL_MAX_MS);
            continue;
        }
        if (r.rc != CURLE_OK) {
            submit_print_transport(s, &r, what);
            submit_reply_free(&r);
            return SUBMIT_EXIT_FAIL;
        }
        if (r.status != 200) {
            submit_print_refusal(s, &r, what);
            submit_reply_free(&r);
            return SUBMIT_EXIT_FAIL;
        }
        n_transient = 0;
        cJSON *j = cJSON_ParseWithLength(r.body != NULL ? r.body : "", r.len);
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(j, "status"));
        if (st == NULL || r.is_cut) {
            fprintf(stderr,
                    "kiln submit: %s: the server answered 200 without a "
                    "status: %.*s\n",
                    what, r.len > 300 ? 300 : (int)r.len,
                    r.body != NULL ? r.body : "");
            cJSON_Delete(j);
            submit_reply_free(&r);
            return SUBMIT_EXIT_FAIL;
        }
        bool is_finished = strcmp(st, "FINISHED") == 0;
        if (is_finished || strcmp(st, "FAILED") == 0) {
            char *pretty = cJSON_Print(j);
            int rc = is_finished ? SUBMIT_EXIT_OK : SUBMIT_EXIT_FAIL;
            if (pretty == NULL || printf("%s\n", pretty) < 0 ||
                fflush(stdout) != 0) {
                fprintf(stderr, "kiln submit: cannot print the status\n");
                rc = SUBMIT_EXIT_FAIL;
            }
            free(pretty);
            cJSON_Delete(j);
            submit_reply_free(&r);
            return rc;
        }
        if (strcmp(st, last) != 0) {
            snprintf(last, sizeof last, "%s", st);
            if (strcmp(last, "INCOMPLETE") == 0) {
                submit_progress(s,
                                "%s INCOMPLETE: waiting for PATCH "
                                "/request/%s to queue it",
                                id, id);
            } else {
                submit_progress(s, "%s %s", id, last);
            }
        }
        cJSON_Delete(j);
        submit_reply_free(&r);
        submit_sleep(s, delay_ms);
        delay_ms = delay_ms * 2 > SUBMIT_POLL_MAX_MS ? SUBMIT_POLL_MAX_MS
                                                     : delay_ms * 2;
    }
}

/* Appends the header line head+value to *l; false when out of memory (*l
 * is kept). */
static bool
submit_add_header(struct curl_slist **l, const char *head, const char *value)
{
    size_t n = strlen(head) + strlen(value) + 1;
    char *line = malloc(n);
    if (line == NULL) {
        return false;
    }
    snprintf(line, n, "%s%s", head, value);
    struct curl_slist *grown = curl_slist_append(*l, line);
    explicit_bzero(line, n); /* it may hold the token */
    free(line);
    if (grown == NULL) {
        return false;
    }
    *l = grown;
    return true;
}

/* Opens the connection handle and the two header lists. The token is
 * copied into libcurl's list and nowhere else. */
static bool
submit_open(submit_ctx *s, const submit_opts *o)
{
    s->base = strdup(o->url);
    s->curl = curl_easy_init();
    if (s->base == NULL || s->curl == NULL) {
        return false;
    }
    size_t n = strlen(s->base);
    while (n > 0 && s->base[n - 1] == '/') {
        s->base[--n] = '\0';
    }
    if (s->has_token &&
        (!submit_add_header(&s->get_headers, "Authorization: Bearer ",
                            o->token) ||
         !submit_add_header(&s->post_headers, "Authorization: Bearer ",
                            o->token))) {
        return false;
    }
    /* No "Expect: 100-continue" round trip on large bodies. */
    if (!submit_add_header(&s->post_headers,
                           "Content-Type: ", "application/json") ||
        !submit_add_header(&s->post_headers, "Expect:", "") ||
        (o->idempotency_key != NULL &&
         !submit_add_header(&s->post_headers,
                            "Idempotency-Key: ", o->idempotency_key))) {
        return false;
    }
    CURL *h = s->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, SUBMIT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kiln-submit/" KILN_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, submit_on_data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return true;
}

static void
submit_close(submit_ctx *s)
{
    curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->get_headers);
    curl_slist_free_all(s->post_headers);
    free(s->base);
}

int
cmd_submit(int argc, char **argv)
{
    submit_opts o = {0};
    int prc = submit_parse(argc, argv, &o);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    size_t len = 0;
    char *body = submit_read_file(o.file, &len);
    if (body == NULL) {
        return SUBMIT_EXIT_FAIL;
    }
    int rc = SUBMIT_EXIT_FAIL;
    cJSON *j = NULL;
    submit_reply r = {0};
    submit_ctx s = {0};
    s.has_token = o.token != NULL && o.token[0] != '\0';
    s.is_tty = isatty(STDERR_FILENO) != 0;
    s.start = submit_now();
    s.deadline = o.timeout > 0 ? s.start + o.timeout : 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "kiln submit: cannot initialise libcurl\n");
        free(body);
        return SUBMIT_EXIT_FAIL;
    }
    if (!submit_open(&s, &o)) {
        fprintf(stderr, "kiln submit: out of memory\n");
        goto done;
    }
    /* Told to come back later, come back: within --timeout, or up to
     * SUBMIT_MAX_RETRIES times. A 429 or 503 created nothing, so posting
     * again cannot make a second process. */
    for (int n_retries = 0;; n_retries++) {
        submit_call(&s, "/request", body, len, &r);
        if (!submit_is_retry(&r) ||
            (s.deadline == 0 && n_retries >= SUBMIT_MAX_RETRIES)) {
            break;
        }
        if (!submit_back_off(&s, &r, "POST /request")) {
            rc = SUBMIT_EXIT_TIMEOUT;
            goto done;
        }
        submit_reply_free(&r);
    }
    if (r.rc != CURLE_OK) {
        if (submit_is_expired(&s)) {
            fprintf(stderr,
                    "kiln submit: timed out after %g s submitting "
                    "(the process may have been created)\n",
                    o.timeout);
            rc = SUBMIT_EXIT_TIMEOUT;
        } else {
            submit_print_transport(&s, &r, "POST /request");
        }
        goto done;
    }
    if (r.status != 200) {
        submit_print_refusal(&s, &r, "POST /request");
        goto done;
    }
    j = cJSON_ParseWithLength(r.body != NULL ? r.body : "", r.len);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "process_id"));
    if (!submit_is_id(id)) {
        fprintf(stderr,
                "kiln submit: the server answered 200 without a process "
                "id: %.*s\n",
                r.len > 300 ? 300 : (int)r.len, r.body != NULL ? r.body : "");
        goto done;
    }
    if (!o.is_wait) {
        rc = printf("%s\n", id) < 0 || fflush(stdout) != 0 ? SUBMIT_EXIT_FAIL
                                                           : SUBMIT_EXIT_OK;
        goto done;
    }
    submit_progress(&s, "process %s created", id);
    rc = submit_wait(&s, id);
done:
    cJSON_Delete(j);
    submit_reply_free(&r);
    submit_close(&s);
    curl_global_cleanup();
    free(body);
    return rc;
}
