/*
 * The API server's rate limits (limiter.h): a token bucket per bearer
 * token, and one per client address for failed authentications. Where
 * the job store is shared by hosts (PostgreSQL), the buckets live in it,
 * so a cluster allows the configured rate once, not once per host; each
 * call then costs one round trip to the database. Otherwise, and
 * whenever the store cannot answer (the limit still holds, per host),
 * they live in this host's memory.
 */
#include "limiter.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One token bucket per bearer token, refilled at rate_limit.per_second up
 * to rate_limit.burst. Buckets are keyed by the token itself (an open
 * hash table that grows), so two tokens never share or reset one
 * another's bucket; only tokens that authenticated get one, so the
 * configuration bounds the table. */
typedef struct limiter_bucket {
    char *token; /* NULL: an empty slot */
    size_t len;
    uint64_t hash;
    double tokens;
    double at;
} limiter_bucket;

/* Failed authentications, one bucket per client address (an IPv4
 * address, an IPv6 /64: one host usually holds a whole /64), refilled at
 * rate_limit.failed_auth_per_second up to failed_auth_burst. Keyed by the
 * address itself, never by a hash slot. Any address may fail, so the
 * table is bounded: a bucket that has refilled is the same as none and
 * is dropped whenever the table would grow; when LIMITER_FAILED_MAX
 * addresses are all still short of their budget, a new address is
 * refused as if its own were spent (a flood from that many addresses is
 * an attack, and refusing keeps guessing slow). */
#define LIMITER_FAILED_MAX 16384
#define LIMITER_ADDR_LEN 9 /* family (4 or 6), then 4 or 8 address bytes */

typedef struct limiter_addr_bucket {
    unsigned char key[LIMITER_ADDR_LEN]; /* key[0] == 0: an empty slot */
    double tokens;
    double at;
} limiter_addr_bucket;

struct limiter {
    jobstore *store;        /* counts the buckets for every host; NULL: here */
    double store_failed_at; /* last time the store could not count */
    pthread_mutex_t mu;
    double rate, burst;               /* rate_limit.per_second, burst */
    double failed_rate, failed_burst; /* failed_auth_per_second, _burst */
    limiter_bucket *slots;
    size_t cap, used; /* cap a power of two; used at most cap / 2 */
    limiter_addr_bucket *failed;
    size_t failed_cap, failed_used; /* likewise */
    double failed_full_at; /* when a rebuild last found it full, or 0 */
    uint64_t seed;         /* so no one picks colliding addresses */
};

limiter *
limiter_new(const kiln_config *c, jobstore *store)
{
    limiter *l = calloc(1, sizeof *l);
    if (l != NULL) {
        l->store = c->rate_per_host ? NULL : store;
        l->rate = c->rate_per_second;
        l->burst = c->rate_burst;
        l->failed_rate = c->failed_auth_per_second;
        l->failed_burst = c->failed_auth_burst;
        pthread_mutex_init(&l->mu, NULL);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        l->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
                  (uint64_t)(uintptr_t)l;
    }
    return l;
}

void
limiter_free(limiter *l)
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
static limiter_bucket *
limiter_slot(limiter_bucket *slots, size_t cap, const char *token, size_t len,
             uint64_t hash)
{
    for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        limiter_bucket *b = &slots[i];
        if (b->token == NULL || (b->hash == hash && b->len == len &&
                                 memcmp(b->token, token, len) == 0)) {
            return b;
        }
    }
}

