/*
 * The "ftp" storage backend: a service's files on an FTP or FTPS server,
 * under the base directory of the url setting. This file declares the
 * plugin and its settings, opens and closes a service's storage, maps a
 * job's path to URLs confined under the base, and turns libcurl failures
 * into kiln errors. Transfers live in conn.c, read.c and write.c.
 */
#define _GNU_SOURCE /* explicit_bzero */

#include "ftp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest job path accepted, in bytes. */
#define FTP_PATH_MAX 4096

static int ftp_init(kiln_plugin *self, const kiln_host_api *api,
                    kiln_error *err);
static void ftp_fini(kiln_plugin *self);
static int ftp_open(kiln_plugin *self, const void *settings, void **state,
                    kiln_error *err);
static void ftp_close(void *state);

const kiln_host_api *ftp_api;

static const char *const ftp_tls_modes[] = {"auto", "explicit", "implicit",
                                            NULL};

static const kiln_param_spec ftp_settings_spec[] = {
    KILN_P_STRING(ftp_settings, url, NULL,
                  "server and base directory: ftp://host:port/base/ (plain) "
                  "or ftps://host:port/base/ (TLS); every path resolves "
                  "under the base",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1),
    KILN_P_STRING(ftp_settings, username, NULL,
                  "account to log in as (anonymous login when absent)",
                  .flags = 0, .min_len = 1),
    KILN_P_STRING(ftp_settings, password, NULL, "the account's password",
                  .flags = KILN_PARAM_SECRET),
    KILN_P_ENUM(ftp_settings, tls_mode, ftp_tls_modes, FTP_TLS_AUTO,
                "for ftps:// urls: explicit (AUTH TLS, RFC 4217), implicit "
                "(TLS from the first byte) or auto (implicit on port 990, "
                "explicit elsewhere)",
                .flags = 0),
    KILN_P_BOOL(ftp_settings, tls_verify, true,
                "check the server's certificate and host name (turn off "
                "only for a test server)",
                .flags = 0),
    KILN_P_STRING(ftp_settings, ca_file, NULL,
                  "PEM file with the CA certificates to trust instead of "
                  "the system's (a private CA)",
                  .flags = 0, .min_len = 1),
    KILN_P_NUMBER(ftp_settings, timeout, 1, 3600, 30,
                  "seconds allowed to connect, for each server reply, and "
                  "without progress during a transfer",
                  .flags = KILN_PARAM_INTEGER),
};

static const kiln_storage ftp_storage = {
    .size = sizeof(kiln_storage),
    .name = "ftp",
    .summary = "files on an FTP or FTPS server, under a base directory",
    .settings_size = sizeof(ftp_settings),
    .settings = ftp_settings_spec,
    .n_settings = KILN_N_ELEMENTS(ftp_settings_spec),
    .open = ftp_open,
    .close = ftp_close,
    .open_read = ftp_open_read,
    .open_write = ftp_open_write,
    .commit = ftp_commit,
    .abort = ftp_abort,
};

KILN_PLUGIN_DEFINE("storage-ftp", KILN_VERSION_STRING,
                   "FTP and FTPS storage through libcurl: streamed reads, "
                   "uploads renamed into place",
                   ftp_init, ftp_fini);

static int
ftp_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    ftp_api = api;
    /* Reference counted and, since libcurl 7.84, thread-safe; the core
     * calls it too. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return api->error_set(err, KILN_EINTERNAL, "cannot initialise libcurl");
    }
    int rc = api->register_storage(self, &ftp_storage, err);
    if (rc != KILN_OK) {
        curl_global_cleanup();
    }
    return rc;
}

static void
ftp_fini(kiln_plugin *self)
{
    (void)self;
    ftp_live_detach_all();
    curl_global_cleanup();
}

const char *
ftp_quote(char out[FTP_QUOTE_MAX], const char *s)
{
    return ftp_api->quote(out, FTP_QUOTE_MAX, s);
}

bool
ftp_grow(unsigned char **p, size_t *cap, size_t need, size_t limit)
{
    size_t c = *cap == 0 ? 16384 : *cap;
    unsigned char *q;

    if (need <= *cap) {
        return true;
    }
    while (c < need) {
        c *= 2;
    }
    if (limit > 0 && c > limit) {
        c = limit;
    }
    q = realloc(*p, c);
    if (q == NULL) {
        return false;
    }
    *p = q;
    *cap = c;
    return true;
}

int64_t
ftp_seek_to(int64_t pos, int64_t size, int64_t offset, int whence)
{
    int64_t to;

    switch (whence) {
    case SEEK_SET:
        to = offset;
        break;
    case SEEK_CUR:
        to = pos + offset;
        break;
    case SEEK_END:
        to = size < 0 ? -1 : size + offset;
        break;
    default:
        to = -1;
        break;
    }
    return to < 0 ? -1 : to;
}

/* True when libcurl was built with protocol `name`. */
static bool
ftp_curl_has(const char *name)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

    for (const char *const *p = v->protocols; p != NULL && *p != NULL; p++) {
        if (strcmp(*p, name) == 0) {
            return true;
        }
    }
    return false;
}

