/*
 * Connections of the "ftp" storage backend: a pool of slots (an easy
 * handle with its own multi handle, whose connection cache keeps the
 * logged-in control connection between transfers), the options every
 * request shares, and the loop that drives one transfer until the caller
 * has what it needs. read.c and write.c pause and resume transfers from
 * inside that loop, so streaming needs no helper thread.
 */
#define _GNU_SOURCE

#include "ftp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The key under which a live object holds its ftp_live. */
#define FTP_LIVE_KEY "kiln-ftp-live"

/* Idle slots kept per service; more are freed when given back. */
#define FTP_IDLE_MAX 8
/* Longest wait in curl_multi_wait; curl's own timers cut it shorter. */
#define FTP_POLL_MS 1000

static pthread_mutex_t ftp_live_lock = PTHREAD_MUTEX_INITIALIZER;
static ftp_live *ftp_live_head;

static void
ftp_live_unlink(ftp_live *l)
{
    if (l->prev != NULL) {
        l->prev->next = l->next;
    } else {
        ftp_live_head = l->next;
    }
    if (l->next != NULL) {
        l->next->prev = l->prev;
    }
    l->prev = l->next = NULL;
}

/* GDestroyNotify of the object's data: the object is being finalized. */
static void
ftp_live_gone(void *data)
{
    ftp_live *l = data;

    pthread_mutex_lock(&ftp_live_lock);
    ftp_live_unlink(l);
    pthread_mutex_unlock(&ftp_live_lock);
    l->free_owner(l->owner);
}

void
ftp_live_attach(ftp_live *l, GObject *obj, void *owner,
                void (*free_owner)(void *owner))
{
    l->obj = obj;
    l->owner = owner;
    l->free_owner = free_owner;
    pthread_mutex_lock(&ftp_live_lock);
    l->prev = NULL;
    l->next = ftp_live_head;
    if (ftp_live_head != NULL) {
        ftp_live_head->prev = l;
    }
    ftp_live_head = l;
    pthread_mutex_unlock(&ftp_live_lock);
    g_object_set_data_full(obj, FTP_LIVE_KEY, l, ftp_live_gone);
}

void
ftp_live_detach_all(void)
{
    pthread_mutex_lock(&ftp_live_lock);
    while (ftp_live_head != NULL) {
        ftp_live *l = ftp_live_head;

        ftp_live_unlink(l);
        /* A detached source reads as failed, a target refuses writes:
         * libvips' own fallbacks, with no pointer into this plugin. */
        g_signal_handlers_disconnect_by_data(l->obj, l->owner);
        g_object_steal_data(l->obj, FTP_LIVE_KEY);
        pthread_mutex_unlock(&ftp_live_lock);
        l->free_owner(l->owner);
        pthread_mutex_lock(&ftp_live_lock);
    }
    pthread_mutex_unlock(&ftp_live_lock);
}

int
ftp_slot_take(ftp_state *st, ftp_slot **out, kiln_error *err)
{
    ftp_slot *s;

    pthread_mutex_lock(&st->lock);
    s = st->idle;
    if (s != NULL) {
        st->idle = s->next;
        st->n_idle--;
    }
    pthread_mutex_unlock(&st->lock);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        }
        s->multi = curl_multi_init();
        s->easy = curl_easy_init();
        if (s->multi == NULL || s->easy == NULL) {
            ftp_slot_free(s);
            return ftp_api->error_set(err, KILN_ENOMEM,
                                      "cannot make a libcurl handle");
        }
    }
    s->next = NULL;
    *out = s;
    return KILN_OK;
}

void
ftp_slot_free(ftp_slot *s)
{
    if (s == NULL) {
        return;
    }
    ftp_slot_stop(s);
    /* The multi handle owns the cached connection: cleaning it up sends
     * QUIT and closes it. */
    if (s->easy != NULL) {
        curl_easy_cleanup(s->easy);
    }
    if (s->multi != NULL) {
        curl_multi_cleanup(s->multi);
    }
    curl_slist_free_all(s->quote);
    free(s);
}

void
ftp_slot_give(ftp_state *st, ftp_slot *s)
{
    bool keep;

    if (s == NULL) {
        return;
    }
    ftp_slot_stop(s);
    curl_slist_free_all(s->quote);
    s->quote = NULL;
    pthread_mutex_lock(&st->lock);
    keep = st->n_idle < FTP_IDLE_MAX;
    if (keep) {
        s->next = st->idle;
        st->idle = s;
        st->n_idle++;
    }
    pthread_mutex_unlock(&st->lock);
    if (!keep) {
        ftp_slot_free(s);
    }
}

