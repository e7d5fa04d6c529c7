/*
 * Rate limits of the API server (limiter.c): rate_limit.per_second and
 * burst per bearer token, failed_auth_per_second and failed_auth_burst
 * per client address; counted in a job store shared by hosts
 * (jobstore_rate), else in this host's memory.
 */
#ifndef KILN_SERVER_LIMITER_H
#define KILN_SERVER_LIMITER_H

#include <stddef.h>

#include "../core/kiln.h"
#include "jobstore.h"

typedef struct limiter limiter;

/* A limiter with c's rates, counting in `store` (may be NULL) when its
 * driver counts for every host and c's rate_limit.scope is "cluster";
 * NULL when out of memory. */
limiter *limiter_new(const kiln_config *c, jobstore *store);
void limiter_free(limiter *l);
/* Spends one request of `token`'s bucket: 0 when allowed, else the
 * seconds to wait (Retry-After). A NULL limiter allows everything. */
int limiter_token(limiter *l, const char *token, size_t len);
/* Failed authentications from `peer`: with `spend`, counts one. Returns
 * 0 when the address still has budget (before this failure), else the
 * seconds until it has one again. An address without a key (unknown
 * peer) is never limited. */
int limiter_failed(limiter *l, const struct sockaddr *peer, bool spend);

#endif /* KILN_SERVER_LIMITER_H */
