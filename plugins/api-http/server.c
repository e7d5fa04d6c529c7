/*
 * The libmicrohttpd daemon behind the "api-http" service: start() parses
 * the configured listen address, binds exactly that address and starts the
 * daemon; stop() quiesces and stops it. Each request is handled by
 * request.c, which calls the engine through the host API.
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, sysconf */

#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Event model: a fixed pool of threads, each running its own epoll loop
 * over the connections it accepted (MHD_USE_INTERNAL_POLLING_THREAD |
 * MHD_USE_EPOLL, MHD_OPTION_THREAD_POOL_SIZE). Why: epoll keeps idle
 * keep-alive clients cheap (no thread each, no FD_SETSIZE limit) and a
 * fixed pool bounds the threads whatever the clients do. But api_call()
 * runs on the polling thread and may block (POST /request waits for the
 * job store to make the process durable), and a thread's connections wait
 * behind its call. So the pool is sized for blocking calls, not for
 * cores. Measured on 2 cores with a fake api_call that sleeps 200 ms, 16
 * keep-alive clients x 2 calls: 2 threads 5.6 s, 8 threads 1.2 s, a
 * thread per connection 0.4 s; with an instant api_call all three gave the
 * same ~8000 req/s (client-bound). Re-measure with the real job store;
 * if its calls are slow, MHD_USE_THREAD_PER_CONNECTION (with MHD_USE_POLL
 * instead of MHD_USE_EPOLL and no pool size) is a one-line change. */
#define HTTP_MIN_THREADS 8
#define HTTP_THREADS_PER_CPU 2
#define HTTP_MAX_THREADS 64

/* The "http" settings when the host gives none (every ABI 2 host has
 * config_http; kept for safety):
 * docs/config.md's defaults. */
static const kiln_http_settings http_default_settings = {
    .max_connections = 1000,
    .max_connections_per_address = 64,
    .header_timeout = 10,
    .body_timeout = 60,
    .idle_timeout = 30,
};

/* Lines of libmicrohttpd's log passed on per second (see http_log). */
#define HTTP_LOG_PER_SECOND 10

/* Descriptors the process needs besides its connections (job store,
 * epoll sets, plugins, logs), for the warning below. */
#define HTTP_FD_MARGIN 64

/* How long stop() lets requests already being answered finish (their
 * process may be accepted: the client should get its process_id), and how
 * often it looks. Requests still sending their body are not waited for. */
#define HTTP_DRAIN_MS 5000
#define HTTP_DRAIN_STEP_MS 5

static const char *http_bind_error(const struct sockaddr_storage *sa,
                                   bool is_ipv6, char *buf, size_t size);
static void http_log(void *cls, const char *fmt, va_list ap);
static void http_drain(http_server *s);
static void http_check_fd_limit(const kiln_http_settings *set);

