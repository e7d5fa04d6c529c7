/*
 * The connection guard of the "api-http" service, against clients that
 * hold connections without finishing requests (slowloris). It caps
 * connections per client address and in total, keeps a small reserve so
 * GET /health and GET /metrics answer while the caps are full, and closes
 * a connection whose request header or body is not whole by its deadline.
 * server.c wires it to the daemon; request.c reports each request's
 * progress and asks whether its connection is a reserve one.
 */
#define _GNU_SOURCE /* pthread_condattr_setclock */

#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Why deadlines of our own: libmicrohttpd's MHD_OPTION_CONNECTION_TIMEOUT
 * counts idle time only, so a client sending one header line every few
 * seconds keeps a connection for ever, and a thousand such clients took
 * every connection (issue "hostile clients": /health timed out for 40 s).
 * libmicrohttpd has no option for a deadline from a request's start, so a
 * sweeper thread looks at every connection HTTP_SWEEP_MS and shuts down
 * (shutdown(2), not close: the descriptor stays libmicrohttpd's) those
 * past their deadline; the daemon then sees end of file and closes them.
 * libmicrohttpd calls MHD_CONNECTION_NOTIFY_CLOSED before it closes the
 * descriptor (daemon.c, MHD_cleanup_connections, 0.9.75), and that
 * callback takes the guard's mutex to unlink the connection, so the
 * sweeper, which holds the mutex while it calls shutdown(), never touches
 * a descriptor that was closed (and maybe reused). */
#define HTTP_SWEEP_MS 100

/* The reserve: when a new connection finds the caps full (in total or
 * for its address) it may still take one of HTTP_RESERVE extra places,
 * on which only GET /health and GET /metrics are answered, each answer
 * closes the connection, and the header must be whole within
 * HTTP_RESERVE_HEADER_S. When the reserve is full too, its oldest
 * connection still waiting for a header is shut to make room: an attacker
 * holding the reserve then only churns it, while a monitor's request,
 * sent whole at once, is answered within milliseconds. A connection that
 * finds no place at all is shut at once. We count per address ourselves
 * rather than with MHD_OPTION_PER_IP_CONNECTION_LIMIT because that one
 * refuses a monitor whose address an attacker shares before we could put
 * it in the reserve. */
#define HTTP_RESERVE 16
#define HTTP_RESERVE_HEADER_S 2.0

/* Address counts live in a chained table of this many buckets; it holds
 * at most one entry per counted connection. */
#define HTTP_ADDR_BUCKETS 1024
#define HTTP_ADDR_LEN 9 /* family (4 or 6), then 4 or 8 address bytes */

typedef struct http_addr {
    struct http_addr *next;
    unsigned char key[HTTP_ADDR_LEN];
    unsigned n; /* counted connections from here */
} http_addr;

/* One connection, from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED; in the
 * connection's socket context. */
struct http_conn {
    struct http_conn *prev, *next;
    http_guard *guard;
    http_addr *addr; /* NULL: not counted (a reserve connection) */
    MHD_socket fd;
    http_phase phase;
    double start;    /* when the phase's deadline began */
    bool is_reserve; /* on a reserve place (see HTTP_RESERVE) */
    bool is_shut;    /* shut down by us; the daemon will close it */
    bool is_counted; /* in n_normal or n_reserve */
};

struct http_guard {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t sweeper;
    bool has_sweeper;
    bool is_stopping;
    kiln_http_settings set;
    http_conn *head, *tail; /* oldest first */
    http_addr *addrs[HTTP_ADDR_BUCKETS];
    uint64_t seed;
    unsigned n_normal;  /* counted against max_connections */
    unsigned n_reserve; /* reserve places taken */
};

static double
http_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The key of a client address (an IPv6 client is its /64, as a host
 * usually holds one); false for another family. */
static bool
http_addr_key(const struct sockaddr *sa, unsigned char key[HTTP_ADDR_LEN])
{
    memset(key, 0, HTTP_ADDR_LEN);
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a =
            ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};

        if (memcmp(a, mapped, sizeof mapped) == 0) {
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a, 8);
        }
        return true;
    }
    return false;
}

static http_addr **
http_addr_chain(http_guard *g, const unsigned char key[HTTP_ADDR_LEN])
{
    uint64_t h = 1469598103934665603ull ^ g->seed;

    for (size_t i = 0; i < HTTP_ADDR_LEN; i++) {
        h = (h ^ key[i]) * 1099511628211ull;
    }
    h ^= h >> 31;
    return &g->addrs[h % HTTP_ADDR_BUCKETS];
}