/* Header callback: for FTP, libcurl passes every server reply line
 * here. Keeps the first lines of the last two different 4xx/5xx replies
 * for messages (a refused MKD is followed by a failing CWD, and the MKD
 * says why) and notes a 350 (RNFR accepted). The password is sent,
 * never received, so it cannot appear. */
static size_t
ftp_on_reply(char *data, size_t size, size_t n, void *u)
{
    ftp_slot *s = u;
    size_t len = size * n;
    char line[FTP_REPLY_MAX];
    int code;
    size_t k;

    if (len < 4 || !isdigit((unsigned char)data[0]) ||
        !isdigit((unsigned char)data[1]) || !isdigit((unsigned char)data[2]) ||
        (data[3] != ' ' && data[3] != '-')) {
        return len;
    }
    s->has_reply = true;
    code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
    if (code == 350) {
        s->saw_350 = true;
    }
    /* Only the first line of a multi-line reply ("550-..." up to
     * "550 ..."). */
    if (code >= 400 && !s->in_multiline) {
        for (k = 0; k < len && k < sizeof line - 1; k++) {
            if (data[k] == '\r' || data[k] == '\n') {
                break;
            }
            line[k] = data[k];
        }
        line[k] = '\0';
        if (strcmp(line, s->reply) != 0) {
            memcpy(s->prev_reply, s->reply, sizeof s->prev_reply);
            memcpy(s->reply, line, sizeof s->reply);
        }
        s->reply_code = code;
    }
    s->in_multiline = data[3] == '-';
    return len;
}

/* Default write callback: with CURLOPT_NOBODY on a file, curl "writes"
 * what it learnt (Content-Length: ...) as body, which would otherwise go
 * to stdout. Reads set their own. */
static size_t
ftp_discard(char *data, size_t size, size_t n, void *u)
{
    (void)data;
    (void)u;
    return size * n;
}

/* Sets an option that cannot fail for a valid handle but is checked
 * anyway (an option missing from an older libcurl). */
#define FTP_SET(s, opt, val)                                                   \
    do {                                                                       \
        if (curl_easy_setopt((s)->easy, opt, val) != CURLE_OK) {               \
            return ftp_api->error_set(err, KILN_EINTERNAL,                     \
                                      "libcurl refused option " #opt);         \
        }                                                                      \
    } while (0)

int
ftp_slot_prepare(const ftp_state *st, ftp_slot *s, const char *url,
                 kiln_error *err)
{
    ftp_slot_stop(s);
    /* Reset keeps the multi's cached connection and the TLS session
     * cache; only the options go. */
    curl_easy_reset(s->easy);
    curl_slist_free_all(s->quote);
    s->quote = NULL;
    s->is_done = false;
    s->result = CURLE_OK;
    s->errbuf[0] = '\0';
    s->reply[0] = '\0';
    s->prev_reply[0] = '\0';
    s->reply_code = 0;
    s->in_multiline = false;
    s->saw_350 = false;
    s->has_reply = false;

    FTP_SET(s, CURLOPT_URL, url);
    FTP_SET(s, CURLOPT_PROTOCOLS_STR, "ftp,ftps");
    FTP_SET(s, CURLOPT_NOSIGNAL, 1L);
    /* No proxy from ftp_proxy or all_proxy: none is configured. */
    FTP_SET(s, CURLOPT_PROXY, "");
    FTP_SET(s, CURLOPT_ERRORBUFFER, s->errbuf);
    FTP_SET(s, CURLOPT_HEADERFUNCTION, ftp_on_reply);
    FTP_SET(s, CURLOPT_HEADERDATA, s);
    FTP_SET(s, CURLOPT_WRITEFUNCTION, ftp_discard);
    if (st->username != NULL) {
        FTP_SET(s, CURLOPT_USERNAME, st->username);
        FTP_SET(s, CURLOPT_PASSWORD, st->password != NULL ? st->password : "");
    }
    /* Passive mode (EPSV, then PASV), and the PASV reply's address is
     * ignored in favour of the control connection's, so a server behind
     * NAT works and cannot point the data connection elsewhere. */
    FTP_SET(s, CURLOPT_FTP_USE_EPSV, 1L);
    FTP_SET(s, CURLOPT_FTP_SKIP_PASV_IP, 1L);
    FTP_SET(s, CURLOPT_TRANSFERTEXT, 0L);
    /* One CWD into the file's directory (two on a reused connection,
     * which goes back to the login directory first); uploads, which may
     * have to create directories, switch to one CWD per level. */
    FTP_SET(s, CURLOPT_FTP_FILEMETHOD, (long)CURLFTPMETHOD_SINGLECWD);
    FTP_SET(s, CURLOPT_CONNECTTIMEOUT, st->timeout);
    FTP_SET(s, CURLOPT_SERVER_RESPONSE_TIMEOUT, st->timeout);
    /* No CURLOPT_LOW_SPEED_*: libcurl 7.88 keeps counting while an
     * upload is paused, so a STOR opened before a long encode would time
     * out at its first byte. ftp_slot_run() counts only the time it
     * waits itself. */
    s->stall_us = (int64_t)st->timeout * 1000000;
    FTP_SET(s, CURLOPT_TCP_KEEPALIVE, 1L);
    if (st->use_tls) {
        /* Explicit TLS: AUTH TLS, then PBSZ 0 and PROT P, so both the
         * control and the data connections are encrypted. */
        FTP_SET(s, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        FTP_SET(s, CURLOPT_FTPSSLAUTH, (long)CURLFTPAUTH_TLS);
    }
    FTP_SET(s, CURLOPT_SSL_VERIFYPEER, st->tls_verify ? 1L : 0L);
    FTP_SET(s, CURLOPT_SSL_VERIFYHOST, st->tls_verify ? 2L : 0L);
    if (st->ca_file != NULL) {
        FTP_SET(s, CURLOPT_CAINFO, st->ca_file);
    }
    return KILN_OK;
}

int
ftp_slot_postquote(ftp_slot *s, const char *const *cmds, size_t n,
                   kiln_error *err)
{
    curl_slist_free_all(s->quote);
    s->quote = NULL;
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *l = curl_slist_append(s->quote, cmds[i]);

        if (l == NULL) {
            return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        }
        s->quote = l;
    }
    FTP_SET(s, CURLOPT_POSTQUOTE, s->quote);
    return KILN_OK;
}

int
ftp_slot_start(ftp_slot *s, kiln_error *err)
{
    CURLMcode mc = curl_multi_add_handle(s->multi, s->easy);

    if (mc != CURLM_OK) {
        return ftp_api->error_set(err, KILN_EIO, "cannot start a transfer: %s",
                                  curl_multi_strerror(mc));
    }
    s->is_added = true;
    return KILN_OK;
}

void
ftp_slot_stop(ftp_slot *s)
{
    if (s->is_added) {
        curl_multi_remove_handle(s->multi, s->easy);
        s->is_added = false;
    }
}

/* One round of curl_multi_perform; notes the end of the transfer. */
static void
ftp_slot_step(ftp_slot *s)
{
    int running = 0;
    int left = 0;
    CURLMsg *m;
    CURLMcode mc = curl_multi_perform(s->multi, &running);

    if (mc != CURLM_OK) {
        s->is_done = true;
        s->result =
            mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_SEND_ERROR;
        snprintf(s->errbuf, sizeof s->errbuf, "%s", curl_multi_strerror(mc));
        return;
    }
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == s->easy) {
            s->is_done = true;
            s->result = m->data.result;
        }
    }
}