int
http_start(kiln_engine *engine, const void *settings, void **state,
           kiln_error *err)
{
    const http_service_settings *set = settings;
    const char *listen = http_api->config_listen(engine);
    struct sockaddr_storage sa;
    bool is_ipv6 = false;
    uint16_t port = 0;
    unsigned flags;
    unsigned n_threads;
    long n_cpus;
    http_server *s;

    *state = NULL;
    if (listen == NULL ||
        http_parse_listen(listen, &sa, &is_ipv6, &port) != 0) {
        return http_api->error_set(
            err, KILN_EINVAL,
            "invalid listen address \"%.100s\" (expected IPV4:PORT or "
            "[IPV6]:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)",
            listen != NULL ? listen : "");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    s->engine = engine;
    atomic_init(&s->n_answering, 0);
    s->max_body = http_api->config_max_body(engine);
    snprintf(s->listen, sizeof(s->listen), "%s", listen);
    s->settings = http_default_settings;
    if (KILN_HOST_HAS(http_api, config_http)) {
        http_api->config_http(engine, &s->settings, sizeof(s->settings));
    }
    s->has_peer_call = KILN_HOST_HAS(http_api, api_call_from);
    s->has_query = http_api->abi_major == 2 && http_api->abi_minor >= 2;
    s->has_dashboard = set == NULL || set->dashboard;
    if (http_guard_new(&s->settings, &s->guard, err) != KILN_OK) {
        free(s);
        return err->code;
    }
    http_check_fd_limit(&s->settings);

    n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = HTTP_MIN_THREADS;
    if (set != NULL && set->threads >= 1) {
        n_threads = (unsigned)set->threads; /* the operator's */
    } else if (n_cpus > HTTP_MIN_THREADS / HTTP_THREADS_PER_CPU) {
        n_threads = n_cpus > HTTP_MAX_THREADS / HTTP_THREADS_PER_CPU
                        ? HTTP_MAX_THREADS
                        : (unsigned)n_cpus * HTTP_THREADS_PER_CPU;
    }

    /* MHD_USE_ITC is what MHD_quiesce_daemon() needs in this mode. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
            MHD_USE_ERROR_LOG;
    if (is_ipv6) {
        flags |= MHD_USE_IPv6; /* IPV6_V6ONLY: exactly the given address */
    }
    /* The daemon's own limit sits above the guard's caps (guard.c): the
     * guard decides who gets a place, the daemon's limit only stops
     * accepting when every place is taken. Its timeout is the idle one:
     * the deadlines from a request's start are the guard's. */
    s->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, http_access, s, MHD_OPTION_EXTERNAL_LOGGER,
        http_log, (void *)NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, n_threads, MHD_OPTION_CONNECTION_LIMIT,
        http_guard_daemon_limit(&s->settings), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->settings.idle_timeout, MHD_OPTION_NOTIFY_CONNECTION,
        http_guard_notify, (void *)s, MHD_OPTION_URI_LOG_CALLBACK,
        http_guard_uri, (void *)s, MHD_OPTION_NOTIFY_COMPLETED, http_completed,
        (void *)s, MHD_OPTION_END);
    if (s->daemon == NULL) {
        char buf[128];
        const char *why = http_bind_error(&sa, is_ipv6, buf, sizeof(buf));

        http_guard_free(s->guard);
        free(s);
        if (why != NULL) {
            return http_api->error_set(err, KILN_EIO, "cannot listen on %s: %s",
                                       listen, why);
        }
        return http_api->error_set(err, KILN_EIO,
                                   "cannot start the HTTP server on %s "
                                   "(libmicrohttpd refused, see its log)",
                                   listen);
    }
    http_api->log(http_self, KILN_LOG_INFO,
                  "listening on %s (%u threads, epoll; at most %u "
                  "connections, %u per address; header %gs, body %gs, "
                  "idle %gs; dashboard %s)",
                  listen, n_threads, s->settings.max_connections,
                  s->settings.max_connections_per_address,
                  s->settings.header_timeout, s->settings.body_timeout,
                  s->settings.idle_timeout, s->has_dashboard ? "on" : "off");
    if (http_metrics_start(s, err) != KILN_OK) {
        http_stop(s);
        return err->code;
    }
    *state = s;
    return KILN_OK;
}

void
http_stop(void *state)
{
    http_server *s = state;
    MHD_socket fd;

    if (s == NULL) {
        return;
    }
    /* Stop accepting first, let answers in progress go out, then close
     * what is open. After a quiesce the listen socket is ours, and may
     * only be closed once the daemon's threads are gone. */
    http_metrics_stop(s);
    fd = MHD_quiesce_daemon(s->daemon);
    http_drain(s);
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
    http_guard_free(s->guard);
    http_api->log(http_self, KILN_LOG_INFO, "stopped listening on %s",
                  s->listen);
    free(s);
}

/* Waits until no request is being answered, at most HTTP_DRAIN_MS. */
static void
http_drain(http_server *s)
{
    const struct timespec step = {0, HTTP_DRAIN_STEP_MS * 1000000L};
    unsigned n_left = atomic_load(&s->n_answering);
    int waited = 0;

    while (n_left > 0 && waited < HTTP_DRAIN_MS) {
        nanosleep(&step, NULL);
        waited += HTTP_DRAIN_STEP_MS;
        n_left = atomic_load(&s->n_answering);
    }
    if (n_left > 0) {
        http_api->log(http_self, KILN_LOG_WARN,
                      "stopping with %u answers unsent", n_left);
    }
}

/* Each connection holds a descriptor: with a lower RLIMIT_NOFILE the
 * caps are never reached, accept() fails instead, and the reserve for
 * /health is useless. Say so at start rather than under attack. */