/* The entry of `key`, added with a count of 0 when new; NULL when out of
 * memory. Called with the mutex held. */
static http_addr *
http_addr_get(http_guard *g, const unsigned char key[HTTP_ADDR_LEN])
{
    http_addr **chain = http_addr_chain(g, key);
    http_addr *a;

    for (a = *chain; a != NULL; a = a->next) {
        if (memcmp(a->key, key, HTTP_ADDR_LEN) == 0) {
            return a;
        }
    }
    a = calloc(1, sizeof(*a));
    if (a != NULL) {
        memcpy(a->key, key, HTTP_ADDR_LEN);
        a->next = *chain;
        *chain = a;
    }
    return a;
}

/* Drops the entry when nothing counts on it any more. */
static void
http_addr_put(http_guard *g, http_addr *a)
{
    http_addr **p;

    if (a->n > 0) {
        return;
    }
    for (p = http_addr_chain(g, a->key); *p != NULL; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            free(a);
            return;
        }
    }
}

/* Shuts a connection down (the daemon sees end of file and closes it) and
 * gives its place back at once. Called with the mutex held, so the
 * descriptor is still open (see HTTP_SWEEP_MS). */
static void
http_conn_shut(http_guard *g, http_conn *c)
{
    if (!c->is_shut) {
        c->is_shut = true;
        (void)shutdown(c->fd, SHUT_RDWR);
    }
    if (c->is_counted) {
        c->is_counted = false;
        if (c->is_reserve) {
            g->n_reserve--;
        } else {
            g->n_normal--;
            c->addr->n--;
            http_addr_put(g, c->addr);
            c->addr = NULL;
        }
    }
}

/* The deadline of a connection in its phase, or 0 for none. */
static double
http_deadline(const http_guard *g, const http_conn *c)
{
    switch (c->phase) {
    case HTTP_PHASE_HEADER:
        if (c->is_reserve && g->set.header_timeout > HTTP_RESERVE_HEADER_S) {
            return c->start + HTTP_RESERVE_HEADER_S;
        }
        return c->start + g->set.header_timeout;
    case HTTP_PHASE_BODY:
        return c->start + g->set.body_timeout;
    case HTTP_PHASE_IDLE:
        return c->start + g->set.idle_timeout;
    case HTTP_PHASE_ANSWER:
    default:
        return 0;
    }
}