static int64_t
ftp_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool
ftp_slot_run(ftp_slot *s, bool (*ready)(void *), void *arg)
{
    int64_t last = ftp_now_us();
    int spins = 0;

    for (;;) {
        int64_t t0;
        int numfds = 0;

        if (!s->is_done) {
            ftp_slot_step(s);
        }
        if (s->is_done || (ready != NULL && ready(arg))) {
            return s->is_done;
        }
        /* curl_multi_wait, not _poll: libcurl 7.88 sometimes reads the
         * EPSV reply and then, with the data connection not yet begun,
         * offers no socket and no timer (seen on reused connections);
         * _poll would sleep its whole timeout there, _wait returns at
         * once. A wait that keeps returning at once without activity
         * is slowed to 1 ms steps so it cannot spin. */
        t0 = ftp_now_us();
        if (curl_multi_wait(s->multi, NULL, 0, FTP_POLL_MS, &numfds) !=
            CURLM_OK) {
            s->is_done = true;
            s->result = CURLE_RECV_ERROR;
            return true;
        }
        if (numfds > 0) {
            last = ftp_now_us();
            spins = 0;
            continue;
        }
        if (ftp_now_us() - last >= s->stall_us) {
            /* Nothing moved on any of the transfer's sockets. */
            s->is_done = true;
            s->result = CURLE_OPERATION_TIMEDOUT;
            snprintf(s->errbuf, sizeof s->errbuf, "no progress for %lld s",
                     (long long)(s->stall_us / 1000000));
            return true;
        }
        if (ftp_now_us() - t0 < 1000 && ++spins > 2) {
            struct timespec pause = {0, 1000000};

            nanosleep(&pause, NULL);
        }
    }
}

CURLcode
ftp_slot_perform(ftp_slot *s)
{
    kiln_error ignored;

    if (ftp_slot_start(s, &ignored) != KILN_OK) {
        s->result = CURLE_FAILED_INIT;
        return s->result;
    }
    ftp_slot_run(s, NULL, NULL);
    ftp_slot_stop(s);
    return s->result;
}
