/*
 * The API server: the layer above the engine that `kiln serve` starts.
 * A kiln_server owns the job store (jobstore.h), the runner whose
 * workers claim and run processes (runner.h), the postback senders
 * (postback.h), the rate limiter (limiter.h) and the counters of
 * /metrics (metrics.h), and answers the API calls a transport plugin
 * hands the engine (api.c). The engine knows nothing of it but the hook
 * server_new() installs (kiln_engine.serve); nothing below this folder
 * includes it.
 */
#ifndef KILN_SERVER_SERVER_H
#define KILN_SERVER_SERVER_H

#include "../core/kiln.h"
#include "jobstore.h"

struct runner;
struct postbacker;
struct limiter;
struct kiln_metrics;
struct graph_cache;

typedef struct kiln_server {
    kiln_engine *engine; /* borrowed: it outlives the server */
    const kiln_config *config;
    jobstore *store;
    bool own_store;        /* opened by server_new: closed by server_free */
    struct runner *runner; /* NULL until server_start */
    struct postbacker *postbacker;
    struct limiter *limiter;
    struct kiln_metrics *metrics;
} kiln_server;

/* Opens the server of engine e: the job store its configuration names
 * (or `store`, borrowed, when not NULL), the store's status-change hook
 * (postbacks owed), the limiter and the counters; installs itself as e's
 * API hook. No thread runs yet: calls are answered, nothing is claimed. */
int server_new(kiln_engine *e, jobstore *store, kiln_server **out,
               kiln_error *err);
/* Re-queues what a previous run left PROCESSING (runner_start), then
 * starts n_workers workers with a lease of lease_s seconds (0: the
 * default) and n_senders postback senders. */
int server_start(kiln_server *s, int n_workers, int lease_s, int n_senders,
                 kiln_error *err);
/* Stops the workers (runner_stop: running processes finish or go back to
 * the queue), then the senders. False when a process would not stop:
 * the caller must then end the program without server_free (_exit). */
bool server_stop(kiln_server *s);
/* Detaches the server from its engine and frees it, closing the store it
 * opened. Its threads must be stopped. NULL is a no-op. */
void server_free(kiln_server *s);

/* The HTTP API of docs/api.md without the HTTP (api.c): answers `call`
 * from `peer` (may be NULL: unknown) into *out, always filled; its body
 * is cJSON_malloc'd. */
void server_call(kiln_server *s, const kiln_call *call,
                 const struct sockaddr *peer, kiln_reply *out);

/* GET /metrics's answer (api.c), whoever asks: the API checks the token
 * before; the metrics listener (metrics.listen) asks none. */
void server_metrics(kiln_server *s, kiln_reply *out);

/* Admission (admit.c): parses and compiles a POST /request body once and
 * stores it as a new process of its service: QUEUED, or INCOMPLETE when
 * it says "process": false. Right after the parse, gate(user, service
 * id the body names, -1 for none valid) may stop it (may be NULL): the
 * API's token and Idempotency-Key checks. Returns KILN_OK with the new
 * id; KILN_EPERM when the gate said no (nothing compiled); KILN_EINVAL
 * with every validation problem in errs; KILN_EEXIST when the service
 * already has the Idempotency-Key `idem_key` (may be NULL); another code
 * with err (the store). *service gets the service id the body names. */
typedef bool (*server_gate_fn)(void *user, int service_id);
int server_admit(kiln_server *s, const char *body, size_t len,
                 const char *idem_key, server_gate_fn gate, void *user,
                 int *service, char id_out[JOBSTORE_ID_LEN + 1], errlist *errs,
                 kiln_error *err);
/* A short hash of a request body, kept with an Idempotency-Key to tell a
 * repeated POST from a different one under the same key. */
void server_body_hash(const char *body, size_t len, char out[17]);

/* The GET /status body of a stored process (status.c, api.md): the one
 * builder of it, for GET /status, PATCH and every postback. The caller
 * deletes it with cJSON_Delete. */
cJSON *server_status_json(const jobstore_process *p);

/* Query strings (query.c): the value of parameter `name` in `query` (raw,
 * may be NULL), percent-decoded into out: 1 found, 0 absent, -1 found
 * but not decodable or longer than size - 1. The first of repeated
 * names counts. */
int server_query_get(const char *query, const char *name, char *out,
                     size_t size);
/* A time as the API accepts it: "YYYY-MM-DD HH:MM:SS" (UTC, as status
 * bodies write it), "YYYY-MM-DDTHH:MM:SSZ" or whole seconds since the
 * epoch. */
bool server_parse_time(const char *text, int64_t *out);
/* "YYYY-MM-DD HH:MM:SS" of t (UTC). */
void server_format_time(int64_t t, char out[32]);

/* GET /stats (stats.c): the points of `window` ("24h" or "30d") ending
 * at `now`, for the services; a JSON body, or NULL with err. */
cJSON *server_stats_json(kiln_server *s, const char *window,
                         const int *service_ids, size_t n_service_ids,
                         int64_t now, kiln_error *err);

#endif /* KILN_SERVER_SERVER_H */