/* The bucket of `token`, made full when new; NULL when out of memory. */
static limiter_bucket *
limiter_bucket_of(limiter *l, const char *token, size_t len, uint64_t hash,
                  double burst, double now)
{
    if (l->cap > 0) {
        limiter_bucket *b = limiter_slot(l->slots, l->cap, token, len, hash);
        if (b->token != NULL) {
            return b;
        }
    }
    if (2 * (l->used + 1) > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        limiter_bucket *slots = calloc(cap, sizeof *slots);
        if (slots == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < l->cap; i++) {
            if (l->slots[i].token != NULL) {
                *limiter_slot(slots, cap, l->slots[i].token, l->slots[i].len,
                              l->slots[i].hash) = l->slots[i];
            }
        }
        free(l->slots);
        l->slots = slots;
        l->cap = cap;
    }
    limiter_bucket *b = limiter_slot(l->slots, l->cap, token, len, hash);
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

/* The store's key of a bucket: a kind letter and the SHA-256 of what it
 * counts, so that no token is ever written to the database. */
static void
limiter_key(char kind, const void *what, size_t len, char out[66])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(what, len, md, &md_len, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    out[0] = kind;
    for (unsigned i = 0; i < 32 && i < md_len; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[65] = '\0';
}

/* Counts in the store: true with *wait set when it answered. When it
 * cannot (a driver that does not count, or a store that is down), the
 * caller counts in memory; a store that failed is not asked again for a
 * second, and the failure is logged once a minute at most. */
static bool
limiter_shared(limiter *l, char kind, const void *what, size_t len, double rate,
               double burst, int cost, int *wait)
{
    double now = clock_ms() / 1e3;
    pthread_mutex_lock(&l->mu);
    jobstore *store = l->store;
    bool resting = l->store_failed_at > 0 && now - l->store_failed_at < 1;
    pthread_mutex_unlock(&l->mu);
    if (store == NULL || resting) {
        return false;
    }
    char key[66];
    limiter_key(kind, what, len, key);
    kiln_error err;
    err_clear(&err);
    int rc = jobstore_rate(store, key, rate, burst, cost, wait, &err);
    if (rc == KILN_OK) {
        return true;
    }
    pthread_mutex_lock(&l->mu);
    if (rc == KILN_EABI) {
        l->store = NULL; /* this driver never counts: stop asking */
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    bool log = l->store_failed_at == 0 || now - l->store_failed_at >= 60;
    l->store_failed_at = now;
    pthread_mutex_unlock(&l->mu);
    if (log) {
        log_msg(KILN_LOG_WARN, "rate_limit",
                "rate limits: the job store cannot count them (%s); "
                "this host counts its own meanwhile\n",
                err.message);
    }
    return false;
}

int
limiter_token(limiter *l, const char *token, size_t len)
{
    if (l == NULL || l->rate <= 0) {
        return 0;
    }
    int shared_wait = 0;
    if (limiter_shared(l, 't', token, len, l->rate, l->burst, 1,
                       &shared_wait)) {
        return shared_wait;
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)token[i]) * 1099511628211ull;
    }
    double rate = l->rate, burst = l->burst;
    double now = clock_ms() / 1e3;
    pthread_mutex_lock(&l->mu);
    limiter_bucket *b = limiter_bucket_of(l, token, len, h, burst, now);
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
limiter_addr_key(const struct sockaddr *peer,
                 unsigned char key[LIMITER_ADDR_LEN])
{
    memset(key, 0, LIMITER_ADDR_LEN);
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

static limiter_addr_bucket *
limiter_addr_slot(limiter_addr_bucket *slots, size_t cap, uint64_t seed,
                  const unsigned char key[LIMITER_ADDR_LEN])
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < LIMITER_ADDR_LEN; i++) {
        h = (h ^ key[i]) * 1099511628211ull;
    }
    h ^= h >> 29;
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (slots[i].key[0] == 0 ||
            memcmp(slots[i].key, key, LIMITER_ADDR_LEN) == 0) {
            return &slots[i];
        }
    }
}

/* Makes room for one more address: a new table holding only the buckets
 * not yet refilled, at most a quarter full (so the next rebuild is at
 * least as many inserts away as this one costs). -1 when LIMITER_FAILED_MAX
 * buckets are still live or memory is short. */
static int
limiter_failed_rebuild(limiter *l, double rate, double burst, double now)
{
    size_t live = 0;
    for (size_t i = 0; i < l->failed_cap; i++) {
        const limiter_addr_bucket *b = &l->failed[i];
        live += b->key[0] != 0 && b->tokens + (now - b->at) * rate < burst;
    }
    if (live >= LIMITER_FAILED_MAX) {
        l->failed_full_at = now;
        return -1;
    }
    size_t cap = 64;
    while (cap < 4 * (live + 1)) {
        cap *= 2;
    }
    limiter_addr_bucket *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < l->failed_cap; i++) {
        const limiter_addr_bucket *b = &l->failed[i];
        if (b->key[0] != 0 && b->tokens + (now - b->at) * rate < burst) {
            *limiter_addr_slot(slots, cap, l->seed, b->key) = *b;
        }
    }
    free(l->failed);
    l->failed = slots;
    l->failed_cap = cap;
    l->failed_used = live;
    l->failed_full_at = 0;
    return 0;
}

int
limiter_failed(limiter *l, const struct sockaddr *peer, bool spend)
{
    unsigned char key[LIMITER_ADDR_LEN];
    if (l == NULL || !limiter_addr_key(peer, key)) {
        return 0;
    }
    int shared_wait = 0;
    if (limiter_shared(l, 'a', key, sizeof key, l->failed_rate, l->failed_burst,
                       spend ? 1 : 0, &shared_wait)) {
        return shared_wait;
    }
    double rate = l->failed_rate;
    double burst = l->failed_burst;
    double now = clock_ms() / 1e3;
    int wait = 0;
    pthread_mutex_lock(&l->mu);
    limiter_addr_bucket *b = NULL;
    if (l->failed_cap > 0) {
        b = limiter_addr_slot(l->failed, l->failed_cap, l->seed, key);
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
            limiter_failed_rebuild(l, rate, burst, now) != 0) {
            wait = 1;
            goto done;
        }
        if (!spend) {
            goto done;
        }
        b = limiter_addr_slot(l->failed, l->failed_cap, l->seed, key);
        memcpy(b->key, key, LIMITER_ADDR_LEN);
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