/* A CURLU part, or NULL when absent; free with curl_free. */
static char *
ftp_url_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;

    if (curl_url_get(u, what, &v, 0) != CURLUE_OK) {
        return NULL;
    }
    return v;
}

/* Checks the url setting and fills st->base, st->use_tls; the URL curl
 * gets uses the ftps scheme only for implicit TLS. */
static int
ftp_parse_url(ftp_state *st, const ftp_settings *s, kiln_error *err)
{
    char q[FTP_QUOTE_MAX];
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *part = NULL;
    char *port = NULL;
    char *path = NULL;
    char *full = NULL;
    bool is_ftps;
    bool implicit = false;
    long port_n;
    int rc = KILN_OK;

    if (u == NULL) {
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    ftp_quote(q, s->url);
    if (curl_url_set(u, CURLUPART_URL, s->url, 0) != CURLUE_OK ||
        (scheme = ftp_url_part(u, CURLUPART_SCHEME)) == NULL) {
        rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                      "%s is not a valid URL (expected "
                                      "ftp://host:port/base/ or "
                                      "ftps://host:port/base/)",
                                      q);
        goto done;
    }
    is_ftps = strcmp(scheme, "ftps") == 0;
    if (!is_ftps && strcmp(scheme, "ftp") != 0) {
        rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                      "%s is not an FTP URL (expected "
                                      "ftp://host:port/base/ or "
                                      "ftps://host:port/base/)",
                                      q);
        goto done;
    }
    /* Credentials in the URL would be printed wherever the URL is:
     * they belong in username and password (a secret). Not quoted. */
    if ((part = ftp_url_part(u, CURLUPART_USER)) != NULL ||
        (part = ftp_url_part(u, CURLUPART_PASSWORD)) != NULL) {
        rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                      "the url holds a user name or "
                                      "password (expected them in the "
                                      "username and password settings)");
        goto done;
    }
    if ((part = ftp_url_part(u, CURLUPART_QUERY)) != NULL ||
        (part = ftp_url_part(u, CURLUPART_FRAGMENT)) != NULL) {
        rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                      "%s has a query or fragment (expected "
                                      "ftp://host:port/base/)",
                                      q);
        goto done;
    }
    if ((part = ftp_url_part(u, CURLUPART_HOST)) == NULL || part[0] == '\0') {
        rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                      "%s names no host (expected "
                                      "ftp://host:port/base/)",
                                      q);
        goto done;
    }

    port = ftp_url_part(u, CURLUPART_PORT); /* NULL: not written */
    port_n = port != NULL ? strtol(port, NULL, 10) : 0;
    if (is_ftps) {
        implicit = s->tls_mode == FTP_TLS_IMPLICIT ||
                   (s->tls_mode == FTP_TLS_AUTO && port_n == 990);
        if (!ftp_curl_has(implicit ? "ftps" : "ftp") ||
            !(curl_version_info(CURLVERSION_NOW)->features &
              CURL_VERSION_SSL)) {
            rc = ftp_api->error_set_param(err, KILN_EINVAL, "url",
                                          "%s needs TLS, which this "
                                          "libcurl lacks (expected a "
                                          "libcurl built with TLS)",
                                          q);
            goto done;
        }
    } else {
        if (s->tls_mode != FTP_TLS_AUTO) {
            rc = ftp_api->error_set_param(err, KILN_EINVAL, "tls_mode",
                                          "tls_mode \"%s\" given for the "
                                          "plain FTP url %s (expected an "
                                          "ftps:// url)",
                                          ftp_tls_modes[s->tls_mode], q);
            goto done;
        }
        if (s->ca_file != NULL) {
            rc = ftp_api->error_set_param(err, KILN_EINVAL, "ca_file",
                                          "ca_file given for the plain FTP "
                                          "url %s, which uses no TLS "
                                          "(expected an ftps:// url)",
                                          q);
            goto done;
        }
    }
    /* Curl's ftps:// means implicit TLS; explicit TLS is an ftp:// URL
     * with CURLOPT_USE_SSL. The port is written out so that changing
     * the scheme does not change it. */
    if (curl_url_set(u, CURLUPART_SCHEME, implicit ? "ftps" : "ftp", 0) !=
            CURLUE_OK ||
        (port == NULL &&
         curl_url_set(u, CURLUPART_PORT, implicit ? "990" : "21", 0) !=
             CURLUE_OK) ||
        (path = ftp_url_part(u, CURLUPART_PATH)) == NULL) {
        rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    if (path[0] == '\0' || path[strlen(path) - 1] != '/') {
        size_t n = strlen(path);
        char *p = malloc(n + 2);

        if (p == NULL) {
            rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
            goto done;
        }
        memcpy(p, path, n);
        p[n] = '/';
        p[n + 1] = '\0';
        curl_free(path);
        path = NULL;
        if (curl_url_set(u, CURLUPART_PATH, p, 0) != CURLUE_OK) {
            free(p);
            rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
            goto done;
        }
        free(p);
    }
    if ((full = ftp_url_part(u, CURLUPART_URL)) == NULL ||
        (st->base = strdup(full)) == NULL) {
        rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    st->use_tls = is_ftps && !implicit;

done:
    curl_free(full);
    curl_free(path);
    curl_free(port);
    curl_free(part);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

void
ftp_state_unref(ftp_state *st)
{
    if (st == NULL || !g_atomic_int_dec_and_test(&st->refs)) {
        return;
    }
    while (st->idle != NULL) {
        ftp_slot *s = st->idle;

        st->idle = s->next;
        ftp_slot_free(s);
    }
    if (st->password != NULL) {
        explicit_bzero(st->password, strlen(st->password));
    }
    free(st->password);
    free(st->username);
    free(st->ca_file);
    free(st->display);
    free(st->base);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* No connection is made here: a server that is down when kiln starts
 * fails the first job that needs it, not the start-up. */
static int
ftp_open(kiln_plugin *self, const void *settings, void **state, kiln_error *err)
{
    (void)self; /* a backend that makes no host call outside init */
    const ftp_settings *s = settings;
    char q[FTP_QUOTE_MAX];
    ftp_state *st;
    int rc;

    *state = NULL;
    if (s->password != NULL && s->username == NULL) {
        return ftp_api->error_set_param(err, KILN_EINVAL, "password",
                                        "a password is given without a "
                                        "username (expected both, or "
                                        "neither for anonymous login)");
    }
    if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0) {
        return ftp_api->error_set_param(err, KILN_EINVAL, "ca_file",
                                        "cannot read ca_file %s (expected "
                                        "a readable PEM file)",
                                        ftp_quote(q, s->ca_file));
    }
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->refs = 1;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    rc = ftp_parse_url(st, s, err);
    if (rc != KILN_OK) {
        ftp_state_unref(st);
        return rc;
    }
    st->display = strdup(s->url);
    st->username = s->username != NULL ? strdup(s->username) : NULL;
    st->password = s->password != NULL ? strdup(s->password) : NULL;
    st->ca_file = s->ca_file != NULL ? strdup(s->ca_file) : NULL;
    if (st->display == NULL || (s->username != NULL && !st->username) ||
        (s->password != NULL && !st->password) ||
        (s->ca_file != NULL && !st->ca_file)) {
        ftp_state_unref(st);
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->tls_verify = s->tls_verify;
    st->timeout = (long)s->timeout;
    *state = st;
    return KILN_OK;
}

static void
ftp_close(void *state)
{
    ftp_state_unref(state);
}

/* A growable string for URLs. */
typedef struct ftp_buf {
    char *p;
    size_t len, cap;
    bool is_oom;
} ftp_buf;

static void
ftp_buf_add(ftp_buf *b, const char *s, size_t n)
{
    if (b->is_oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 128 : b->cap;
        char *p;

        while (b->len + n + 1 > cap) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->is_oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Adds `s` (n bytes) URL-escaped: curl decodes each segment back into
 * the argument of CWD, RETR or STOR, so any byte survives. */
static void
ftp_buf_add_escaped(ftp_buf *b, const char *s, size_t n)
{
    char *e = curl_easy_escape(NULL, s, (int)n);

    if (e == NULL) {
        b->is_oom = true;
        return;
    }
    ftp_buf_add(b, e, strlen(e));
    curl_free(e);
}

char *
ftp_url_join(const char *dir_url, const char *name)
{
    ftp_buf b = {0};

    ftp_buf_add(&b, dir_url, strlen(dir_url));
    ftp_buf_add_escaped(&b, name, strlen(name));
    if (b.is_oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int
ftp_path_split(const ftp_state *st, const char *path, char **dir_url,
               char **name, kiln_error *err)
{
    char q[FTP_QUOTE_MAX];
    const char *p;
    const char *last = NULL;
    size_t last_n = 0;
    size_t len;
    ftp_buf b = {0};

    *dir_url = NULL;
    *name = NULL;
    if (path == NULL || path[0] == '\0') {
        return ftp_api->error_set(err, KILN_EINVAL,
                                  "empty path (expected a file path such as "
                                  "\"/in/a.jpg\")");
    }
    len = strlen(path);
    if (len > FTP_PATH_MAX) {
        return ftp_api->error_set(err, KILN_EINVAL,
                                  "path %s is too long (expected at most %d "
                                  "bytes)",
                                  ftp_quote(q, path), FTP_PATH_MAX);
    }
    for (p = path; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        /* CR and LF would end an FTP command early (RNFR, DELE). */
        if (c < 0x20 || c == 0x7f) {
            return ftp_api->error_set(err, KILN_EINVAL,
                                      "path %s holds a control character "
                                      "(expected printable characters)",
                                      ftp_quote(q, path));
        }
        if (c == '\\') {
            return ftp_api->error_set(err, KILN_EINVAL,
                                      "path %s holds a backslash (refused: "
                                      "some FTP servers read it as a "
                                      "directory separator)",
                                      ftp_quote(q, path));
        }
    }
    if (path[len - 1] == '/') {
        return ftp_api->error_set(err, KILN_EINVAL,
                                  "path %s ends with \"/\" (expected a file "
                                  "name after the last \"/\")",
                                  ftp_quote(q, path));
    }

    ftp_buf_add(&b, st->base, strlen(st->base));
    p = path;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

        /* ".." is refused outright: what it climbs to depends on the
         * server's idea of the current directory, not on the base. */
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(b.p);
            return ftp_api->error_set(err, KILN_EPERM,
                                      "path %s escapes the storage root "
                                      "(\"..\" is refused; expected a path "
                                      "under %s)",
                                      ftp_quote(q, path), st->display);
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (last != NULL) {
                ftp_buf_add_escaped(&b, last, last_n);
                ftp_buf_add(&b, "/", 1);
            }
            last = p;
            last_n = n;
        }
        p += n;
        while (*p == '/') {
            p++;
        }
    }
    if (last == NULL || (len >= 2 && strcmp(path + len - 2, "/.") == 0) ||
        strcmp(path, ".") == 0) {
        free(b.p);
        return ftp_api->error_set(err, KILN_EINVAL,
                                  "path %s does not name a file (expected a "
                                  "file name after the last \"/\")",
                                  ftp_quote(q, path));
    }
    *name = strndup(last, last_n);
    if (b.is_oom || *name == NULL) {
        free(b.p);
        free(*name);
        *name = NULL;
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    *dir_url = b.p;
    return KILN_OK;
}

/* Copies curl's message for s (its error buffer, else the code's text)
 * with a lower-case first word unless it is an acronym. */
static void
ftp_curl_text(const ftp_slot *s, char *out, size_t size)
{
    const char *t =
        s->errbuf[0] != '\0' ? s->errbuf : curl_easy_strerror(s->result);

    snprintf(out, size, "%s", t);
    /* "Failed to connect" -> "failed to connect", but "SSL ..." and
     * "OpenSSL/3.0: ..." stay. */
    for (size_t i = 1; out[i] != '\0' && out[i] != ' '; i++) {
        if (isupper((unsigned char)out[i])) {
            return;
        }
    }
    out[0] = (char)tolower((unsigned char)out[0]);
}

int
ftp_fail(const ftp_state *st, const ftp_slot *s, ftp_op op, const char *path,
         kiln_error *err)
{
    char qp[FTP_QUOTE_MAX];
    char qr[FTP_QUOTE_MAX];
    char qu[FTP_QUOTE_MAX];
    char qr2[FTP_QUOTE_MAX];
    char said[2 * FTP_QUOTE_MAX + 32];
    char text[CURL_ERROR_SIZE + 8];
    const char *verb = op == FTP_OP_READ ? "cannot read" : "cannot write";
    const char *prep = op == FTP_OP_READ ? "from" : "to";
    const char *step = op == FTP_OP_RENAME ? "renaming the uploaded "
                                             "temporary file into place: "
                                           : "";
    int code = KILN_EIO;
    int rc = s->reply_code;

    ftp_quote(qp, path);
    said[0] = '\0';
    if (s->prev_reply[0] != '\0') {
        snprintf(said, sizeof said, " (server said %s, then %s)",
                 ftp_quote(qr2, s->prev_reply), ftp_quote(qr, s->reply));
    } else if (s->reply[0] != '\0') {
        snprintf(said, sizeof said, " (server said %s)",
                 ftp_quote(qr, s->reply));
    }
    ftp_curl_text(s, text, sizeof text);

    switch (s->result) {
    case CURLE_LOGIN_DENIED:
        return ftp_api->error_set(
            err, KILN_EPERM,
            "%s %s %s %s: %slogin as %s refused%s (expected the username "
            "and password of an account on that server)",
            verb, qp, prep, st->display, step,
            ftp_quote(qu, st->username != NULL ? st->username : "anonymous"),
            said);
    case CURLE_REMOTE_FILE_NOT_FOUND:
        return ftp_api->error_set(err, KILN_ENOTFOUND,
                                  "%s %s %s %s: %snot "
                                  "found%s",
                                  verb, qp, prep, st->display, step, said);
    case CURLE_REMOTE_ACCESS_DENIED:
        /* A CWD failed. 550 on a read: a directory of the path is
         * missing, which is a missing file to the caller. */
        if (op == FTP_OP_READ && (rc == 550 || rc == 450)) {
            return ftp_api->error_set(err, KILN_ENOTFOUND,
                                      "%s %s %s %s: not found%s", verb, qp,
                                      prep, st->display, said);
        }
        return ftp_api->error_set(err, KILN_EPERM,
                                  "%s %s %s %s: %scannot enter%s its "
                                  "directory%s",
                                  verb, qp, prep, st->display, step,
                                  op == FTP_OP_WRITE ? " or create" : "", said);
    case CURLE_UPLOAD_FAILED:
    case CURLE_QUOTE_ERROR:
        /* 452/552: out of space, a storage failure; other refusals
         * (550 permission denied, 553 name not allowed) are policy. */
        code = rc >= 500 && rc != 552 ? KILN_EPERM : KILN_EIO;
        return ftp_api->error_set(err, code,
                                  "%s %s %s %s: %sthe server "
                                  "refused%s",
                                  verb, qp, prep, st->display, step, said);
    case CURLE_USE_SSL_FAILED:
        return ftp_api->error_set(
            err, KILN_EIO,
            "%s %s %s %s: the server refused TLS (AUTH TLS)%s (expected an "
            "FTPS server; tls_mode \"implicit\" suits servers that speak TLS "
            "from the first byte, an ftp:// url plain FTP)",
            verb, qp, prep, st->display, said);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return ftp_api->error_set(
            err, KILN_EIO,
            "%s %s %s %s: the server's TLS certificate is not trusted: %s "
            "(expected a certificate from a trusted CA: set ca_file to the "
            "CA that signed it, or tls_verify false for a test server)",
            verb, qp, prep, st->display, text);
    case CURLE_SSL_CONNECT_ERROR:
        return ftp_api->error_set(err, KILN_EIO,
                                  "%s %s %s %s: TLS handshake failed: %s "
                                  "(check tls_mode: \"explicit\" for AUTH "
                                  "TLS, \"implicit\" for TLS from the first "
                                  "byte)",
                                  verb, qp, prep, st->display, text);
    case CURLE_OPERATION_TIMEDOUT:
        return ftp_api->error_set(
            err, KILN_EIO,
            "%s %s %s %s: %stimed out: %s%s (the timeout setting is %ld "
            "s)%s",
            verb, qp, prep, st->display, step, text, said, st->timeout,
            s->has_reply ? ""
            : st->use_tls
                ? "; the server never greeted: if it speaks TLS from the "
                  "first byte, set tls_mode \"implicit\""
                : "; the server never greeted");
    case CURLE_OUT_OF_MEMORY:
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    default:
        return ftp_api->error_set(err, KILN_EIO, "%s %s %s %s: %s%s%s", verb,
                                  qp, prep, st->display, step, text, said);
    }
}
