/*
 * One GET of the "http" storage backend, streamed into a VipsSource.
 *
 * Each fetch drives its own libcurl multi handle from the thread that
 * needs bytes: http_fetch_start() runs the transfer until the headers are
 * in, and the VipsSourceCustom "read" handler runs it again whenever
 * libvips wants more. The write callback keeps at most one chunk and
 * pauses the transfer while that chunk is unread, so the body never sits
 * whole anywhere on the backend's side, and nothing goes to disk.
 *
 * Connection reuse: a multi handle keeps the connections its transfers
 * opened, and finished holders (multi + easy) go back to a small pool.
 * libcurl's shared connection cache (CURLSH with CURL_LOCK_DATA_CONNECT)
 * is documented as unsafe between concurrent threads up to the libcurl
 * this is built with (KNOWN_BUGS "A shared connection cache is not
 * thread-safe"), so holders are shared instead, one thread at a time.
 */
#define _GNU_SOURCE /* strdup, SOCK_CLOEXEC */

#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A non-2xx answer's body is read and dropped up to this many bytes so
 * that its connection can be reused; a longer one is cut. */
#define HTTP_DRAIN_MAX (64 * 1024)
/* How long one wait for socket activity may last; libcurl's own timers
 * (timeout, connect timeout) shorten it. */
#define HTTP_POLL_MS 200
/* Connect timeout, unless less of the timeout is left. */
#define HTTP_CONNECT_MS 10000
/* Connections one holder keeps open for reuse. */
#define HTTP_CONNS_PER_HOLDER 4L
/* The key of the fetch in its source's object data. */
#define HTTP_DATA_KEY "kiln-storage-http"

struct http_fetch {
    http_state *st; /* holds a reference until the stream ends */
    http_conn *conn;
    char *url;
    char subject[HTTP_SUBJECT_MAX];
    struct curl_slist *resolve;
    pthread_mutex_t lock; /* libvips may read from several threads */

    /* The answer. */
    bool is_head_done; /* status line and headers of the final answer */
    long status;
    long long length; /* Content-Length, or -1 */
    bool is_discarding;
    bool is_done; /* the transfer ended, with `result` */
    CURLcode result;
    CURLMcode mresult;

    /* The body: one chunk, read by libvips from buf[pos..len). */
    char *buf;
    size_t buf_len, buf_pos, buf_cap;
    bool is_paused;
    long long received;

    /* Why the stream failed, once it did (set by callbacks or at the
     * end); it is what libvips gets as its error. */
    int fail_code;
    int fail_errno;
    char fail[640];
    char refused[INET6_ADDRSTRLEN]; /* an address net_allowed() refused */
    char errbuf[CURL_ERROR_SIZE];

    /* Once a source streams it: the source (no reference; it owns the
     * fetch) and the links of the list fini() detaches. */
    VipsSource *source;
    http_fetch *live_prev, *live_next;
};

/* Fetches whose source is alive. libvips' operation cache may keep a
 * source long after the engine let go of its image, past the unloading
 * of this plugin (until vips_shutdown), so fini() detaches them. */
static pthread_mutex_t fetch_live_lock = PTHREAD_MUTEX_INITIALIZER;
static http_fetch *fetch_live;

long long
http_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- pool */

static void
conn_free(http_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->is_added) {
        curl_multi_remove_handle(c->multi, c->easy);
    }
    curl_easy_cleanup(c->easy);
    curl_multi_cleanup(c->multi);
    free(c);
}