static void
http_check_fd_limit(const kiln_http_settings *set)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)http_guard_daemon_limit(set) + HTTP_FD_MARGIN;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < need) {
        http_api->log(http_self, KILN_LOG_WARN,
                      "http.max_connections %u needs about %llu file "
                      "descriptors, but the limit is %llu (raise ulimit -n "
                      "or lower http.max_connections)",
                      set->max_connections, (unsigned long long)need,
                      (unsigned long long)rl.rlim_cur);
    }
}

/* Parses a decimal port, 1..65535, nothing else. */
static int
http_parse_port(const char *p, uint16_t *port)
{
    unsigned long v = 0;

    if (*p == '\0') {
        return -1;
    }
    for (; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p)) {
            return -1;
        }
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535) {
            return -1;
        }
    }
    if (v == 0) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

/* "A.B.C.D:PORT" or "[IPV6]:PORT", numeric only: binding exactly the
 * configured address must not depend on name resolution. Returns 0 and
 * fills *sa (port included), or -1. */
int
http_parse_listen(const char *text, struct sockaddr_storage *sa, bool *is_ipv6,
                  uint16_t *port)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon;
    size_t n;

    memset(sa, 0, sizeof(*sa));
    if (text[0] == '[') {
        const char *end = strchr(text, ']');

        if (end == NULL || end[1] != ':') {
            return -1;
        }
        n = (size_t)(end - text - 1);
        colon = end + 1;
        text++;
        *is_ipv6 = true;
    } else {
        colon = strchr(text, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL) {
            return -1; /* none, or a bare IPv6 address */
        }
        n = (size_t)(colon - text);
        *is_ipv6 = false;
    }
    if (n == 0 || n >= sizeof(host)) {
        return -1;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    if (http_parse_port(colon + 1, port) != 0) {
        return -1;
    }
    if (*is_ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons(*port);
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;

        a->sin_family = AF_INET;
        a->sin_port = htons(*port);
        return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
    }
}

/* libmicrohttpd does not say why it failed to start, so after a failure
 * try the bind ourselves, with the socket options MHD uses, to name the
 * cause. Returns a message (in buf or static) or NULL when binding
 * works (the failure was something else). */
static const char *
http_bind_error(const struct sockaddr_storage *sa, bool is_ipv6, char *buf,
                size_t size)
{
    int one = 1;
    int fd;
    int rc;
    int e;

    fd = socket(is_ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        e = errno;
    } else {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (is_ipv6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        rc = bind(fd, (const struct sockaddr *)sa,
                  is_ipv6 ? sizeof(struct sockaddr_in6)
                          : sizeof(struct sockaddr_in));
        e = errno;
        close(fd);
        if (rc == 0) {
            return NULL;
        }
    }
    switch (e) {
    case EADDRINUSE:
        return "address in use";
    case EACCES:
        return "permission denied (ports below 1024 need privileges)";
    case EADDRNOTAVAIL:
        return "address not available on this machine";
    case EAFNOSUPPORT:
        return "address family not supported";
    default:
        snprintf(buf, size, "%s", strerror(e));
        if (buf[0] != '\0') {
            buf[0] = (char)tolower((unsigned char)buf[0]);
        }
        return buf;
    }
}

/* MHD_OPTION_EXTERNAL_LOGGER: MHD's messages go to the host's log. They
 * describe sockets and protocol errors, never header values. MHD writes
 * one for every connection closed before its request was whole, so a
 * client reconnecting as fast as the guard closes it made 20,000 lines a
 * second: at most HTTP_LOG_PER_SECOND pass each second, and the next one
 * that passes is preceded by how many were dropped. */
static void
http_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t second;
    static unsigned n_this_second;
    static unsigned long n_dropped;
    unsigned long n_report = 0;
    struct timespec now;
    char msg[512];
    size_t n;

    (void)cls;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&mu);
    if (now.tv_sec != second) {
        second = now.tv_sec;
        n_this_second = 0;
    }
    if (n_this_second >= HTTP_LOG_PER_SECOND) {
        n_dropped++;
        pthread_mutex_unlock(&mu);
        return;
    }
    n_this_second++;
    n_report = n_dropped;
    n_dropped = 0;
    pthread_mutex_unlock(&mu);
    if (n_report > 0) {
        http_api->log(http_self, KILN_LOG_WARN,
                      "%lu more messages of libmicrohttpd were not logged "
                      "(over %d a second)",
                      n_report, HTTP_LOG_PER_SECOND);
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    http_api->log(http_self, KILN_LOG_WARN, "%s", msg);
}