static void *
http_sweep(void *arg)
{
    http_guard *g = arg;
    struct timespec until;

    pthread_mutex_lock(&g->mu);
    while (!g->is_stopping) {
        double now = http_now();
        double deadline;
        http_conn *c;

        for (c = g->head; c != NULL; c = c->next) {
            if (c->is_shut) {
                continue;
            }
            deadline = http_deadline(g, c);
            if (deadline > 0 && now >= deadline) {
                http_conn_shut(g, c);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += HTTP_SWEEP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&g->wake, &g->mu, &until);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int
http_guard_new(const kiln_http_settings *set, http_guard **out, kiln_error *err)
{
    pthread_condattr_t attr;
    http_guard *g;
    int rc;

    *out = NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    g->set = *set;
    if (getrandom(&g->seed, sizeof(g->seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(g->seed)) {
        g->seed = (uint64_t)(uintptr_t)g ^ (uint64_t)time(NULL);
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    rc = pthread_create(&g->sweeper, NULL, http_sweep, g);
    if (rc != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return http_api->error_set(err, KILN_EIO,
                                   "cannot start the connection sweeper: %s",
                                   strerror(rc));
    }
    g->has_sweeper = true;
    *out = g;
    return KILN_OK;
}

void
http_guard_free(http_guard *g)
{
    size_t i;

    if (g == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->is_stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    if (g->has_sweeper) {
        pthread_join(g->sweeper, NULL);
    }
    /* The daemon is stopped: every connection was closed and unlinked.
     * Anything left would be a bug; free it all the same. */
    while (g->head != NULL) {
        http_conn *c = g->head;

        g->head = c->next;
        free(c);
    }
    for (i = 0; i < HTTP_ADDR_BUCKETS; i++) {
        while (g->addrs[i] != NULL) {
            http_addr *a = g->addrs[i];

            g->addrs[i] = a->next;
            free(a);
        }
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

unsigned
http_guard_daemon_limit(const kiln_http_settings *set)
{
    /* Shut connections keep their place in the daemon until it has
     * closed them, a few milliseconds later: room for a reserve's worth
     * of them beside the places we hand out. */
    return set->max_connections + 2 * HTTP_RESERVE;
}

/* Finds a place for a new connection, with the mutex held: a counted one,
 * else a reserve one (making room by shutting the oldest reserve
 * connection still in its header), else none (false). */
static bool
http_guard_admit(http_guard *g, http_conn *c, const unsigned char *key)
{
    http_addr *a = key != NULL ? http_addr_get(g, key) : NULL;
    http_conn *old;

    if (a != NULL && g->n_normal < g->set.max_connections &&
        a->n < g->set.max_connections_per_address) {
        a->n++;
        g->n_normal++;
        c->addr = a;
        c->is_counted = true;
        return true;
    }
    if (a != NULL) {
        http_addr_put(g, a);
    }
    if (g->n_reserve >= HTTP_RESERVE) {
        for (old = g->head; old != NULL; old = old->next) {
            if (old->is_reserve && old->is_counted &&
                old->phase == HTTP_PHASE_HEADER) {
                http_conn_shut(g, old);
                break;
            }
        }
    }
    if (g->n_reserve < HTTP_RESERVE) {
        g->n_reserve++;
        c->is_reserve = true;
        c->is_counted = true;
        return true;
    }
    return false;
}

void
http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode toe)
{
    http_guard *g = ((http_server *)cls)->guard;
    const union MHD_ConnectionInfo *info;
    unsigned char key[HTTP_ADDR_LEN];
    bool has_key = false;
    http_conn *c;

    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        c = *socket_context;
        if (c == NULL) {
            return;
        }
        pthread_mutex_lock(&g->mu);
        c->is_shut = true; /* nothing may touch the descriptor now */
        http_conn_shut(g, c);
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            g->head = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        } else {
            g->tail = c->prev;
        }
        pthread_mutex_unlock(&g->mu);
        free(c);
        *socket_context = NULL;
        return;
    }

    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Unguarded connections are what this file is against. */
        (void)shutdown(info->connect_fd, SHUT_RDWR);
        return;
    }
    c->guard = g;
    c->fd = info->connect_fd;
    c->phase = HTTP_PHASE_HEADER;
    c->start = http_now();
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info != NULL) {
        has_key = http_addr_key(info->client_addr, key);
    }

    pthread_mutex_lock(&g->mu);
    c->prev = g->tail;
    if (g->tail != NULL) {
        g->tail->next = c;
    } else {
        g->head = c;
    }
    g->tail = c;
    if (!http_guard_admit(g, c, has_key ? key : NULL)) {
        http_conn_shut(g, c);
    }
    pthread_mutex_unlock(&g->mu);
    *socket_context = c;
}

/* The guard's record of a connection, or NULL. */
static http_conn *
http_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info != NULL ? info->socket_context : NULL;
}

void
http_guard_phase(struct MHD_Connection *conn, http_phase phase)
{
    http_conn *c = http_conn_of(conn);

    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->guard->mu);
    /* A kept-alive connection's next request starts when its request
     * line has arrived; the first one's when the connection opened. The
     * body's deadline runs from the same start as the header's. */
    if (phase == HTTP_PHASE_IDLE ||
        (phase == HTTP_PHASE_HEADER && c->phase == HTTP_PHASE_IDLE)) {
        c->start = http_now();
    }
    if (phase != HTTP_PHASE_HEADER || c->phase == HTTP_PHASE_IDLE) {
        c->phase = phase;
    }
    pthread_mutex_unlock(&c->guard->mu);
}

bool
http_guard_is_reserve(struct MHD_Connection *conn)
{
    http_conn *c = http_conn_of(conn);
    bool is_reserve;

    if (c == NULL) {
        return false;
    }
    pthread_mutex_lock(&c->guard->mu);
    is_reserve = c->is_reserve;
    pthread_mutex_unlock(&c->guard->mu);
    return is_reserve;
}

void *
http_guard_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    http_guard_phase(conn, HTTP_PHASE_HEADER);
    /* The request's state, with its query string: MHD hands the access
     * handler the path alone. */
    return http_request_new(uri);
}