static http_conn *
pool_take(http_state *st)
{
    http_conn *c = NULL;

    pthread_mutex_lock(&st->lock);
    if (st->n_idle > 0) {
        c = st->idle[--st->n_idle];
    }
    pthread_mutex_unlock(&st->lock);
    if (c != NULL) {
        return c;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (c->multi == NULL || c->easy == NULL) {
        conn_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, HTTP_CONNS_PER_HOLDER);
    return c;
}

/* Returns a holder to the pool (or frees it when the pool is full). An
 * unfinished transfer is cut here: libcurl closes its connection and keeps
 * the others. */
static void
pool_give(http_state *st, http_conn *c)
{
    if (c->is_added) {
        curl_multi_remove_handle(c->multi, c->easy);
        c->is_added = false;
    }
    /* No option of the old fetch (callback data, resolve list) may
     * outlive it. */
    curl_easy_reset(c->easy);
    pthread_mutex_lock(&st->lock);
    if (st->n_idle < HTTP_POOL_MAX) {
        st->idle[st->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&st->lock);
    conn_free(c);
}

void
http_pool_free(http_state *st)
{
    for (size_t i = 0; i < st->n_idle; i++) {
        conn_free(st->idle[i]);
    }
    st->n_idle = 0;
}

/* ----------------------------------------------------------- callbacks */

/* Records why the stream failed, once (the first cause wins). */
static void KILN_PRINTF(4, 5)
    fetch_fail(http_fetch *f, int code, int eno, const char *fmt, ...)
{
    va_list ap;

    if (f->fail_code != KILN_OK) {
        return;
    }
    f->fail_code = code;
    f->fail_errno = eno;
    va_start(ap, fmt);
    vsnprintf(f->fail, sizeof f->fail, fmt, ap);
    va_end(ap);
}

/* The last check of the network guard, where libcurl makes the socket:
 * whatever address libcurl ends up with (pinned by CURLOPT_RESOLVE, or a
 * literal), a refused one gets no socket. */
static curl_socket_t
fetch_open_socket(void *user, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_fetch *f = user;

    if (purpose != CURLSOCKTYPE_IPCXN) {
        return CURL_SOCKET_BAD;
    }
    if (!http_api->net_allowed(f->st->self, &a->addr)) {
        const void *bytes = NULL;

        if (a->family == AF_INET) {
            bytes = &((const struct sockaddr_in *)&a->addr)->sin_addr;
        } else if (a->family == AF_INET6) {
            bytes = &((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
        }
        if (bytes == NULL || inet_ntop(a->family, bytes, f->refused,
                                       sizeof f->refused) == NULL) {
            snprintf(f->refused, sizeof f->refused, "an address");
        }
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Notes the end of each header block; 1xx blocks are interim. */
static size_t
fetch_header(char *data, size_t size, size_t n, void *user)
{
    http_fetch *f = user;
    size_t len = size * n;

    if (len > 0 && len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        long code = 0;
        curl_off_t cl = -1;

        curl_easy_getinfo(f->conn->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            curl_easy_getinfo(f->conn->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                              &cl);
            f->status = code;
            f->length = cl;
            f->is_head_done = true;
            f->is_discarding = code < 200 || code > 299;
        }
    }
    return len;
}

static size_t
fetch_write(char *data, size_t size, size_t n, void *user)
{
    http_fetch *f = user;
    size_t len = size * n;

    if (f->is_discarding) {
        f->received += (long long)len;
        return f->received > HTTP_DRAIN_MAX ? 0 : len;
    }
    /* The previous chunk is still unread: libcurl keeps this one and
     * hands it over again after curl_easy_pause(CURLPAUSE_CONT). */
    if (f->buf_pos < f->buf_len) {
        f->is_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (f->received + (long long)len > f->st->max_size) {
        fetch_fail(f, KILN_ELIMIT, EFBIG,
                   "%s sent more than max_size %lld bytes", f->subject,
                   f->st->max_size);
        return 0;
    }
    if (len > f->buf_cap) {
        char *grown = realloc(f->buf, len);

        if (grown == NULL) {
            fetch_fail(f, KILN_ENOMEM, ENOMEM, "out of memory");
            return 0;
        }
        f->buf = grown;
        f->buf_cap = len;
    }
    memcpy(f->buf, data, len);
    f->buf_len = len;
    f->buf_pos = 0;
    f->received += (long long)len;
    return len;
}

/* ------------------------------------------------------------- driving */

/* A 2xx answer's headers are in, or any other answer is complete. */
static bool
fetch_has_answer(const http_fetch *f)
{
    return f->is_head_done && !f->is_discarding;
}

static bool
fetch_has_data(const http_fetch *f)
{
    return f->buf_pos < f->buf_len;
}

/* Reads libcurl's end-of-transfer message. */
static void
fetch_collect(http_fetch *f)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(f->conn->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == f->conn->easy) {
            f->is_done = true;
            f->result = m->data.result;
        }
    }
}

/* Drives the transfer until want(f) holds or the transfer ends. Returns
 * at once when the transfer is paused with data unread (want must accept
 * that state, as fetch_has_data does; fetch_has_answer holds whenever a
 * pause can happen, since only a 2xx body is kept). */
static void
fetch_pump(http_fetch *f, bool (*want)(const http_fetch *))
{
    while (!f->is_done && !want(f)) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(f->conn->multi, &running);

        if (mc == CURLM_OK) {
            fetch_collect(f);
            if (f->is_done || want(f) || (f->is_paused && fetch_has_data(f))) {
                return;
            }
            mc = curl_multi_poll(f->conn->multi, NULL, 0, HTTP_POLL_MS, NULL);
        }
        if (mc != CURLM_OK) {
            f->is_done = true;
            f->result = CURLE_RECV_ERROR;
            f->mresult = mc;
        }
    }
}

/* Fills f->fail for a transfer that ended without a usable answer, from
 * what the callbacks saw and libcurl's result. */
static void
fetch_fail_transport(http_fetch *f)
{
    if (f->fail_code != KILN_OK) {
        return;
    }
    if (f->refused[0] != '\0') {
        fetch_fail(f, KILN_EPERM, EACCES,
                   "%s: the connection to %s was refused by "
                   "the network guard (allow it with network.allow)",
                   f->subject, f->refused);
    } else if (f->mresult != CURLM_OK) {
        fetch_fail(f, KILN_EIO, EIO, "%s: %s", f->subject,
                   curl_multi_strerror(f->mresult));
    } else if (f->result == CURLE_OPERATION_TIMEDOUT) {
        fetch_fail(f, KILN_EIO, ETIMEDOUT,
                   "%s timed out after %g s (setting timeout)", f->subject,
                   f->st->timeout_s);
    } else if (f->result == CURLE_PARTIAL_FILE) {
        fetch_fail(f, KILN_EIO, EIO,
                   "%s: the connection closed after %lld of "
                   "%lld bytes",
                   f->subject, f->received, f->length);
    } else if (f->result != CURLE_OK) {
        fetch_fail(f, KILN_EIO, EIO, "%s: %s", f->subject,
                   f->errbuf[0] != '\0' ? f->errbuf
                                        : curl_easy_strerror(f->result));
    } else {
        fetch_fail(f, KILN_EIO, EIO,
                   "%s: the connection closed before the answer", f->subject);
    }
}

/* Copies f->fail into err; returns its code. */
static int
fetch_report(const http_fetch *f, kiln_error *err)
{
    return http_api->error_set(err, f->fail_code, "%s", f->fail);
}

/* Sets the options of one GET. */
static CURLcode
fetch_setopt(http_fetch *f, long remaining_ms)
{
    CURL *e = f->conn->easy;
    CURLcode cc = CURLE_OK;

#define HTTP_SETOPT(OPT, VALUE)                                                \
    do {                                                                       \
        if (cc == CURLE_OK) {                                                  \
            cc = curl_easy_setopt(e, OPT, VALUE);                              \
        }                                                                      \
    } while (0)

    HTTP_SETOPT(CURLOPT_URL, f->url);
    HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
    HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by http.c, each target checked again. */
    HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    /* The checked addresses are the ones used: no lookup of our own, no
     * proxy from the environment (http_proxy would bypass the guard). */
    HTTP_SETOPT(CURLOPT_RESOLVE, f->resolve);
    HTTP_SETOPT(CURLOPT_PROXY, "");
    HTTP_SETOPT(CURLOPT_OPENSOCKETFUNCTION, fetch_open_socket);
    HTTP_SETOPT(CURLOPT_OPENSOCKETDATA, f);
    HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
    HTTP_SETOPT(CURLOPT_TIMEOUT_MS, remaining_ms);
    HTTP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, remaining_ms < HTTP_CONNECT_MS
                                               ? remaining_ms
                                               : (long)HTTP_CONNECT_MS);
    HTTP_SETOPT(CURLOPT_USERAGENT, "kiln/" KILN_VERSION_STRING);
    HTTP_SETOPT(CURLOPT_HEADERFUNCTION, fetch_header);
    HTTP_SETOPT(CURLOPT_HEADERDATA, f);
    HTTP_SETOPT(CURLOPT_WRITEFUNCTION, fetch_write);
    HTTP_SETOPT(CURLOPT_WRITEDATA, f);
    HTTP_SETOPT(CURLOPT_ERRORBUFFER, f->errbuf);
#undef HTTP_SETOPT
    return cc;
}

int
http_fetch_start(http_state *st, const char *url, const kiln_net_target *t,
                 long long deadline_ms, const char *subject, http_fetch **out,
                 kiln_error *err)
{
    http_fetch *f;
    long long remaining = deadline_ms - http_now_ms();
    CURLcode cc;
    CURLMcode mc;

    *out = NULL;
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    atomic_fetch_add(&st->refs, 1);
    f->st = st;
    f->length = -1;
    pthread_mutex_init(&f->lock, NULL);
    snprintf(f->subject, sizeof f->subject, "%s", subject);
    f->url = strdup(url);
    if (t->resolve[0] != '\0') {
        f->resolve = curl_slist_append(NULL, t->resolve);
    }
    f->conn = pool_take(st);
    if (f->url == NULL || f->conn == NULL ||
        (t->resolve[0] != '\0' && f->resolve == NULL)) {
        http_fetch_free(f);
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    if (remaining <= 0) {
        f->result = CURLE_OPERATION_TIMEDOUT;
        fetch_fail_transport(f);
        int rc = fetch_report(f, err);
        http_fetch_free(f);
        return rc;
    }

    cc = fetch_setopt(f, (long)remaining);
    if (cc != CURLE_OK) {
        http_fetch_free(f);
        return http_api->error_set(err, KILN_EIO,
                                   "%s: cannot set up the "
                                   "request: %s",
                                   subject, curl_easy_strerror(cc));
    }
    mc = curl_multi_add_handle(f->conn->multi, f->conn->easy);
    if (mc != CURLM_OK) {
        http_fetch_free(f);
        return http_api->error_set(err, KILN_EIO,
                                   "%s: cannot start the "
                                   "request: %s",
                                   subject, curl_multi_strerror(mc));
    }
    f->conn->is_added = true;

    /* A 2xx answer stops here, its first bytes perhaps unread. Any other
     * is read to its end (its body dropped, see HTTP_DRAIN_MAX), which
     * leaves the connection free for a redirect's next request. */
    fetch_pump(f, fetch_has_answer);
    if (!f->is_head_done) {
        fetch_fail_transport(f);
        int rc = fetch_report(f, err);
        http_fetch_free(f);
        return rc;
    }
    *out = f;
    return KILN_OK;
}

long
http_fetch_status(const http_fetch *f)
{
    return f->status;
}

long long
http_fetch_length(const http_fetch *f)
{
    return f->length;
}

const char *
http_fetch_location(http_fetch *f)
{
    struct curl_header *h = NULL;

    if (curl_easy_header(f->conn->easy, "Location", 0, CURLH_HEADER, -1, &h) !=
            CURLHE_OK ||
        h == NULL || h->value == NULL || h->value[0] == '\0') {
        return NULL;
    }
    return h->value;
}

/* Lets go of everything but the outcome, once the stream has ended (or
 * is cut): the connection goes back to the pool, the buffer and the
 * instance reference go. What stays is small and needs no plugin code
 * to free, however long libvips keeps the source. */
static void
fetch_finish(http_fetch *f)
{
    if (f->conn != NULL) {
        if (f->mresult == CURLM_OK) {
            pool_give(f->st, f->conn);
        } else {
            conn_free(f->conn);
        }
        f->conn = NULL;
    }
    /* After the holder: its easy handle pointed at the list. */
    curl_slist_free_all(f->resolve);
    f->resolve = NULL;
    free(f->url);
    f->url = NULL;
    free(f->buf);
    f->buf = NULL;
    f->buf_len = f->buf_pos = f->buf_cap = 0;
    http_state_unref(f->st);
    f->st = NULL;
}

void
http_fetch_free(http_fetch *f)
{
    if (f == NULL) {
        return;
    }
    fetch_finish(f);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ------------------------------------------------------------- source */

/* Puts the failure into libvips' error buffer, where the engine finds
 * it ("storage http: ..."), and errno, which libvips appends to its
 * "read error". libvips reads again after a failure, so a message
 * already there is not repeated. */
static void
fetch_vips_error(const http_fetch *f)
{
    if (strstr(vips_error_buffer(), f->fail) == NULL) {
        vips_error("storage http", "%s", f->fail);
    }
    errno = f->fail_errno;
}

/* The VipsSourceCustom "read" handler: the next bytes of the body, 0 at
 * its end, or -1 with the reason in libvips' error buffer. */
static gint64
fetch_read(VipsSourceCustom *source, void *buffer, gint64 length, void *user)
{
    http_fetch *f = user;
    gint64 got = -1;

    (void)source;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        if (f->buf_pos < f->buf_len) {
            size_t n = f->buf_len - f->buf_pos;

            if ((gint64)n > length) {
                n = (size_t)length;
            }
            memcpy(buffer, f->buf + f->buf_pos, n);
            f->buf_pos += n;
            got = (gint64)n;
            break;
        }
        if (f->is_done) {
            if (f->result == CURLE_OK && f->fail_code == KILN_OK) {
                fetch_finish(f);
                got = 0;
                break;
            }
            fetch_fail_transport(f);
            fetch_finish(f);
            fetch_vips_error(f);
            break;
        }
        if (f->is_paused) {
            CURLcode cc;

            f->is_paused = false;
            /* May call fetch_write at once with what libcurl held back. */
            cc = curl_easy_pause(f->conn->easy, CURLPAUSE_CONT);
            if (cc != CURLE_OK) {
                f->is_done = true;
                f->result = cc;
            }
            continue;
        }
        fetch_pump(f, fetch_has_data);
    }
    pthread_mutex_unlock(&f->lock);
    return got;
}

static void
fetch_live_unlink(http_fetch *f)
{
    if (f->live_prev != NULL) {
        f->live_prev->live_next = f->live_next;
    } else {
        fetch_live = f->live_next;
    }
    if (f->live_next != NULL) {
        f->live_next->live_prev = f->live_prev;
    }
    f->live_prev = f->live_next = NULL;
}

/* The source's destroy notify: the source is being finalized. */
static void
fetch_destroy(gpointer data)
{
    http_fetch *f = data;

    pthread_mutex_lock(&fetch_live_lock);
    fetch_live_unlink(f);
    pthread_mutex_unlock(&fetch_live_lock);
    http_fetch_free(f);
}

void
http_fetch_detach_all(void)
{
    pthread_mutex_lock(&fetch_live_lock);
    while (fetch_live != NULL) {
        http_fetch *f = fetch_live;

        fetch_live_unlink(f);
        /* The source keeps working as an empty one, with no pointer
         * into this plugin's code left in it. */
        g_signal_handlers_disconnect_by_data(f->source, f);
        g_object_steal_data(G_OBJECT(f->source), HTTP_DATA_KEY);
        http_fetch_free(f);
    }
    pthread_mutex_unlock(&fetch_live_lock);
}

int
http_fetch_source_take(http_fetch *f, VipsSource **out, kiln_error *err)
{
    VipsSourceCustom *source;

    *out = NULL;
    fetch_pump(f, fetch_has_data);
    if (!fetch_has_data(f)) {
        int rc;

        if (f->is_done && f->result == CURLE_OK && f->fail_code == KILN_OK) {
            rc = http_api->error_set(err, KILN_EIO,
                                     "%s answered HTTP %ld "
                                     "with an empty body (expected an image)",
                                     f->subject, f->status);
        } else {
            fetch_fail_transport(f);
            rc = fetch_report(f, err);
        }
        http_fetch_free(f);
        return rc;
    }

    source = vips_source_custom_new();
    if (source == NULL) {
        http_fetch_free(f);
        return http_api->error_set_vips(err, "cannot make a source");
    }
    /* No "seek" handler: libvips treats the source as a pipe and keeps
     * what it must re-read (the header) itself. */
    g_signal_connect(source, "read", G_CALLBACK(fetch_read), f);
    g_object_set_data_full(G_OBJECT(source), HTTP_DATA_KEY, f, fetch_destroy);
    f->source = VIPS_SOURCE(source);
    pthread_mutex_lock(&fetch_live_lock);
    f->live_next = fetch_live;
    if (fetch_live != NULL) {
        fetch_live->live_prev = f;
    }
    fetch_live = f;
    pthread_mutex_unlock(&fetch_live_lock);
    *out = VIPS_SOURCE(source);
    return KILN_OK;
}
