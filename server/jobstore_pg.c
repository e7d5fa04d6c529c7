/*
 * The PostgreSQL job store driver (libpq), for hosts that share one
 * database: the same tables, queue order and rules as the SQLite driver
 * (server/jobstore_sqlite.c), with row locks where SQLite locks the file.
 * One connection per store, guarded by a mutex (the HTTP threads and
 * workers share it); every read-modify-write runs in one READ COMMITTED
 * transaction, and claims lock with SKIP LOCKED so that workers on several
 * hosts neither wait for each other nor take the same row. A call whose
 * connection was lost resets it and runs once more when nothing of it can
 * have been committed. All SQL of the driver lives here, in pg_queries.
 */
#include "jobstore.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <inttypes.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "../core/kiln.h"

/* The advisory lock that serialises schema changes ("kilnjobs"): hosts
 * starting at once wait for each other's CREATE TABLE. */
#define PG_SCHEMA_LOCK INT64_C(0x6b696c6e6a6f6273)
#define PG_CHANNEL "kiln_queue" /* LISTEN/NOTIFY: work was queued */
#define PG_MIN_SERVER 100000    /* identity columns: PostgreSQL 10 */
#define PG_MAX_ARGS 12
#define PG_NAME_LEN 16 /* a status, state or setting name, NUL included */
#define PG_WHY_LEN 512 /* PostgreSQL's text in our messages */

/* Parameter types (pg_type.oid; the server headers are not installed). */
#define PG_INT8_OID 20
#define PG_TEXT_OID 25

/* The constraint create() reports as a used idempotency key. */
#define PG_IDEM_CONSTRAINT "kiln_process_idem"

/* Columns of jobstore_process, in pg_read_process's order, with the
 * expressions read as request and result. */
#define PG_PROC_COLS_AS(request, result)                                       \
    "id, service_id, status, attempt, n_requeues, " request                    \
    ", callback, " result                                                      \
    ", error, idem_key, idem_hash, created_at, updated_at, "                   \
    "not_before, lease_until, n_interrupts, lease_token, notify_status, "      \
    "retry_postback, n_jobs, duration_ms, cancel_requested"
#define PG_PROC_COLS PG_PROC_COLS_AS("request", "result")
/* list() leaves the two large texts out. */
#define PG_LIST_COLS                                                           \
    PG_PROC_COLS_AS("NULL::text AS request", "NULL::text AS result")

/* The statuses of processes that have ended. */
#define PG_ENDED "('FINISHED', 'FAILED', 'CANCELLED')"

/* A process whose run was asked to stop (cancel_requested) and that would
 * go back to the queue (or run again) ends CANCELLED instead, with this
 * error: the start of the CASE of each column that says so. */
#define PG_IF_CANCEL "CASE WHEN cancel_requested THEN "
#define PG_CANCELLED_RAN "'cancelled while it ran'"

/* Ids in byte order, as SQLite compares them, whatever the database's
 * collation: the order of list() and its cursors. */
#define PG_ID_ORDER "id COLLATE \"C\""

/* The fencing condition of a change by a claim's holder: its token is the
 * claim's, or 0 (any holder). */
#define PG_FENCE(t) "(" t " = 0 OR lease_token = " t ")"

#define PG_PB_COLS                                                             \
    "id, process_id, service_id, url, body, state, attempt, next_at, "         \
    "last_status, last_error, retry"

/* Queue order, as in SQLite: a number that grows each time a process
 * enters QUEUED (creation, requeue, retry, set_processing); recover() and
 * a lease taken back keep the old one. A sequence rather than max() + 1:
 * concurrent transactions never draw the same number. */
#define PG_NEXT_SEQ "nextval('kiln_queue_seq')"

/* Why a process whose lease ran out is in the queue again (its error). */
#define PG_LEASE_EXPIRED "'lease expired: re-run'"

/* Every statement the driver runs, an index into pg_queries. */
typedef enum pg_query {
    PG_Q_BEGIN,
    PG_Q_COMMIT,
    PG_Q_ROLLBACK,
    PG_Q_SYNC_COMMIT,
    PG_Q_SET_SYNC_COMMIT,
    PG_Q_LOCK_SCHEMA,
    PG_Q_HAS_SCHEMA,
    PG_Q_VERSION,
    PG_Q_SET_VERSION,
    PG_Q_PING,
    PG_Q_CREATE,
    PG_Q_GET,
    PG_Q_GET_ID,
    PG_Q_FIND_IDEM,
    PG_Q_STATUS,
    PG_Q_CLAIM,
    PG_Q_COMPLETE,
    PG_Q_REQUEUE,
    PG_Q_RENEW,
    PG_Q_INTERRUPT,
    PG_Q_RECOVER_CANCEL,
    PG_Q_RECOVER,
    PG_Q_RETRY,
    PG_Q_READ_REQUEST,
    PG_Q_WRITE_REQUEST,
    PG_Q_SET_PROCESSING,
    PG_Q_PB_ENQUEUE,
    PG_Q_PB_DUE,
    PG_Q_PB_STATE,
    PG_Q_PB_RECORD,
    PG_Q_PB_GET,
    PG_Q_COUNTS,
    PG_Q_PRUNE,
    PG_Q_WAKE,
    PG_Q_LISTEN,
    PG_Q_BACKFILL_READ,
    PG_Q_BACKFILL_NOTIFY,
    PG_Q_BACKFILL_RETRY,
    PG_Q_BACKFILL_POSTBACKS,
    PG_Q_RATE_TAKE,
    PG_Q_RATE_LEVEL,
    PG_Q_RATE_PRUNE,
    PG_Q_BACKFILL_N_JOBS,
    PG_Q_LIST,
    PG_Q_STATUS_LOCK,
    PG_Q_CANCEL,
    PG_Q_CANCEL_REQUESTED,
    PG_Q_ENDED,
    PG_Q_POSTBACKS_OF,
    PG_N_QUERIES
} pg_query;

/* One connection and what a call on it leaves for the next statement.
 * A call holds one from the pool for its whole run (pg_call). */
typedef struct pg_store {
    struct pg_pool *pool;
    PGconn *conn;
    /* The statements of pg_queries prepared on this connection (bit q),
     * with the parameter types they were prepared with: each is parsed
     * and planned once per connection, not at every call (on a small
     * machine PostgreSQL's planning is a good part of a claim). */
    uint64_t prepared[(PG_N_QUERIES + 63) / 64];
    Oid prep_types[PG_N_QUERIES][PG_MAX_ARGS];
    int n_changed;       /* rows the last statement changed or returned */
    bool is_committing;  /* a COMMIT is on its way (for messages) */
    bool queued;         /* this call put a process in the queue */
    char constraint[64]; /* the constraint the last failure violated */
} pg_store;

/* The handle: up to PG_POOL_MAX connections, made as calls need them,
 * so that the API's threads and the workers of a host run their calls
 * at once and PostgreSQL commits them together (group commit); one
 * connection made every call of a host wait for the previous one's
 * commit to reach the disk (bench/queue.sh: about 300 processes/s). */
#define PG_POOL_MAX 8
typedef struct pg_pool {
    jobstore base; /* first: the handle the interface sees */
    pthread_mutex_t mu;
    pthread_cond_t freed;
    char *dsn;
    int n;                       /* connections made */
    pg_store *idle[PG_POOL_MAX]; /* not in a call */
    int n_idle;
    /* wait_work()'s own connection, LISTENing (one caller at a time). */
    pthread_mutex_t listen_mu;
    pg_store *listener;
} pg_pool;

/* One value bound to a statement parameter: text (NULL binds SQL NULL)
 * or an integer, sent as int8. Text is not copied: it must outlive the
 * call, which every helper below finishes before it returns. */
typedef struct pg_arg {
    bool is_text;
    const char *text;
    int64_t num;
} pg_arg;

#define PG_TEXT(v)                                                             \
    {                                                                          \
        .is_text = true, .text = (v)                                           \
    }
#define PG_INT(v)                                                              \
    {                                                                          \
        .num = (int64_t)(v)                                                    \
    }
/* The arguments $1, $2, ... of a statement as the pair (array, count)
 * the helpers take; sizeof does not evaluate its operand. */
#define PG_ARGS(...)                                                           \
    (const pg_arg[]){__VA_ARGS__},                                             \
        (int)(sizeof((const pg_arg[]){__VA_ARGS__}) / sizeof(pg_arg))

/* Reads row `row` of a result into ctx. */
typedef int (*pg_row_fn)(const PGresult *res, int row, void *ctx,
                         kiln_error *err);

/* How pg_call runs a call: one statement on its own (a read, or a write
 * that is the same when done twice), or a transaction it commits. */
typedef enum pg_mode { PG_PLAIN, PG_WRITE } pg_mode;

/* The body of a call: the statements it runs, given the call's context.
 * It may run twice (see pg_call): it leaves its outputs clean when it
 * fails. */
typedef int (*pg_body_fn)(pg_store *s, void *ctx, kiln_error *err);

/* What each statement does (for messages: "job store: <what>: <why>"),
 * how many parameters it takes, and its text. Parameters are numbered
 * from $1 in the order the callers bind them. */
static const struct {
    const char *what;
    int n_params;
    const char *sql;
} pg_queries[PG_N_QUERIES] = {
    /* The claims and the locks below rely on READ COMMITTED: a row found
     * locked or changed is skipped or read again, never an error, which a
     * server defaulting to a stricter level would make it. */
    [PG_Q_BEGIN] = {"begin", 0, "BEGIN ISOLATION LEVEL READ COMMITTED"},
    [PG_Q_COMMIT] = {"commit", 0, "COMMIT"},
    [PG_Q_ROLLBACK] = {"rollback", 0, "ROLLBACK"},
    [PG_Q_SYNC_COMMIT] = {"read settings", 0,
                          "SELECT current_setting('synchronous_commit')"},
    /* A commit is on disk when a call returns (jobstore.h), whatever
     * the server's default; stronger settings (remote_apply...) stay. */
    [PG_Q_SET_SYNC_COMMIT] = {"durable commits", 0,
                              "SET synchronous_commit = on"},
    /* $1 PG_SCHEMA_LOCK, released by the transaction's end. */
    [PG_Q_LOCK_SCHEMA] = {"lock schema", 1, "SELECT pg_advisory_xact_lock($1)"},
    [PG_Q_HAS_SCHEMA] = {"read schema", 0,
                         "SELECT CASE WHEN to_regclass('kiln_schema') IS "
                         "NULL THEN 0 ELSE 1 END"},
    [PG_Q_VERSION] = {"read schema", 0,
                      "SELECT COALESCE(max(version), 0) FROM kiln_schema"},
    /* $1 version, $2 now */
    [PG_Q_SET_VERSION] = {"update schema", 2,
                          "INSERT INTO kiln_schema (version, applied_at) "
                          "VALUES ($1, $2)"},
    /* $1 now. A write, not a read: a database that answers but cannot
     * take a new process (a read-only standby, a full disk) is not
     * healthy. */
    [PG_Q_PING] = {"health check", 1,
                   "INSERT INTO kiln_meta (key, value) VALUES "
                   "('health_checked_at', $1::text) ON CONFLICT (key) DO "
                   "UPDATE SET value = excluded.value"},
    /* $1 id, $2 service, $3 status, $4 request, $5 callback, $6 key,
     * $7 hash, $8 now, $9 not_before, $10 notify_status, $11
     * retry_postback (0 or 1: parameters are text or int8), $12 n_jobs */
    [PG_Q_CREATE] = {"create process", 12,
                     "INSERT INTO kiln_process (id, service_id, status, "
                     "request, callback, idem_key, idem_hash, created_at, "
                     "updated_at, not_before, queue_seq, notify_status, "
                     "retry_postback, n_jobs) VALUES ($1, $2, $3, $4, $5, $6, "
                     "$7, $8, $8, $9, " PG_NEXT_SEQ ", $10 <> 0, $11 <> 0, "
                     "$12)"},
    [PG_Q_GET] = {"read process", 2,
                  "SELECT " PG_PROC_COLS " FROM kiln_process WHERE id = $1 "
                  "AND service_id = $2"},
    [PG_Q_GET_ID] = {"read process", 1,
                     "SELECT " PG_PROC_COLS " FROM kiln_process WHERE id = $1"},
    [PG_Q_FIND_IDEM] = {"read process", 2,
                        "SELECT " PG_PROC_COLS " FROM kiln_process WHERE "
                        "idem_key = $1 AND service_id = $2"},
    /* $1 id, $2 service or -1 for any */
    [PG_Q_STATUS] = {"read process", 2,
                     "SELECT status FROM kiln_process WHERE id = $1 AND ($2 "
                     "< 0 OR service_id = $2)"},
    /* $1 now, $2 lease_until, $3 wall clock. The first in queue order of
     * the ready QUEUED processes and the PROCESSING ones whose lease ran
     * out (one walk of kiln_process_queue); a lease taken back counts as
     * a re-queue. SKIP LOCKED passes over a row another claim holds, and
     * a row another claim changed since this statement began is checked
     * again as it now stands. One whose run was asked to stop becomes
     * CANCELLED instead, and the caller claims again: rare, so the common
     * claim stays one statement. */
    [PG_Q_CLAIM] = {"claim", 3,
                    "UPDATE kiln_process SET "
                    "status = " PG_IF_CANCEL "'CANCELLED' ELSE 'PROCESSING' "
                    "END, lease_until = " PG_IF_CANCEL "0 ELSE $2 END, "
                    "updated_at = $3, "
                    "lease_token = lease_token + 1, "
                    "n_requeues = n_requeues + "
                    "CASE status WHEN 'PROCESSING' THEN 1 ELSE 0 END, "
                    "n_interrupts = n_interrupts + "
                    "CASE status WHEN 'PROCESSING' THEN 1 ELSE 0 END, "
                    "error = " PG_IF_CANCEL PG_CANCELLED_RAN " WHEN status = "
                    "'PROCESSING' THEN " PG_LEASE_EXPIRED " ELSE error END, "
                    "cancel_requested = false "
                    "WHERE id = (SELECT id FROM kiln_process "
                    "WHERE (status = 'QUEUED' AND not_before <= $1) "
                    "OR (status = 'PROCESSING' AND lease_until < $1) "
                    "ORDER BY queue_seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
                    "RETURNING " PG_PROC_COLS},
    /* $1 id, $2 status, $3 result, $4 error, $5 now, $6 token, $7
     * duration_ms or -1 (text). Every change by the claim's holder matches
     * its fencing token (0: any). */
    [PG_Q_COMPLETE] = {"complete", 7,
                       "UPDATE kiln_process SET status = $2, result = $3, "
                       "error = $4, updated_at = $5, lease_until = 0, "
                       "duration_ms = NULLIF($7::float8, -1), "
                       "cancel_requested = false WHERE id = $1 AND status = "
                       "'PROCESSING' AND " PG_FENCE("$6")},
    /* $1 id, $2 not_before, $3 error, $4 now, $5 token */
    [PG_Q_REQUEUE] =
        {"requeue", 5,
         "UPDATE kiln_process SET status = " PG_IF_CANCEL "'CANCELLED' ELSE "
         "'QUEUED' END, not_before = $2, error = " PG_IF_CANCEL PG_CANCELLED_RAN
         " ELSE $3 END, n_requeues = n_requeues + 1, updated_at = $4, "
         "lease_until = 0, cancel_requested = false, queue_seq = " PG_NEXT_SEQ
         " WHERE id = $1 AND status = 'PROCESSING' AND " PG_FENCE("$5")},
    /* $1 id, $2 lease_until, $3 token */
    [PG_Q_RENEW] = {"renew", 3,
                    "UPDATE kiln_process SET lease_until = $2 WHERE id = $1 "
                    "AND status = 'PROCESSING' AND " PG_FENCE("$3")},
    /* $1 id, $2 error, $3 now, $4 token. Back in its old place in the
     * queue, like a lease taken back. */
    [PG_Q_INTERRUPT] = {"interrupt", 4,
                        "UPDATE kiln_process SET status = " PG_IF_CANCEL
                        "'CANCELLED' ELSE 'QUEUED' END, not_before = 0, "
                        "error = " PG_IF_CANCEL PG_CANCELLED_RAN " ELSE $2 "
                        "END, n_interrupts = n_interrupts + 1, updated_at = "
                        "$3, lease_until = 0, cancel_requested = false WHERE "
                        "id = $1 AND status = 'PROCESSING' AND " PG_FENCE(
                            "$4")},
    /* $1 now. Runs that were asked to stop, of hosts that died, end
     * CANCELLED (RETURNING: the hook sees each), before the others go
     * back to the queue. */
    [PG_Q_RECOVER_CANCEL] =
        {"recover", 1,
         "UPDATE kiln_process SET status = 'CANCELLED', "
         "lease_until = 0, n_interrupts = n_interrupts "
         "+ 1, updated_at = $1, error = " PG_CANCELLED_RAN
         ", cancel_requested = false WHERE status = "
         "'PROCESSING' AND cancel_requested AND lease_until < $1 "
         "RETURNING " PG_PROC_COLS},
    /* $1 now. Hosts share this store: only leases that ran out (a host
     * that died) are taken back, never a live host's running work. */
    [PG_Q_RECOVER] = {"recover", 1,
                      "UPDATE kiln_process SET status = 'QUEUED', "
                      "lease_until = 0, n_interrupts = n_interrupts + 1, "
                      "updated_at = $1 WHERE status = 'PROCESSING' AND "
                      "lease_until < $1"},
    /* $1 id, $2 service, $3 now */
    [PG_Q_RETRY] = {"retry", 3,
                    "UPDATE kiln_process SET status = 'QUEUED', attempt = "
                    "attempt + 1, n_requeues = 0, n_interrupts = 0, result = "
                    "NULL, error = NULL, duration_ms = NULL, cancel_requested "
                    "= false, not_before = 0, updated_at = $3, "
                    "queue_seq = " PG_NEXT_SEQ " WHERE id = $1 AND service_id "
                    "= $2 AND status IN " PG_ENDED " RETURNING attempt"},
    /* Locked until the append commits: two appends take turns, and both
     * land. */
    [PG_Q_READ_REQUEST] = {"read process", 2,
                           "SELECT status, request FROM kiln_process WHERE "
                           "id = $1 AND service_id = $2 FOR UPDATE"},
    /* $1 id, $2 request, $3 now, $4 n_jobs */
    [PG_Q_WRITE_REQUEST] = {"append jobs", 4,
                            "UPDATE kiln_process SET request = $2, updated_at "
                            "= $3, n_jobs = $4 WHERE id = $1"},
    /* $1 id, $2 service, $3 callback, $4 now */
    [PG_Q_SET_PROCESSING] = {"queue", 4,
                             "UPDATE kiln_process SET status = 'QUEUED', "
                             "callback = COALESCE($3, callback), updated_at = "
                             "$4, queue_seq = " PG_NEXT_SEQ " WHERE id = $1 "
                             "AND service_id = $2 AND status = 'INCOMPLETE'"},
    /* $1 process, $2 service, $3 url, $4 body, $5 next_at, $6 now,
     * $7 retry (0 or 1) */
    [PG_Q_PB_ENQUEUE] = {"enqueue postback", 7,
                         "INSERT INTO kiln_postback (process_id, service_id, "
                         "url, body, next_at, created_at, updated_at, retry) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $6, $7 <> 0) "
                         "RETURNING id"},
    /* $1 now, $2 max, $3 next_at. Reads and leases in one statement: the
     * rows it locks are the rows it moves, passing over those another
     * sender holds, and it hands them out oldest first. */
    [PG_Q_PB_DUE] = {"lease postbacks", 3,
                     "WITH due AS (SELECT id, next_at FROM kiln_postback "
                     "WHERE state = 'PENDING' AND next_at <= $1 ORDER BY "
                     "next_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), "
                     "leased AS (UPDATE kiln_postback AS p SET next_at = $3 "
                     "FROM due WHERE p.id = due.id RETURNING p.*, "
                     "due.next_at AS due_at) "
                     "SELECT " PG_PB_COLS " FROM leased ORDER BY due_at, id"},
    /* Locked until the record commits: a second record of the same
     * attempt waits, then finds it no longer PENDING. */
    [PG_Q_PB_STATE] = {"read postback", 1,
                       "SELECT state, attempt FROM kiln_postback WHERE id = "
                       "$1 FOR UPDATE"},
    /* $1 id, $2 state, $3 attempt, $4 next_at, $5 status, $6 error, $7 now */
    [PG_Q_PB_RECORD] = {"record postback", 7,
                        "UPDATE kiln_postback SET state = $2, attempt = $3, "
                        "next_at = $4, last_status = $5, last_error = $6, "
                        "updated_at = $7 WHERE id = $1"},
    [PG_Q_PB_GET] = {"read postback", 1,
                     "SELECT " PG_PB_COLS " FROM kiln_postback WHERE id = $1"},
    /* $1 now. One statement: one snapshot for all three. */
    /* $1 before, $2 max: the processes prune() takes, oldest first, one
     * that still owes a postback kept; their postbacks go with them, in
     * one statement. SKIP LOCKED: hosts pruning at once take different
     * rows. */
    [PG_Q_PRUNE] = {"prune", 2,
                    "WITH gone AS (SELECT id FROM kiln_process p WHERE "
                    "status IN " PG_ENDED " AND updated_at < $1 "
                    "AND NOT EXISTS (SELECT 1 FROM kiln_postback b WHERE "
                    "b.process_id = p.id AND b.state = 'PENDING') ORDER BY "
                    "updated_at LIMIT $2 FOR UPDATE SKIP LOCKED), pb AS ("
                    "DELETE FROM kiln_postback WHERE process_id IN (SELECT id "
                    "FROM gone)) DELETE FROM kiln_process WHERE id IN "
                    "(SELECT id FROM gone)"},
    /* Rate limits (rate()): $1 key, $2 rate, $3 burst, $4 cost (0 or 1),
     * on the database's clock, so hosts whose clocks differ count alike.
     * SET reads the old row everywhere: ok says whether it held a whole
     * token before this call. */
    [PG_Q_RATE_TAKE] = {"count a rate limit", 4,
                        "INSERT INTO kiln_rate AS r (key, tokens, at, ok) "
                        "SELECT $1, $3::float8 - $4::float8, "
                        "extract(epoch FROM clock_timestamp())::float8, true "
                        "ON CONFLICT (key) DO UPDATE SET "
                        "ok = least($3::float8, r.tokens + (excluded.at - "
                        "r.at) * $2::float8) >= 1, "
                        "tokens = least($3::float8, r.tokens + (excluded.at - "
                        "r.at) * $2::float8) - CASE WHEN least($3::float8, "
                        "r.tokens + (excluded.at - r.at) * $2::float8) >= 1 "
                        "THEN $4::float8 ELSE 0 END, at = excluded.at "
                        "RETURNING ok::int, tokens::text"},
    /* $1 key, $2 rate, $3 burst: the level without spending (none: full). */
    [PG_Q_RATE_LEVEL] = {"read a rate limit", 3,
                         "SELECT 1, least($3::float8, tokens + "
                         "(extract(epoch FROM clock_timestamp())::float8 - "
                         "at) * $2::float8)::text FROM kiln_rate WHERE key = "
                         "$1"},
    /* Buckets untouched for a day are full again for any rate kiln takes
     * (0.001 per second refills a burst of 86 in a day; rows of slower
     * ones only start again full, which a client cannot abuse for
     * long). */
    [PG_Q_RATE_PRUNE] = {"prune rate limits", 0,
                         "DELETE FROM kiln_rate WHERE at < extract(epoch FROM "
                         "clock_timestamp())::float8 - 86400"},
    /* Tells every host's listener (wait_work) that a process entered the
     * queue; delivered when the transaction commits, once however many
     * a transaction sends. */
    [PG_Q_WAKE] = {"wake other hosts", 0,
                   "SELECT pg_notify('" PG_CHANNEL "', '')"},
    [PG_Q_LISTEN] = {"listen", 0, "LISTEN " PG_CHANNEL},
    /* Migrations 2 and 4 (pg_backfill_run). $1 the last id read ('' at
     * first), $2 max, $3 and $4 two keys: the next processes, in id order,
     * whose request may state either key: those that name one, or that
     * have a \u escape, which could spell one (a JSON parser reads
     * "notify\u005fstatus" as notify_status). */
    [PG_Q_BACKFILL_READ] = {"upgrade schema", 4,
                            "SELECT id, request FROM kiln_process WHERE id > "
                            "$1 AND (strpos(request, $3) > 0 OR "
                            "strpos(request, $4) > 0 OR "
                            "strpos(request, E'\\\\u') > 0) ORDER BY id LIMIT "
                            "$2"},
    /* $1 the ids, a text[] literal (pg_ids) */
    [PG_Q_BACKFILL_NOTIFY] = {"upgrade schema", 1,
                              "UPDATE kiln_process SET notify_status = true "
                              "WHERE id = ANY ($1::text[])"},
    [PG_Q_BACKFILL_RETRY] = {"upgrade schema", 1,
                             "UPDATE kiln_process SET retry_postback = false "
                             "WHERE id = ANY ($1::text[])"},
    /* Postbacks still owed follow their process; those that are over
     * keep the default. */
    [PG_Q_BACKFILL_POSTBACKS] = {"upgrade schema", 0,
                                 "UPDATE kiln_postback AS b SET retry = false "
                                 "FROM kiln_process AS p WHERE p.id = "
                                 "b.process_id AND b.state = 'PENDING' AND "
                                 "NOT p.retry_postback"},
    [PG_Q_COUNTS] = {"count", 1,
                     "SELECT 0, status, count(*) FROM kiln_process GROUP BY "
                     "status UNION ALL SELECT 1, state, count(*) FROM "
                     "kiln_postback GROUP BY state UNION ALL SELECT 2, '', "
                     "count(*) FROM kiln_process WHERE status = 'QUEUED' AND "
                     "not_before <= $1"},
    /* Migration 4 (pg_backfill_v4). $1 the ids, a text[] literal
     * (pg_ids); $2 their numbers of jobs, an int[] one. */
    [PG_Q_BACKFILL_N_JOBS] = {"upgrade schema", 2,
                              "UPDATE kiln_process AS p SET n_jobs = v.n FROM "
                              "unnest($1::text[], $2::int[]) AS v(id, n) "
                              "WHERE p.id = v.id"},
    /* $1 the services, an int[] literal; $2 status or '' for any; $3
     * since; $4 and $5 the pair (created_at, id) the rows are older than
     * (jobstore_query_bounds); $6 limit. The newest `limit` of each
     * service (named once), in order from kiln_process_list, a LATERAL
     * scan each, then the newest of those: one scan of all the services
     * would read and sort every row in range. */
    [PG_Q_LIST] =
        {"list processes", 6,
         "SELECT p.* FROM (SELECT DISTINCT unnest($1::int[]) AS sid) AS sv "
         "CROSS JOIN "
         "LATERAL (SELECT " PG_LIST_COLS " FROM kiln_process WHERE "
         "service_id = sv.sid AND ($2 = '' OR status = $2) AND "
         "created_at >= $3 AND (created_at, " PG_ID_ORDER ") < "
         "($4, $5) ORDER BY created_at DESC, " PG_ID_ORDER " DESC "
         "LIMIT $6) AS p ORDER BY p.created_at DESC, p." PG_ID_ORDER
         " DESC LIMIT $6"},
    /* $1 id, $2 service: locked until cancel() commits, so no claim
     * takes it meanwhile (SKIP LOCKED) and no other change crosses it. */
    [PG_Q_STATUS_LOCK] = {"read process", 2,
                          "SELECT status FROM kiln_process WHERE id = $1 AND "
                          "service_id = $2 FOR UPDATE"},
    /* $1 id, $2 now: one that has not started is cancelled at once; a
     * running one is asked to stop (its status stays). The caller read
     * and locked it in the same transaction. */
    [PG_Q_CANCEL] = {"cancel", 2,
                     "UPDATE kiln_process SET status = CASE status WHEN "
                     "'PROCESSING' THEN status ELSE 'CANCELLED' END, "
                     "cancel_requested = (status = 'PROCESSING'), updated_at "
                     "= CASE status WHEN 'PROCESSING' THEN updated_at ELSE $2 "
                     "END WHERE id = $1 AND status IN ('INCOMPLETE', "
                     "'QUEUED', 'PROCESSING')"},
    /* $1 the ids, a text[] literal */
    [PG_Q_CANCEL_REQUESTED] = {"read cancellations", 1,
                               "SELECT id FROM kiln_process WHERE id = ANY "
                               "($1::text[]) AND status = 'PROCESSING' AND "
                               "cancel_requested"},
    /* $1 the services, an int[] literal; $2 since, $3 until */
    [PG_Q_ENDED] = {"read ended processes", 3,
                    "SELECT updated_at, status, duration_ms FROM kiln_process "
                    "WHERE status IN " PG_ENDED " AND updated_at >= $2 AND "
                    "updated_at < $3 AND service_id = ANY ($1::int[]) ORDER "
                    "BY updated_at"},
    [PG_Q_POSTBACKS_OF] = {"read postbacks", 1,
                           "SELECT " PG_PB_COLS " FROM kiln_postback WHERE "
                           "process_id = $1 ORDER BY id"},
};

/* Schema version 1. The tables are SQLite's, with kiln_ in their names
 * (the database may hold other things) and kiln_schema for the version:
 * one row per migration applied. */
static const char *const pg_schema_v1[] = {
    "CREATE TABLE kiln_schema ("
    " version integer PRIMARY KEY,"
    " applied_at bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE kiln_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE SEQUENCE kiln_queue_seq",
    "CREATE TABLE kiln_process ("
    " id text PRIMARY KEY,"
    " service_id integer NOT NULL,"
    " status text NOT NULL,"
    " attempt integer NOT NULL DEFAULT 1,"
    " n_requeues integer NOT NULL DEFAULT 0,"
    " n_interrupts integer NOT NULL DEFAULT 0,"
    " request text NOT NULL,"
    " callback text,"
    " result text,"
    " error text,"
    " idem_key text,"
    " idem_hash text,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL,"
    " not_before bigint NOT NULL DEFAULT 0,"
    " lease_until bigint NOT NULL DEFAULT 0,"
    " lease_token bigint NOT NULL DEFAULT 0,"
    " queue_seq bigint NOT NULL,"
    " CONSTRAINT " PG_IDEM_CONSTRAINT " UNIQUE (service_id, idem_key))",
    /* claim() walks it in queue order to the first ready or expired
     * process; finished ones, most of the table, are not in it. */
    "CREATE INDEX kiln_process_queue ON kiln_process (queue_seq)"
    " WHERE status IN ('QUEUED', 'PROCESSING')",
    /* prune() finds the oldest ended processes through it. */
    "CREATE INDEX kiln_process_ended ON kiln_process (updated_at)"
    " WHERE status IN ('FINISHED', 'FAILED')",
    "CREATE TABLE kiln_postback ("
    " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " process_id text NOT NULL,"
    " service_id integer NOT NULL,"
    " url text NOT NULL,"
    " body text NOT NULL,"
    " state text NOT NULL DEFAULT 'PENDING',"
    " attempt integer NOT NULL DEFAULT 0,"
    " next_at bigint NOT NULL,"
    " last_status integer NOT NULL DEFAULT 0,"
    " last_error text,"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL)",
    "CREATE INDEX kiln_postback_process ON kiln_postback (process_id)",
    "CREATE INDEX kiln_postback_due ON kiln_postback (next_at, id)"
    " WHERE state = 'PENDING'",
    NULL,
};

/* Schema version 2: the request's postback settings as columns (they
 * were read from the request's JSON at every status change and delivery);
 * pg_backfill_v2 then fills them from the stored requests. */
static const char *const pg_schema_v2[] = {
    "ALTER TABLE kiln_process"
    " ADD COLUMN notify_status boolean NOT NULL DEFAULT false,"
    " ADD COLUMN retry_postback boolean NOT NULL DEFAULT true",
    "ALTER TABLE kiln_postback"
    " ADD COLUMN retry boolean NOT NULL DEFAULT true",
    NULL,
};

/* Schema version 3: the rate limits' buckets, shared by the hosts
 * (rate()). UNLOGGED: a bucket is not worth a disk write per API call,
 * and after a crash PostgreSQL empties the table, which only gives every
 * client a full bucket. */
static const char *const pg_schema_v3[] = {
    "CREATE UNLOGGED TABLE kiln_rate ("
    " key text PRIMARY KEY,"
    " tokens double precision NOT NULL,"
    " at double precision NOT NULL,"
    " ok boolean NOT NULL DEFAULT true)",
    NULL,
};

/* Schema version 4 (issue 16): what list() shows without reading the
 * request (pg_backfill_v4 fills n_jobs from the stored requests), the
 * processing time, and a cancellation asked of a running process; list()'s
 * index; prune()'s and ended()'s index made again with CANCELLED. */
static const char *const pg_schema_v4[] = {
    "ALTER TABLE kiln_process"
    " ADD COLUMN n_jobs integer NOT NULL DEFAULT 0,"
    " ADD COLUMN duration_ms double precision,"
    " ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false",
    "CREATE INDEX kiln_process_list ON kiln_process"
    " (service_id, created_at DESC, id COLLATE \"C\" DESC)",
    "DROP INDEX kiln_process_ended",
    "CREATE INDEX kiln_process_ended ON kiln_process (updated_at)"
    " WHERE status IN " PG_ENDED,
    NULL,
};

/* The part of a migration that SQL alone cannot do, run after its
 * statements in the same transaction. */
typedef int (*pg_migrate_fn)(pg_store *s, kiln_error *err);

static int pg_backfill_v2(pg_store *s, kiln_error *err);
static int pg_backfill_v4(pg_store *s, kiln_error *err);

/* Migration N (from version N - 1 to N) is pg_migrations[N - 1]; open()
 * applies the missing ones in order, under PG_SCHEMA_LOCK, and records
 * each in kiln_schema. A later version appends its statements here. */
static const struct {
    const char *const *sql;
    pg_migrate_fn then; /* or NULL */
} pg_migrations[] = {
    {pg_schema_v1, NULL},
    {pg_schema_v2, pg_backfill_v2},
    {pg_schema_v3, NULL},
    {pg_schema_v4, pg_backfill_v4},
};

#define PG_SCHEMA_VERSION                                                      \
    ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

/* ------------------------------------------------------------ helpers */

static pg_pool *
pg(jobstore *s)
{
    return (pg_pool *)s;
}

static int64_t
pg_now(void)
{
    return (int64_t)time(NULL);
}

/* PostgreSQL's message on one line: libpq's span several, indented. */
static void
pg_oneline(const char *in, char *out, size_t size)
{
    size_t n = 0;
    bool gap = false;
    for (const char *p = in != NULL ? in : ""; *p != '\0'; p++) {
        if (isspace((unsigned char)*p)) {
            gap = n > 0;
            continue;
        }
        if (n + (gap ? 2 : 1) >= size) {
            break;
        }
        if (gap) {
            out[n++] = ' ';
            gap = false;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
}

/* What PostgreSQL (or libpq) said about a failed statement. */
static void
pg_why(pg_store *s, const PGresult *res, char *out, size_t size)
{
    const char *text =
        res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (text == NULL && res != NULL && PQresultErrorMessage(res)[0] != '\0') {
        text = PQresultErrorMessage(res);
    }
    if (text == NULL) {
        text = PQerrorMessage(s->conn);
    }
    pg_oneline(text, out, size);
}

static bool
pg_is_lost(pg_store *s)
{
    return PQstatus(s->conn) == CONNECTION_BAD;
}

/* Maps a failed statement to a status and message: a unique violation is
 * KILN_EEXIST (its constraint kept in s->constraint), text the database
 * cannot hold KILN_EINVAL, anything else KILN_EIO. */
static int
pg_fail(pg_store *s, const char *what, const PGresult *res, kiln_error *err)
{
    char why[PG_WHY_LEN];
    pg_why(s, res, why, sizeof why);
    if (pg_is_lost(s) && s->is_committing) {
        return err_set(err, KILN_EIO,
                       "job store: %s: the database connection was lost "
                       "while committing (the change may or may not be "
                       "stored): %s",
                       what, why);
    }
    if (pg_is_lost(s)) {
        return err_set(err, KILN_EIO,
                       "job store: %s: the database connection was lost: %s",
                       what, why);
    }
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint =
        res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(s->constraint, sizeof s->constraint, "%s",
             constraint != NULL ? constraint : "");
    int code = KILN_EIO;
    if (state != NULL && strcmp(state, "23505") == 0) {
        code = KILN_EEXIST;
    } else if (state != NULL &&
               (strcmp(state, "22021") == 0 || strcmp(state, "22P05") == 0)) {
        /* Bytes that are not UTF-8 (or not in the database's encoding):
         * the caller's text, not a failing database. */
        code = KILN_EINVAL;
    }
    return err_set(err, code, "job store: %s: %s", what, why);
}

/* Runs `sql` with args bound to $1..$n_args (text, or int8); *out gets
 * the result, which the caller PQclear()s. */
static int
pg_exec(pg_store *s, int q, const char *what, const char *sql,
        const pg_arg *args, int n_args, PGresult **out, kiln_error *err)
{
    const char *values[PG_MAX_ARGS];
    Oid types[PG_MAX_ARGS];
    char nums[PG_MAX_ARGS][24];
    assert(n_args >= 0 && n_args <= PG_MAX_ARGS);
    *out = NULL;
    for (int i = 0; i < n_args; i++) {
        if (args[i].is_text) {
            types[i] = PG_TEXT_OID;
            values[i] = args[i].text;
        } else {
            types[i] = PG_INT8_OID;
            snprintf(nums[i], sizeof nums[i], "%" PRId64, args[i].num);
            values[i] = nums[i];
        }
    }
    s->n_changed = 0;
    PGresult *res = NULL;
    char name[16];
    snprintf(name, sizeof name, "kiln_q%d", q);
    bool is_prepared = q >= 0 && (s->prepared[q / 64] >> (q % 64) & 1) != 0;
    if (q >= 0 && !is_prepared) {
        res = PQprepare(s->conn, name, sql, n_args, types);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            int rc = pg_fail(s, what, res, err);
            PQclear(res);
            return rc;
        }
        PQclear(res);
        res = NULL;
        s->prepared[q / 64] |= UINT64_C(1) << (q % 64);
        memcpy(s->prep_types[q], types, (size_t)n_args * sizeof(Oid));
        is_prepared = true;
    }
    if (is_prepared &&
        memcmp(s->prep_types[q], types, (size_t)n_args * sizeof(Oid)) == 0) {
        res = PQexecPrepared(s->conn, name, n_args, values, NULL, NULL, 0);
    } else {
        /* Not one of pg_queries, or called with other types than it was
         * prepared with: parsed for this call. */
        res = PQexecParams(s->conn, sql, n_args, types, values, NULL, NULL, 0);
    }
    ExecStatusType st = PQresultStatus(res); /* NULL: PGRES_FATAL_ERROR */
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = pg_fail(s, what, res, err);
        PQclear(res);
        return rc;
    }
    s->n_changed = atoi(PQcmdTuples(res));
    *out = res;
    return KILN_OK;
}

/* Runs statement `q` with `args`, calling fn (unless NULL) on each row;
 * stops at the first failure. s->n_changed gets the rows it changed. */
static int
pg_each(pg_store *s, pg_query q, const pg_arg *args, int n_args, pg_row_fn fn,
        void *ctx, kiln_error *err)
{
    assert(n_args == pg_queries[q].n_params);
    PGresult *res = NULL;
    int rc = pg_exec(s, (int)q, pg_queries[q].what, pg_queries[q].sql, args,
                     n_args, &res, err);
    int n = rc == KILN_OK ? PQntuples(res) : 0;
    for (int i = 0; i < n && rc == KILN_OK && fn != NULL; i++) {
        rc = fn(res, i, ctx, err);
    }
    PQclear(res);
    return rc;
}

/* Runs a statement that changes rows; *n_changed (may be NULL) gets how
 * many it changed. */
static int
pg_run(pg_store *s, pg_query q, const pg_arg *args, int n_args, int *n_changed,
       kiln_error *err)
{
    int rc = pg_each(s, q, args, n_args, NULL, NULL, err);
    if (rc == KILN_OK && n_changed != NULL) {
        *n_changed = s->n_changed;
    }
    return rc;
}

/* Runs `q`, reading its first row with fn. KILN_ENOTFOUND when it has
 * none, with a plain message the callers reword. */
static int
pg_one(pg_store *s, pg_query q, const pg_arg *args, int n_args, pg_row_fn fn,
       void *ctx, kiln_error *err)
{
    assert(n_args == pg_queries[q].n_params);
    PGresult *res = NULL;
    int rc = pg_exec(s, (int)q, pg_queries[q].what, pg_queries[q].sql, args,
                     n_args, &res, err);
    if (rc == KILN_OK && PQntuples(res) == 0) {
        rc = err_set(err, KILN_ENOTFOUND, "job store: %s: not found",
                     pg_queries[q].what);
    } else if (rc == KILN_OK) {
        rc = fn(res, 0, ctx, err);
    }
    PQclear(res);
    return rc;
}

/* Column readers. A NULL reads as "" or 0 (PQgetvalue gives ""). */

static int64_t
pg_col_int(const PGresult *res, int row, int col)
{
    return (int64_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A boolean column, which the text format sends as "t" or "f". */
static bool
pg_col_bool(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

/* A double precision column, -1 for SQL NULL (none). */
static double
pg_col_real(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return -1;
    }
    return strtod(PQgetvalue(res, row, col), NULL);
}

/* A malloc'd copy of a text column, NULL for SQL NULL; *oom on failure. */
static char *
pg_col_dup(const PGresult *res, int row, int col, bool *oom)
{
    if (PQgetisnull(res, row, col)) {
        return NULL;
    }
    char *d = strdup(PQgetvalue(res, row, col));
    if (d == NULL) {
        *oom = true;
    }
    return d;
}

static void
pg_col_id(const PGresult *res, int row, int col, char out[JOBSTORE_ID_LEN + 1])
{
    snprintf(out, JOBSTORE_ID_LEN + 1, "%s", PQgetvalue(res, row, col));
}

/* Row readers for pg_one and pg_each. */

static int
pg_row_int(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    (void)err;
    *(int64_t *)ctx = pg_col_int(res, row, 0);
    return KILN_OK;
}

/* A status, state or setting name into char[PG_NAME_LEN]. */
static int
pg_row_name(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    (void)err;
    snprintf(ctx, PG_NAME_LEN, "%s", PQgetvalue(res, row, 0));
    return KILN_OK;
}

/* How reading a row into a struct went: KILN_ENOMEM if a copy failed,
 * KILN_EINTERNAL if its `column` held no name we know (parsed < 0). */
static int
pg_row_checked(bool oom, int parsed, const char *row, const char *column,
               kiln_error *err)
{
    if (oom) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (parsed < 0) {
        return err_set(err, KILN_EINTERNAL, "job store: %s has an unknown %s",
                       row, column);
    }
    return KILN_OK;
}

/* A row of PG_PROC_COLS into the jobstore_process ctx. */
static int
pg_read_process(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    jobstore_process *p = ctx;
    bool oom = false;
    memset(p, 0, sizeof *p);
    pg_col_id(res, row, 0, p->id);
    p->service_id = (int)pg_col_int(res, row, 1);
    int status = jobstore_status_parse(PQgetvalue(res, row, 2));
    p->attempt = (int)pg_col_int(res, row, 3);
    p->n_requeues = (int)pg_col_int(res, row, 4);
    p->request = pg_col_dup(res, row, 5, &oom);
    p->callback = pg_col_dup(res, row, 6, &oom);
    p->result = pg_col_dup(res, row, 7, &oom);
    p->error = pg_col_dup(res, row, 8, &oom);
    p->idem_key = pg_col_dup(res, row, 9, &oom);
    p->idem_hash = pg_col_dup(res, row, 10, &oom);
    p->created_at = pg_col_int(res, row, 11);
    p->updated_at = pg_col_int(res, row, 12);
    p->not_before = pg_col_int(res, row, 13);
    p->lease_until = pg_col_int(res, row, 14);
    p->n_interrupts = (int)pg_col_int(res, row, 15);
    p->lease_token = pg_col_int(res, row, 16);
    p->notify_status = pg_col_bool(res, row, 17);
    p->retry_postback = pg_col_bool(res, row, 18);
    p->n_jobs = (int)pg_col_int(res, row, 19);
    p->duration_ms = pg_col_real(res, row, 20);
    p->cancel_requested = pg_col_bool(res, row, 21);
    int rc = pg_row_checked(oom, status, "process", "status", err);
    if (rc != KILN_OK) {
        jobstore_process_clear(p);
        return rc;
    }
    p->status = (jobstore_status)status;
    return KILN_OK;
}

/* A row of PG_PB_COLS into the jobstore_postback ctx. */
static int
pg_read_postback(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    jobstore_postback *pb = ctx;
    bool oom = false;
    memset(pb, 0, sizeof *pb);
    pb->id = pg_col_int(res, row, 0);
    pg_col_id(res, row, 1, pb->process_id);
    pb->service_id = (int)pg_col_int(res, row, 2);
    pb->url = pg_col_dup(res, row, 3, &oom);
    pb->body = pg_col_dup(res, row, 4, &oom);
    int state = jobstore_postback_state_parse(PQgetvalue(res, row, 5));
    pb->attempt = (int)pg_col_int(res, row, 6);
    pb->next_at = pg_col_int(res, row, 7);
    pb->last_status = (int)pg_col_int(res, row, 8);
    pb->last_error = pg_col_dup(res, row, 9, &oom);
    pb->retry = pg_col_bool(res, row, 10);
    int rc = pg_row_checked(oom, state, "postback", "state", err);
    if (rc != KILN_OK) {
        jobstore_postback_clear(pb);
        return rc;
    }
    pb->state = (jobstore_postback_state)state;
    return KILN_OK;
}

/* Reads the first row of `q` (PG_PROC_COLS) into *out; on failure *out
 * is left cleared. KILN_ENOTFOUND as pg_one. */
static int
pg_one_process(pg_store *s, pg_query q, const pg_arg *args, int n_args,
               jobstore_process *out, kiln_error *err)
{
    int rc = pg_one(s, q, args, n_args, pg_read_process, out, err);
    if (rc != KILN_OK) {
        jobstore_process_clear(out);
    }
    return rc;
}

/* The rows of a statement as a growing array of items of `size` bytes,
 * each read by `read` and, when it holds strings, freed by `clear`
 * (processes, postbacks, ended processes). */
typedef struct pg_rows {
    pg_row_fn read;
    void (*clear)(void *item); /* or NULL */
    size_t size;
    void *items; /* NULL until the first row */
    size_t n, cap;
} pg_rows;

#define PG_ROWS(read, clear, type)                                             \
    {                                                                          \
        (read), (clear), sizeof(type), NULL, 0, 0                              \
    }

static void
pg_clear_process(void *p)
{
    jobstore_process_clear(p);
}

static void
pg_clear_postback(void *pb)
{
    jobstore_postback_clear(pb);
}

/* Appends row `row` to the pg_rows ctx. */
static int
pg_read_into(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    pg_rows *l = ctx;
    void *items = jobstore_grow(l->items, &l->cap, l->n + 1, l->size);
    if (items == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    l->items = items;
    int rc = l->read(res, row, (char *)items + l->n * l->size, err);
    if (rc == KILN_OK) {
        l->n++;
    }
    return rc;
}

/* Frees the rows and empties l, ready to be filled again (a call's body
 * may run twice). */
static void
pg_rows_free(pg_rows *l)
{
    for (size_t i = 0; l->clear != NULL && i < l->n; i++) {
        l->clear((char *)l->items + i * l->size);
    }
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

/* Runs `q` with `args` into the rows l; on failure they are freed. */
static int
pg_each_row(pg_store *s, pg_query q, const pg_arg *args, int n_args, pg_rows *l,
            kiln_error *err)
{
    int rc = pg_each(s, q, args, n_args, pg_read_into, l, err);
    if (rc != KILN_OK) {
        pg_rows_free(l);
    }
    return rc;
}

/* ------------------------------------------------------------- calls */

/* Per connection, after it is made or made again: commits that wait for
 * the disk (a server may default to synchronous_commit = off). */
static int
pg_session(pg_store *s, kiln_error *err)
{
    char mode[PG_NAME_LEN] = "";
    int rc = pg_one(s, PG_Q_SYNC_COMMIT, NULL, 0, pg_row_name, mode, err);
    if (rc == KILN_OK && strcmp(mode, "off") == 0) {
        rc = pg_run(s, PG_Q_SET_SYNC_COMMIT, NULL, 0, NULL, err);
    }
    return rc;
}

/* A connection that went bad (the server restarted, or the network
 * failed) is made again, once per call; while the server is down every
 * call fails here, and the first one after it is back succeeds. */
static int
pg_reconnect(pg_store *s, kiln_error *err)
{
    if (!pg_is_lost(s)) {
        return KILN_OK;
    }
    PQreset(s->conn);
    /* A new session: nothing is prepared on it. */
    memset(s->prepared, 0, sizeof s->prepared);
    if (pg_is_lost(s)) {
        char why[PG_WHY_LEN];
        pg_why(s, NULL, why, sizeof why);
        return err_set(err, KILN_EIO,
                       "job store (postgres): the database connection was "
                       "lost and cannot be made again: %s",
                       why);
    }
    return pg_session(s, err);
}

/* Ends an open transaction that is not to be committed. The server rolls
 * it back by itself when the connection is gone. */
static void
pg_rollback(pg_store *s)
{
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (pg_is_lost(s) || (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)) {
        return;
    }
    PGresult *res = PQexecParams(s->conn, pg_queries[PG_Q_ROLLBACK].sql, 0,
                                 NULL, NULL, NULL, NULL, 0);
    PQclear(res);
}

/* Commits the transaction of call `what`. A connection lost on the way
 * leaves the outcome unknown: the call is not run again, and says so. */
static int
pg_commit(pg_store *s, const char *what, kiln_error *err)
{
    PGresult *res = NULL;
    s->is_committing = true;
    int rc = pg_exec(s, PG_Q_COMMIT, what, pg_queries[PG_Q_COMMIT].sql, NULL, 0,
                     &res, err);
    s->is_committing = false;
    /* COMMIT of a transaction that failed answers ROLLBACK, not an
     * error; no body commits after a failure, but say it if one did. */
    if (rc == KILN_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        rc =
            err_set(err, KILN_EIO,
                    "job store: %s: the database rolled the change back", what);
    }
    PQclear(res);
    return rc;
}

/* Runs one call of the store: locks it, makes its connection again if it
 * went bad, runs `body` (in a transaction, committed when it returns
 * KILN_OK, for PG_WRITE) and unlocks. When the connection is found lost
 * before a commit was asked for, the server has rolled back whatever the
 * body did, so the body runs once more on a new connection; a connection
 * lost during the commit is reported, not retried (the change may be
 * stored). A retried status change calls the notify hook again. */
static pg_store *pg_conn_new(pg_pool *pool, kiln_error *err);
static void pg_conn_free(pg_store *s);

/* Takes an idle connection, or makes one while the pool has room, or
 * waits for one to be given back. NULL (err set) when a new one cannot be
 * made: the server is down, or refuses more connections. */
static pg_store *
pg_checkout(pg_pool *pool, kiln_error *err)
{
    pthread_mutex_lock(&pool->mu);
    while (pool->n_idle == 0 && pool->n == PG_POOL_MAX) {
        pthread_cond_wait(&pool->freed, &pool->mu);
    }
    if (pool->n_idle > 0) {
        pg_store *s = pool->idle[--pool->n_idle];
        pthread_mutex_unlock(&pool->mu);
        return s;
    }
    pool->n++; /* a place kept while this thread connects */
    pthread_mutex_unlock(&pool->mu);
    pg_store *s = pg_conn_new(pool, err);
    if (s == NULL) {
        pthread_mutex_lock(&pool->mu);
        pool->n--;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->mu);
    }
    return s;
}

static void
pg_checkin(pg_pool *pool, pg_store *s)
{
    pthread_mutex_lock(&pool->mu);
    pool->idle[pool->n_idle++] = s;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->mu);
}

static int
pg_call(pg_pool *pool, pg_mode mode, const char *what, pg_body_fn body,
        void *ctx, kiln_error *err)
{
    pg_store *s = pg_checkout(pool, err);
    if (s == NULL) {
        return err->code;
    }
    int rc = KILN_OK;
    for (int run = 0; run < 2; run++) {
        bool committing = false;
        rc = pg_reconnect(s, err);
        if (rc != KILN_OK) {
            break; /* nothing ran; another reset now would fail the same */
        }
        s->queued = false;
        if (mode == PG_WRITE) {
            rc = pg_run(s, PG_Q_BEGIN, NULL, 0, NULL, err);
        }
        if (rc == KILN_OK) {
            rc = body(s, ctx, err);
        }
        if (rc == KILN_OK && mode == PG_WRITE && s->queued) {
            rc = pg_run(s, PG_Q_WAKE, NULL, 0, NULL, err);
        }
        if (rc == KILN_OK && mode == PG_WRITE) {
            committing = true;
            rc = pg_commit(s, what, err);
        }
        if (rc == KILN_OK) {
            break;
        }
        pg_rollback(s);
        if (!pg_is_lost(s) || committing) {
            break;
        }
    }
    pg_checkin(pool, s);
    return rc;
}

/* Why process `id` (of `service_id` unless it is < 0) was not changed by
 * `what`: KILN_ENOTFOUND, or KILN_EPERM naming its status. */
static int
pg_refuse(pg_store *s, const char *id, int service_id, const char *what,
          const char *expected, kiln_error *err)
{
    char status[PG_NAME_LEN];
    int rc = pg_one(s, PG_Q_STATUS, PG_ARGS(PG_TEXT(id), PG_INT(service_id)),
                    pg_row_name, status, err);
    if (rc == KILN_OK && strcmp(status, expected) == 0) {
        /* The status was right: the fencing token was not. */
        return err_set(err, KILN_EPERM,
                       "cannot %s process \"%s\": its lease was taken back "
                       "(claimed again since)",
                       what, id);
    }
    if (rc == KILN_OK) {
        return err_set(err, KILN_EPERM,
                       "cannot %s process \"%s\": it is %s (expected %s)", what,
                       id, status, expected);
    }
    if (rc == KILN_ENOTFOUND) {
        return err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
    }
    return rc;
}

/* Inside a status change's transaction: hands the process as it now
 * stands (`p`, or read by `id`) to the store's hook and stores the
 * postback it asks for. */
static int
pg_notify(pg_store *s, const char *id, const jobstore_process *p,
          kiln_error *err)
{
    if (s->pool->base.notify == NULL) {
        return KILN_OK;
    }
    jobstore_process read;
    memset(&read, 0, sizeof read);
    if (p == NULL) {
        int rc =
            pg_one_process(s, PG_Q_GET_ID, PG_ARGS(PG_TEXT(id)), &read, err);
        if (rc != KILN_OK) {
            return rc;
        }
        p = &read;
    }
    int rc = KILN_OK;
    char *body = p->callback != NULL
                     ? s->pool->base.notify(p, s->pool->base.notify_arg)
                     : NULL;
    if (body != NULL) {
        rc = pg_run(s, PG_Q_PB_ENQUEUE,
                    PG_ARGS(PG_TEXT(p->id), PG_INT(p->service_id),
                            PG_TEXT(p->callback), PG_TEXT(body),
                            PG_INT(pg_now()), PG_INT(pg_now()),
                            PG_INT(p->retry_postback)),
                    NULL, err);
        free(body);
    }
    jobstore_process_clear(&read);
    return rc;
}

/* One call that moves process `id` from `expected` (pg_transition). */
typedef struct pg_change {
    pg_query q;
    const pg_arg *args;
    int n_args;
    pg_row_fn fn; /* reads what q returns, or NULL */
    void *ctx;
    const char *id;
    int service_id; /* < 0: any */
    const char *expected;
    bool notify;
} pg_change;

static int
pg_transition_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_change *c = arg;
    int rc = pg_each(s, c->q, c->args, c->n_args, c->fn, c->ctx, err);
    if (rc == KILN_OK && s->n_changed == 0) {
        rc = pg_refuse(s, c->id, c->service_id, pg_queries[c->q].what,
                       c->expected, err);
    } else if (rc == KILN_OK && c->notify) {
        rc = pg_notify(s, c->id, NULL, err);
    }
    s->queued =
        rc == KILN_OK && (c->q == PG_Q_REQUEUE || c->q == PG_Q_INTERRUPT ||
                          c->q == PG_Q_SET_PROCESSING);
    return rc;
}

/* One call that moves process `id` from `expected`: runs `q` in a write
 * transaction (fn, if not NULL, reads what it returns), and when it
 * changes no row, tells why (pg_refuse). A status change (`notify`) runs
 * the store's hook in the same transaction. */
static int
pg_transition(pg_pool *s, pg_query q, const pg_arg *args, int n_args,
              pg_row_fn fn, void *ctx, const char *id, int service_id,
              const char *expected, bool notify, kiln_error *err)
{
    pg_change c = {q, args, n_args, fn, ctx, id, service_id, expected, notify};
    return pg_call(s, PG_WRITE, pg_queries[q].what, pg_transition_body, &c,
                   err);
}

/* Values as the literal of an array (a parameter is text or int8): the
 * ids a backfill changes (text[]), the numbers it writes or the services
 * a call reads (int[]: PostgreSQL reads quoted numbers as numbers). */
typedef struct pg_ids {
    char *text; /* {"id","id",...} */
    size_t len, cap;
    int n;
} pg_ids;

static int
pg_ids_add(pg_ids *a, const char *id, kiln_error *err)
{
    size_t need = a->len + 2 * strlen(id) + 5; /* , "" } NUL; escapes */
    if (need > a->cap) {
        size_t cap = a->cap > 0 ? a->cap : 256;
        while (cap < need) {
            cap *= 2;
        }
        char *t = realloc(a->text, cap);
        if (t == NULL) {
            return err_set(err, KILN_ENOMEM, "job store: out of memory");
        }
        a->text = t;
        a->cap = cap;
    }
    a->text[a->len++] = a->n == 0 ? '{' : ',';
    a->text[a->len++] = '"';
    for (const char *c = id; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            a->text[a->len++] = '\\';
        }
        a->text[a->len++] = *c;
    }
    a->text[a->len++] = '"';
    a->text[a->len] = '}'; /* overwritten by the next id's comma */
    a->text[a->len + 1] = '\0';
    a->n++;
    return KILN_OK;
}

/* The literal of the int[] of n numbers into *a (empty at first). */
static int
pg_ints(pg_ids *a, const int *v, size_t n, kiln_error *err)
{
    int rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", v[i]);
        rc = pg_ids_add(a, num, err);
    }
    return rc;
}

/* A migration's backfill: where it has got to, and two lists its
 * current page fills (what they hold is the migration's). */
typedef struct pg_backfill {
    char *last; /* the last id read, or NULL */
    int n_rows;
    pg_ids a, b;
} pg_backfill;

/* What one migration's backfill reads and writes: the processes whose
 * request may state one of `keys` (pg_backfill's query), each handed to
 * `row`, and each page written by `page`. */
typedef struct pg_backfill_kind {
    const char *keys[2];
    int (*row)(pg_backfill *b, const char *id, const char *request,
               kiln_error *err);
    int (*page)(pg_store *s, pg_backfill *b, kiln_error *err);
} pg_backfill_kind;

typedef struct pg_backfill_ctx {
    const pg_backfill_kind *kind;
    pg_backfill b;
} pg_backfill_ctx;

static int
pg_backfill_row(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    pg_backfill_ctx *c = ctx;
    pg_backfill *b = &c->b;
    const char *id = PQgetvalue(res, row, 0);
    int rc = c->kind->row(b, id, PQgetvalue(res, row, 1), err);
    free(b->last);
    b->last = strdup(id);
    if (rc == KILN_OK && b->last == NULL) {
        rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    b->n_rows++;
    return rc;
}

/* Requests read per round trip by the backfill: a page is held in memory
 * at once, and requests can be large. */
#define PG_BACKFILL_PAGE 200

/* Reads the stored requests a migration needs, page by page in id order,
 * and writes what it makes of them. Not in SQL: request::jsonb would fail
 * the migration on a request that cJSON accepted and jsonb refuses (text
 * after the object), and jsonb keeps the last of repeated keys where
 * cJSON took the first; the requests are read with cJSON as the server
 * read them. */
static int
pg_backfill_run(pg_store *s, const pg_backfill_kind *kind, kiln_error *err)
{
    pg_backfill_ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    pg_backfill *b = &c.b;
    int rc = KILN_OK;
    do {
        b->n_rows = 0;
        b->a.len = b->b.len = 0;
        b->a.n = b->b.n = 0;
        rc = pg_each(s, PG_Q_BACKFILL_READ,
                     PG_ARGS(PG_TEXT(b->last != NULL ? b->last : ""),
                             PG_INT(PG_BACKFILL_PAGE), PG_TEXT(kind->keys[0]),
                             PG_TEXT(kind->keys[1])),
                     pg_backfill_row, &c, err);
        if (rc == KILN_OK) {
            rc = kind->page(s, b, err);
        }
    } while (rc == KILN_OK && b->n_rows == PG_BACKFILL_PAGE);
    free(b->last);
    free(b->a.text);
    free(b->b.text);
    return rc;
}

/* Migration 2: a = the ids with notify_status true, b = those with
 * retry_postback false (only values other than the default are
 * written). */
static int
pg_backfill_v2_row(pg_backfill *b, const char *id, const char *request,
                   kiln_error *err)
{
    bool notify = false, retry = true;
    jobstore_request_flags(request, &notify, &retry);
    int rc = KILN_OK;
    if (notify) {
        rc = pg_ids_add(&b->a, id, err);
    }
    if (rc == KILN_OK && !retry) {
        rc = pg_ids_add(&b->b, id, err);
    }
    return rc;
}

static int
pg_backfill_v2_page(pg_store *s, pg_backfill *b, kiln_error *err)
{
    int rc = KILN_OK;
    if (b->a.n > 0) {
        rc = pg_run(s, PG_Q_BACKFILL_NOTIFY, PG_ARGS(PG_TEXT(b->a.text)), NULL,
                    err);
    }
    if (rc == KILN_OK && b->b.n > 0) {
        rc = pg_run(s, PG_Q_BACKFILL_RETRY, PG_ARGS(PG_TEXT(b->b.text)), NULL,
                    err);
    }
    return rc;
}

/* Migration 2's data: each process's postback settings from its stored
 * request, read by jobstore_request_flags() as the server read them, and
 * each PENDING postback's retry from its process, so that nothing owed
 * changes meaning with the upgrade. */
static int
pg_backfill_v2(pg_store *s, kiln_error *err)
{
    static const pg_backfill_kind kind = {{"notify_status", "retry_postback"},
                                          pg_backfill_v2_row,
                                          pg_backfill_v2_page};
    int rc = pg_backfill_run(s, &kind, err);
    if (rc == KILN_OK) {
        rc = pg_run(s, PG_Q_BACKFILL_POSTBACKS, NULL, 0, NULL, err);
    }
    return rc;
}

/* Migration 4: a = the ids of requests with jobs, b = how many each has
 * (the default, 0, is not written). */
static int
pg_backfill_v4_row(pg_backfill *b, const char *id, const char *request,
                   kiln_error *err)
{
    int n = jobstore_request_n_jobs(request);
    if (n == 0) {
        return KILN_OK;
    }
    int rc = pg_ids_add(&b->a, id, err);
    if (rc == KILN_OK) {
        rc = pg_ints(&b->b, &n, 1, err);
    }
    return rc;
}

static int
pg_backfill_v4_page(pg_store *s, pg_backfill *b, kiln_error *err)
{
    if (b->a.n == 0) {
        return KILN_OK;
    }
    return pg_run(s, PG_Q_BACKFILL_N_JOBS,
                  PG_ARGS(PG_TEXT(b->a.text), PG_TEXT(b->b.text)), NULL, err);
}

/* Migration 4's data: each process's n_jobs, counted in its stored
 * request by jobstore_request_n_jobs() (a request stored before the
 * column may be one jsonb refuses). */
static int
pg_backfill_v4(pg_store *s, kiln_error *err)
{
    static const pg_backfill_kind kind = {
        {"jobs", "jobs"}, pg_backfill_v4_row, pg_backfill_v4_page};
    return pg_backfill_run(s, &kind, err);
}

/* Creates the schema in a fresh database, or brings it to this build's
 * version, under the advisory lock: of several hosts starting at once,
 * one migrates and the others then find it done. */
static int
pg_schema(pg_store *s, void *arg, kiln_error *err)
{
    (void)arg;
    int64_t exists = 0, version = 0;
    int rc =
        pg_run(s, PG_Q_LOCK_SCHEMA, PG_ARGS(PG_INT(PG_SCHEMA_LOCK)), NULL, err);
    if (rc == KILN_OK) {
        rc = pg_one(s, PG_Q_HAS_SCHEMA, NULL, 0, pg_row_int, &exists, err);
    }
    if (rc == KILN_OK && exists != 0) {
        rc = pg_one(s, PG_Q_VERSION, NULL, 0, pg_row_int, &version, err);
    }
    if (rc == KILN_OK && version > PG_SCHEMA_VERSION) {
        rc = err_set(err, KILN_EINVAL,
                     "job store schema version %lld is not supported "
                     "(expected %d)",
                     (long long)version, PG_SCHEMA_VERSION);
    }
    for (int64_t v = version; rc == KILN_OK && v < PG_SCHEMA_VERSION; v++) {
        const char *const *sql = pg_migrations[v].sql;
        for (size_t i = 0; rc == KILN_OK && sql[i] != NULL; i++) {
            PGresult *res = NULL;
            rc = pg_exec(s, -1, "create schema", sql[i], NULL, 0, &res, err);
            PQclear(res);
        }
        if (rc == KILN_OK && pg_migrations[v].then != NULL) {
            rc = pg_migrations[v].then(s, err);
        }
        if (rc == KILN_OK) {
            rc = pg_run(s, PG_Q_SET_VERSION,
                        PG_ARGS(PG_INT(v + 1), PG_INT(pg_now())), NULL, err);
        }
    }
    return rc;
}

/* ---------------------------------------------------------- lifecycle */

static void pg_close(jobstore *js);

/* Makes one connection of the pool: libpq's defaults that the DSN may
 * override, the server's version checked, the session set. */
static pg_store *
pg_conn_new(pg_pool *pool, kiln_error *err)
{
    pg_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        err_set(err, KILN_ENOMEM, "job store: out of memory");
        return NULL;
    }
    s->pool = pool;
    /* Defaults the DSN may override (it is expanded after them): give up
     * on an unreachable server after 10 s, and notice a peer that
     * vanished mid-call within about a minute rather than the kernel's
     * two hours, since a call waits meanwhile. */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "application_name",
                                       "client_encoding",
                                       "dbname",
                                       NULL};
    const char *values[] = {"10",   "30",   "10",      "3",
                            "kiln", "UTF8", pool->dsn, NULL};
    s->conn = PQconnectdbParams(keys, values, 1);
    if (s->conn == NULL) {
        err_set(err, KILN_ENOMEM, "job store: out of memory");
        pg_conn_free(s);
        return NULL;
    }
    /* Not the DSN in messages: it may hold a password. */
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char why[PG_WHY_LEN];
        pg_why(s, NULL, why, sizeof why);
        err_set(err, KILN_EIO, "cannot open job store (postgres): %s", why);
        pg_conn_free(s);
        return NULL;
    }
    if (PQserverVersion(s->conn) < PG_MIN_SERVER) {
        err_set(err, KILN_EIO,
                "job store (postgres): server version %d is too old "
                "(expected %d or newer)",
                PQserverVersion(s->conn) / 10000, PG_MIN_SERVER / 10000);
        pg_conn_free(s);
        return NULL;
    }
    if (pg_session(s, err) != KILN_OK) {
        pg_conn_free(s);
        return NULL;
    }
    return s;
}

static void
pg_conn_free(pg_store *s)
{
    if (s != NULL) {
        PQfinish(s->conn); /* NULL is a no-op */
        free(s);
    }
}

static void pg_close(jobstore *js);

static int
pg_open(const char *dsn, jobstore **out, kiln_error *err)
{
    pg_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (pthread_mutex_init(&pool->mu, NULL) != 0 ||
        pthread_mutex_init(&pool->listen_mu, NULL) != 0 ||
        pthread_cond_init(&pool->freed, NULL) != 0 ||
        (pool->dsn = strdup(dsn)) == NULL) {
        free(pool->dsn);
        free(pool);
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    /* The first connection tells at once whether the server is there,
     * and makes the schema. */
    pg_store *first = pg_conn_new(pool, err);
    if (first == NULL) {
        pg_close(&pool->base);
        return err->code;
    }
    pool->n = 1;
    pool->idle[pool->n_idle++] = first;
    int rc = pg_call(pool, PG_WRITE, "create schema", pg_schema, NULL, err);
    if (rc != KILN_OK) {
        pg_close(&pool->base);
        return rc;
    }
    *out = &pool->base;
    return KILN_OK;
}

/* Every call has returned when the store is closed: every connection is
 * idle. */
static void
pg_close(jobstore *js)
{
    pg_pool *pool = pg(js);
    for (int i = 0; i < pool->n_idle; i++) {
        pg_conn_free(pool->idle[i]);
    }
    pg_conn_free(pool->listener);
    pthread_mutex_destroy(&pool->listen_mu);
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->mu);
    free(pool->dsn);
    free(pool);
}

static int
pg_ping_body(pg_store *s, void *arg, kiln_error *err)
{
    (void)arg;
    return pg_run(s, PG_Q_PING, PG_ARGS(PG_INT(pg_now())), NULL, err);
}

/* One statement, the same when run twice: a plain call. A server that is
 * down fails it with KILN_EIO; the first ping after it is back makes the
 * connection again and succeeds. */
static int
pg_ping(jobstore *js, kiln_error *err)
{
    return pg_call(pg(js), PG_PLAIN, "health check", pg_ping_body, NULL, err);
}

/* ---------------------------------------------------------- processes */

static int
pg_create_body(pg_store *s, void *arg, kiln_error *err)
{
    const jobstore_process *p = arg;
    int rc = pg_run(s, PG_Q_CREATE,
                    PG_ARGS(PG_TEXT(p->id), PG_INT(p->service_id),
                            PG_TEXT(jobstore_status_name(p->status)),
                            PG_TEXT(p->request), PG_TEXT(p->callback),
                            PG_TEXT(p->idem_key), PG_TEXT(p->idem_hash),
                            PG_INT(pg_now()), PG_INT(p->not_before),
                            PG_INT(p->notify_status), PG_INT(p->retry_postback),
                            PG_INT(p->n_jobs)),
                    NULL, err);
    s->queued = rc == KILN_OK && p->status == JOBSTORE_QUEUED;
    if (rc == KILN_EEXIST) {
        if (p->idem_key != NULL &&
            strcmp(s->constraint, PG_IDEM_CONSTRAINT) == 0) {
            rc = err_set(err, KILN_EEXIST,
                         "idempotency key \"%s\" already used", p->idem_key);
        } else {
            rc = err_set(err, KILN_EEXIST, "process \"%s\" already exists",
                         p->id);
        }
    }
    return rc;
}

/* In a transaction although it is one INSERT: a connection lost before
 * the COMMIT was sent is then known not to have stored it, and the insert
 * runs again (pg_call). */
static int
pg_create(jobstore *js, const jobstore_process *p, kiln_error *err)
{
    return pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_CREATE].what,
                   pg_create_body, (void *)p, err);
}

/* get() and find_idempotent(): the process of `service_id` that `key`
 * names (an id, or an idempotency key). */
typedef struct pg_lookup_ctx {
    pg_query q;
    const char *key;
    int service_id;
    jobstore_process *out;
} pg_lookup_ctx;

static int
pg_lookup_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_lookup_ctx *c = arg;
    return pg_one_process(
        s, c->q, PG_ARGS(PG_TEXT(c->key), PG_INT(c->service_id)), c->out, err);
}

static int
pg_lookup(jobstore *js, pg_query q, const char *key, int service_id,
          const char *what, jobstore_process *out, kiln_error *err)
{
    pg_lookup_ctx c = {q, key, service_id, out};
    int rc =
        pg_call(pg(js), PG_PLAIN, pg_queries[q].what, pg_lookup_body, &c, err);
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "%s \"%s\" not found", what, key);
    }
    return rc;
}

static int
pg_get(jobstore *js, const char *id, int service_id, jobstore_process *out,
       kiln_error *err)
{
    return pg_lookup(js, PG_Q_GET, id, service_id, "process", out, err);
}

static int
pg_find_idempotent(jobstore *js, int service_id, const char *key,
                   jobstore_process *out, kiln_error *err)
{
    return pg_lookup(js, PG_Q_FIND_IDEM, key, service_id, "idempotency key",
                     out, err);
}

typedef struct pg_claim_ctx {
    int64_t now;
    int lease_seconds;
    jobstore_process *out;
    bool none; /* no process was ready */
} pg_claim_ctx;

static int
pg_claim_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_claim_ctx *c = arg;
    int rc = KILN_OK;
    c->none = false;
    /* A process it took that had been asked to stop is CANCELLED now (its
     * status change told): on to the next. Each turn ends one of them. */
    for (;;) {
        rc = pg_one_process(s, PG_Q_CLAIM,
                            PG_ARGS(PG_INT(c->now),
                                    PG_INT(c->now + c->lease_seconds),
                                    PG_INT(pg_now())),
                            c->out, err);
        if (rc == KILN_OK) {
            rc = pg_notify(s, c->out->id, c->out, err);
        }
        if (rc != KILN_OK || c->out->status != JOBSTORE_CANCELLED) {
            break;
        }
        jobstore_process_clear(c->out);
    }
    if (rc != KILN_OK) {
        jobstore_process_clear(c->out);
    }
    /* Nothing ready is no failure: the processes it cancelled on the way
     * are committed all the same. */
    if (rc == KILN_ENOTFOUND) {
        c->none = true;
        rc = KILN_OK;
    }
    return rc;
}

static int
pg_claim(jobstore *js, int64_t now, int lease_seconds, jobstore_process *out,
         kiln_error *err)
{
    pg_claim_ctx c = {now, lease_seconds, out, false};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_CLAIM].what,
                     pg_claim_body, &c, err);
    if (rc == KILN_OK && c.none) {
        rc = err_set(err, KILN_ENOTFOUND, "no process is ready");
    }
    if (rc != KILN_OK) {
        jobstore_process_clear(out);
    }
    return rc;
}

static int
pg_complete_timed(jobstore *js, const char *id, int64_t token,
                  jobstore_status status, const char *result_json,
                  const char *error, double duration_ms, kiln_error *err)
{
    char ms[32]; /* text, as rate() sends its reals: round-trips exactly */
    snprintf(ms, sizeof ms, "%.17g", duration_ms);
    return pg_transition(pg(js), PG_Q_COMPLETE,
                         PG_ARGS(PG_TEXT(id),
                                 PG_TEXT(jobstore_status_name(status)),
                                 PG_TEXT(result_json), PG_TEXT(error),
                                 PG_INT(pg_now()), PG_INT(token), PG_TEXT(ms)),
                         NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
pg_complete(jobstore *js, const char *id, int64_t token, jobstore_status status,
            const char *result_json, const char *error, kiln_error *err)
{
    return pg_complete_timed(js, id, token, status, result_json, error, -1,
                             err);
}

static int
pg_requeue(jobstore *js, const char *id, int64_t token, int64_t not_before,
           const char *error, kiln_error *err)
{
    return pg_transition(pg(js), PG_Q_REQUEUE,
                         PG_ARGS(PG_TEXT(id), PG_INT(not_before),
                                 PG_TEXT(error), PG_INT(pg_now()),
                                 PG_INT(token)),
                         NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
pg_renew(jobstore *js, const char *id, int64_t token, int64_t now,
         int lease_seconds, kiln_error *err)
{
    return pg_transition(
        pg(js), PG_Q_RENEW,
        PG_ARGS(PG_TEXT(id), PG_INT(now + lease_seconds), PG_INT(token)), NULL,
        NULL, id, -1, "PROCESSING", false, err);
}

static int
pg_interrupt(jobstore *js, const char *id, int64_t token, const char *error,
             kiln_error *err)
{
    return pg_transition(
        pg(js), PG_Q_INTERRUPT,
        PG_ARGS(PG_TEXT(id), PG_TEXT(error), PG_INT(pg_now()), PG_INT(token)),
        NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
pg_set_processing(jobstore *js, const char *id, int service_id,
                  const char *callback, kiln_error *err)
{
    return pg_transition(pg(js), PG_Q_SET_PROCESSING,
                         PG_ARGS(PG_TEXT(id), PG_INT(service_id),
                                 PG_TEXT(callback), PG_INT(pg_now())),
                         NULL, NULL, id, service_id, "INCOMPLETE", true, err);
}

/* retry() and cancel() of one process: which, and what came of it. */
typedef struct pg_act_ctx {
    const char *id;
    int service_id;
    jobstore_status was; /* the status it had */
    int64_t attempt;     /* retry: the new attempt */
} pg_act_ctx;

/* Inside a write transaction: the status of process `id` of
 * `service_id` into *out, its row locked until the transaction ends;
 * KILN_ENOTFOUND naming the process when it has none. retry() and
 * cancel() decide from it, and say which it was. */
static int
pg_status_locked(pg_store *s, const char *id, int service_id,
                 jobstore_status *out, kiln_error *err)
{
    char name[PG_NAME_LEN] = "";
    int rc =
        pg_one(s, PG_Q_STATUS_LOCK, PG_ARGS(PG_TEXT(id), PG_INT(service_id)),
               pg_row_name, name, err);
    int status = jobstore_status_parse(name);
    if (rc == KILN_ENOTFOUND) {
        return err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
    }
    if (rc == KILN_OK) {
        rc = pg_row_checked(false, status, "process", "status", err);
    }
    if (rc == KILN_OK) {
        *out = (jobstore_status)status;
    }
    return rc;
}

static int
pg_retry_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_act_ctx *c = arg;
    int rc = pg_status_locked(s, c->id, c->service_id, &c->was, err);
    if (rc == KILN_OK && !jobstore_status_ended(c->was)) {
        rc = err_set(err, KILN_EPERM,
                     "cannot retry process \"%s\": it is %s (expected "
                     "FINISHED, FAILED or CANCELLED)",
                     c->id, jobstore_status_name(c->was));
    }
    if (rc == KILN_OK) {
        rc = pg_one(
            s, PG_Q_RETRY,
            PG_ARGS(PG_TEXT(c->id), PG_INT(c->service_id), PG_INT(pg_now())),
            pg_row_int, &c->attempt, err);
    }
    if (rc == KILN_OK) {
        rc = pg_notify(s, c->id, NULL, err);
    }
    /* A re-queued process wakes the other hosts' workers (pg_call). */
    s->queued = rc == KILN_OK;
    return rc;
}

static int
pg_retry(jobstore *js, const char *id, int service_id, int *attempt,
         jobstore_status *was, kiln_error *err)
{
    pg_act_ctx c = {id, service_id, JOBSTORE_N_STATUS, 0};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_RETRY].what,
                     pg_retry_body, &c, err);
    *was = c.was;
    if (rc == KILN_OK) {
        *attempt = (int)c.attempt;
    }
    return rc;
}

static int
pg_recover_body(pg_store *s, void *arg, kiln_error *err)
{
    int *n_requeued = arg;
    pg_rows cancelled =
        PG_ROWS(pg_read_process, pg_clear_process, jobstore_process);
    int rc = pg_each_row(s, PG_Q_RECOVER_CANCEL, PG_ARGS(PG_INT(pg_now())),
                         &cancelled, err);
    jobstore_process *ps = cancelled.items;
    for (size_t i = 0; rc == KILN_OK && i < cancelled.n; i++) {
        rc = pg_notify(s, ps[i].id, &ps[i], err);
    }
    pg_rows_free(&cancelled);
    if (rc == KILN_OK) {
        rc =
            pg_run(s, PG_Q_RECOVER, PG_ARGS(PG_INT(pg_now())), n_requeued, err);
    }
    s->queued = rc == KILN_OK && *n_requeued > 0;
    return rc;
}

/* In a transaction: a connection lost before the COMMIT leaves nothing
 * recovered, and the count comes from the run that did it. */
static int
pg_recover(jobstore *js, int *n_requeued, kiln_error *err)
{
    return pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_RECOVER].what,
                   pg_recover_body, n_requeued, err);
}

typedef struct pg_prune_ctx {
    int64_t before;
    int max;
    int *n_pruned;
} pg_prune_ctx;

static int
pg_prune_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_prune_ctx *c = arg;
    int rc = pg_run(s, PG_Q_PRUNE, PG_ARGS(PG_INT(c->before), PG_INT(c->max)),
                    c->n_pruned, err);
    if (rc == KILN_OK) {
        rc = pg_run(s, PG_Q_RATE_PRUNE, NULL, 0, NULL, err);
    }
    return rc;
}

static int
pg_prune(jobstore *js, int64_t before, int max, int *n_pruned, kiln_error *err)
{
    pg_prune_ctx c = {before, max, n_pruned};
    return pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_PRUNE].what, pg_prune_body,
                   &c, err);
}

/* The status and the request of the process append_jobs() grows. */
typedef struct pg_request {
    char status[PG_NAME_LEN];
    cJSON *json; /* NULL if the text is not JSON */
} pg_request;

static int
pg_read_request(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    pg_request *r = ctx;
    pg_row_name(res, row, r->status, err);
    r->json = cJSON_Parse(PQgetvalue(res, row, 1));
    return KILN_OK;
}

/* Appends the elements of `add` (emptied) to req's "jobs" array, made if
 * missing, unless the total would pass max_jobs > 0. */
static int
pg_add_jobs(const char *id, cJSON *req, cJSON *add, size_t max_jobs,
            size_t *n_jobs, kiln_error *err)
{
    if (req == NULL || !cJSON_IsObject(req)) {
        return err_set(err, KILN_EINTERNAL,
                       "stored request of process \"%s\" is not a JSON object",
                       id);
    }
    cJSON *jobs = cJSON_GetObjectItemCaseSensitive(req, "jobs");
    if (jobs == NULL || !cJSON_IsArray(jobs)) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "jobs");
        jobs = cJSON_AddArrayToObject(req, "jobs");
        if (jobs == NULL) {
            return err_set(err, KILN_ENOMEM, "job store: out of memory");
        }
    }
    size_t n =
        (size_t)cJSON_GetArraySize(jobs) + (size_t)cJSON_GetArraySize(add);
    if (max_jobs > 0 && n > max_jobs) {
        return err_set(err, KILN_ELIMIT,
                       "process \"%s\" would have %zu jobs (at most %zu "
                       "allowed)",
                       id, n, max_jobs);
    }
    while (cJSON_GetArraySize(add) > 0) {
        cJSON_AddItemToArray(jobs, cJSON_DetachItemFromArray(add, 0));
    }
    *n_jobs = n;
    return KILN_OK;
}

typedef struct pg_append_ctx {
    const char *id;
    int service_id;
    const cJSON *add; /* the parsed jobs_json, left as it is */
    size_t max_jobs;
    size_t n_jobs; /* the new total */
} pg_append_ctx;

static int
pg_append_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_append_ctx *c = arg;
    pg_request req = {"", NULL};
    char *text = NULL;
    /* A copy to empty: the body may run twice. */
    cJSON *add = cJSON_Duplicate(c->add, true);
    int rc = KILN_OK;
    if (add == NULL) {
        rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (rc == KILN_OK) {
        rc = pg_one(s, PG_Q_READ_REQUEST,
                    PG_ARGS(PG_TEXT(c->id), PG_INT(c->service_id)),
                    pg_read_request, &req, err);
    }
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", c->id);
    } else if (rc == KILN_OK && strcmp(req.status, "INCOMPLETE") != 0) {
        rc = err_set(err, KILN_EPERM,
                     "cannot append jobs to process \"%s\": it is %s "
                     "(expected INCOMPLETE)",
                     c->id, req.status);
    }
    if (rc == KILN_OK) {
        rc = pg_add_jobs(c->id, req.json, add, c->max_jobs, &c->n_jobs, err);
    }
    if (rc == KILN_OK) {
        text = cJSON_PrintUnformatted(req.json);
        if (text == NULL) {
            rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
        }
    }
    if (rc == KILN_OK) {
        rc = pg_run(s, PG_Q_WRITE_REQUEST,
                    PG_ARGS(PG_TEXT(c->id), PG_TEXT(text), PG_INT(pg_now()),
                            PG_INT(c->n_jobs)),
                    NULL, err);
    }
    free(text);
    cJSON_Delete(req.json);
    cJSON_Delete(add);
    return rc;
}

static int
pg_append_jobs(jobstore *js, const char *id, int service_id,
               const char *jobs_json, size_t max_jobs, size_t *n_jobs,
               kiln_error *err)
{
    cJSON *add = cJSON_Parse(jobs_json);
    if (add == NULL || !cJSON_IsArray(add)) {
        cJSON_Delete(add);
        return err_set(err, KILN_EINVAL, "jobs to append must be a JSON array");
    }
    pg_append_ctx c = {id, service_id, add, max_jobs, 0};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_WRITE_REQUEST].what,
                     pg_append_body, &c, err);
    if (rc == KILN_OK) {
        *n_jobs = c.n_jobs;
    }
    cJSON_Delete(add);
    return rc;
}

typedef struct pg_list_ctx {
    const jobstore_query *q;
    pg_ids services; /* the int[] literal */
    pg_rows list;
} pg_list_ctx;

static int
pg_list_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_list_ctx *c = arg;
    const jobstore_query *q = c->q;
    int64_t since = 0, before = 0;
    const char *before_id = "";
    jobstore_query_bounds(q, &since, &before, &before_id);
    const char *status =
        q->status < 0 ? "" : jobstore_status_name((jobstore_status)q->status);
    return pg_each_row(s, PG_Q_LIST,
                       PG_ARGS(PG_TEXT(c->services.text), PG_TEXT(status),
                               PG_INT(since), PG_INT(before),
                               PG_TEXT(before_id), PG_INT(q->limit)),
                       &c->list, err);
}

static int
pg_list(jobstore *js, const jobstore_query *q, jobstore_process **out,
        size_t *n_out, kiln_error *err)
{
    pg_list_ctx c = {
        q,
        {NULL, 0, 0, 0},
        PG_ROWS(pg_read_process, pg_clear_process, jobstore_process)};
    int rc = pg_ints(&c.services, q->service_ids, q->n_service_ids, err);
    if (rc == KILN_OK) {
        rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_LIST].what, pg_list_body,
                     &c, err);
    }
    free(c.services.text);
    if (rc != KILN_OK) {
        pg_rows_free(&c.list);
        return rc;
    }
    *out = c.list.items;
    *n_out = c.list.n;
    return KILN_OK;
}

static int
pg_cancel_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_act_ctx *c = arg;
    int rc = pg_status_locked(s, c->id, c->service_id, &c->was, err);
    if (rc == KILN_OK && jobstore_status_ended(c->was)) {
        rc = err_set(err, KILN_EPERM,
                     "cannot cancel process \"%s\": it is %s (it has ended)",
                     c->id, jobstore_status_name(c->was));
    }
    if (rc == KILN_OK) {
        rc = pg_run(s, PG_Q_CANCEL, PG_ARGS(PG_TEXT(c->id), PG_INT(pg_now())),
                    NULL, err);
    }
    if (rc == KILN_OK && c->was != JOBSTORE_PROCESSING) {
        rc = pg_notify(s, c->id, NULL, err);
    }
    return rc;
}

static int
pg_cancel(jobstore *js, const char *id, int service_id, jobstore_status *was,
          kiln_error *err)
{
    pg_act_ctx c = {id, service_id, JOBSTORE_N_STATUS, 0};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_CANCEL].what,
                     pg_cancel_body, &c, err);
    *was = c.was;
    return rc;
}

typedef struct pg_cancel_requested_ctx {
    const char *const *ids;
    size_t n;
    pg_ids list; /* the text[] literal */
    bool *seen;
} pg_cancel_requested_ctx;

static int
pg_read_id_seen(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    (void)err;
    pg_cancel_requested_ctx *c = ctx;
    const char *id = PQgetvalue(res, row, 0);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->ids[i], id) == 0) {
            c->seen[i] = true;
        }
    }
    return KILN_OK;
}

static int
pg_cancel_requested_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_cancel_requested_ctx *c = arg;
    return pg_each(s, PG_Q_CANCEL_REQUESTED, PG_ARGS(PG_TEXT(c->list.text)),
                   pg_read_id_seen, c, err);
}

static int
pg_cancel_requested(jobstore *js, const char *const *ids, size_t n, bool *out,
                    kiln_error *err)
{
    pg_cancel_requested_ctx c = {ids, n, {NULL, 0, 0, 0}, out};
    int rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < n; i++) {
        rc = pg_ids_add(&c.list, ids[i], err);
    }
    if (rc == KILN_OK) {
        rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_CANCEL_REQUESTED].what,
                     pg_cancel_requested_body, &c, err);
    }
    free(c.list.text);
    return rc;
}

typedef struct pg_ended_ctx {
    pg_ids services; /* the int[] literal */
    int64_t since, until;
    pg_rows rows;
} pg_ended_ctx;

/* A row of PG_Q_ENDED into the jobstore_ended_process ctx. */
static int
pg_read_ended(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    jobstore_ended_process *e = ctx;
    int status = jobstore_status_parse(PQgetvalue(res, row, 1));
    e->updated_at = pg_col_int(res, row, 0);
    e->status = (jobstore_status)status;
    e->duration_ms = pg_col_real(res, row, 2);
    return pg_row_checked(false, status, "process", "status", err);
}

static int
pg_ended_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_ended_ctx *c = arg;
    return pg_each_row(
        s, PG_Q_ENDED,
        PG_ARGS(PG_TEXT(c->services.text), PG_INT(c->since), PG_INT(c->until)),
        &c->rows, err);
}

static int
pg_ended(jobstore *js, const int *service_ids, size_t n_service_ids,
         int64_t since, int64_t until, jobstore_ended_process **out,
         size_t *n_out, kiln_error *err)
{
    pg_ended_ctx c = {{NULL, 0, 0, 0},
                      since,
                      until,
                      PG_ROWS(pg_read_ended, NULL, jobstore_ended_process)};
    int rc = pg_ints(&c.services, service_ids, n_service_ids, err);
    if (rc == KILN_OK) {
        rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_ENDED].what,
                     pg_ended_body, &c, err);
    }
    free(c.services.text);
    if (rc != KILN_OK) {
        pg_rows_free(&c.rows);
        return rc;
    }
    *out = c.rows.items;
    *n_out = c.rows.n;
    return KILN_OK;
}

/* ---------------------------------------------------------- postbacks */

typedef struct pg_enqueue_ctx {
    const jobstore_postback *pb;
    int64_t id;
} pg_enqueue_ctx;

static int
pg_enqueue_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_enqueue_ctx *c = arg;
    const jobstore_postback *pb = c->pb;
    return pg_one(s, PG_Q_PB_ENQUEUE,
                  PG_ARGS(PG_TEXT(pb->process_id), PG_INT(pb->service_id),
                          PG_TEXT(pb->url), PG_TEXT(pb->body),
                          PG_INT(pb->next_at), PG_INT(pg_now()),
                          PG_INT(pb->retry)),
                  pg_row_int, &c->id, err);
}

static int
pg_postback_enqueue(jobstore *js, const jobstore_postback *pb, int64_t *id,
                    kiln_error *err)
{
    pg_enqueue_ctx c = {pb, 0};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_PB_ENQUEUE].what,
                     pg_enqueue_body, &c, err);
    if (rc == KILN_OK) {
        *id = c.id;
    }
    return rc;
}

typedef struct pg_due_ctx {
    int64_t now, limit, until;
    pg_rows list;
} pg_due_ctx;

static int
pg_due_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_due_ctx *c = arg;
    return pg_each_row(
        s, PG_Q_PB_DUE,
        PG_ARGS(PG_INT(c->now), PG_INT(c->limit), PG_INT(c->until)), &c->list,
        err);
}

static int
pg_postback_due(jobstore *js, int64_t now, int lease_seconds, size_t max,
                jobstore_postback **out, size_t *n_out, kiln_error *err)
{
    pg_due_ctx c = {
        now, max > INT64_MAX ? INT64_MAX : (int64_t)max, now + lease_seconds,
        PG_ROWS(pg_read_postback, pg_clear_postback, jobstore_postback)};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_PB_DUE].what,
                     pg_due_body, &c, err);
    if (rc != KILN_OK) {
        pg_rows_free(&c.list);
    }
    *out = c.list.items;
    *n_out = c.list.n;
    return rc;
}

/* The state and attempts of the postback postback_record() updates. */
typedef struct pg_pb_state {
    char state[PG_NAME_LEN];
    int attempt;
} pg_pb_state;

static int
pg_read_pb_state(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    pg_pb_state *p = ctx;
    p->attempt = (int)pg_col_int(res, row, 1);
    return pg_row_name(res, row, p->state, err);
}

typedef struct pg_record_ctx {
    int64_t id;
    bool delivered;
    int http_status;
    const char *error;
    int64_t now;
    bool retry;
    jobstore_postback_state next; /* the state it was given */
} pg_record_ctx;

static int
pg_record_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_record_ctx *c = arg;
    pg_pb_state cur = {"", 0};
    int rc = pg_one(s, PG_Q_PB_STATE, PG_ARGS(PG_INT(c->id)), pg_read_pb_state,
                    &cur, err);
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)c->id);
    } else if (rc == KILN_OK && strcmp(cur.state, "PENDING") != 0) {
        rc = err_set(err, KILN_EPERM, "postback %lld is %s (expected PENDING)",
                     (long long)c->id, cur.state);
    }
    int attempt = cur.attempt + 1;
    jobstore_postback_state next = JOBSTORE_PB_DELIVERED;
    int64_t next_at = c->now;
    if (!c->delivered) {
        int delay = c->retry ? jobstore_postback_delay(attempt) : -1;
        next = delay < 0 ? JOBSTORE_PB_GIVEN_UP : JOBSTORE_PB_PENDING;
        next_at = c->now + (delay < 0 ? 0 : delay);
    }
    if (rc == KILN_OK) {
        rc = pg_run(
            s, PG_Q_PB_RECORD,
            PG_ARGS(PG_INT(c->id), PG_TEXT(jobstore_postback_state_name(next)),
                    PG_INT(attempt), PG_INT(next_at), PG_INT(c->http_status),
                    PG_TEXT(c->error), PG_INT(pg_now())),
            NULL, err);
    }
    c->next = next;
    return rc;
}

static int
pg_postback_record(jobstore *js, int64_t id, bool delivered, int http_status,
                   const char *error, int64_t now, bool retry,
                   jobstore_postback_state *state, kiln_error *err)
{
    pg_record_ctx c = {id,  delivered, http_status,        error,
                       now, retry,     JOBSTORE_PB_PENDING};
    int rc = pg_call(pg(js), PG_WRITE, pg_queries[PG_Q_PB_RECORD].what,
                     pg_record_body, &c, err);
    if (rc == KILN_OK) {
        *state = c.next;
    }
    return rc;
}

typedef struct pg_pb_get_ctx {
    int64_t id;
    jobstore_postback *out;
} pg_pb_get_ctx;

static int
pg_pb_get_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_pb_get_ctx *c = arg;
    int rc = pg_one(s, PG_Q_PB_GET, PG_ARGS(PG_INT(c->id)), pg_read_postback,
                    c->out, err);
    if (rc != KILN_OK) {
        jobstore_postback_clear(c->out);
    }
    return rc;
}

static int
pg_postback_get(jobstore *js, int64_t id, jobstore_postback *out,
                kiln_error *err)
{
    pg_pb_get_ctx c = {id, out};
    int rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_PB_GET].what,
                     pg_pb_get_body, &c, err);
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)id);
    }
    return rc;
}

typedef struct pg_postbacks_of_ctx {
    const char *process_id;
    pg_rows list;
} pg_postbacks_of_ctx;

static int
pg_postbacks_of_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_postbacks_of_ctx *c = arg;
    return pg_each_row(s, PG_Q_POSTBACKS_OF, PG_ARGS(PG_TEXT(c->process_id)),
                       &c->list, err);
}

static int
pg_postbacks_of(jobstore *js, const char *process_id, jobstore_postback **out,
                size_t *n_out, kiln_error *err)
{
    pg_postbacks_of_ctx c = {
        process_id,
        PG_ROWS(pg_read_postback, pg_clear_postback, jobstore_postback)};
    int rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_POSTBACKS_OF].what,
                     pg_postbacks_of_body, &c, err);
    if (rc != KILN_OK) {
        pg_rows_free(&c.list);
        return rc;
    }
    *out = c.list.items;
    *n_out = c.list.n;
    return KILN_OK;
}

/* ------------------------------------------------------------ metrics */

static int
pg_read_count(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    (void)err;
    jobstore_counts *out = ctx;
    int64_t kind = pg_col_int(res, row, 0);
    const char *name = PQgetvalue(res, row, 1);
    int64_t n = pg_col_int(res, row, 2);
    if (kind == 0 && jobstore_status_parse(name) >= 0) {
        out->processes[jobstore_status_parse(name)] = n;
    } else if (kind == 1 && jobstore_postback_state_parse(name) >= 0) {
        out->postbacks[jobstore_postback_state_parse(name)] = n;
    } else if (kind == 2) {
        out->queue_ready = n;
    }
    return KILN_OK;
}

typedef struct pg_counts_ctx {
    int64_t now;
    jobstore_counts *out;
} pg_counts_ctx;

static int
pg_counts_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_counts_ctx *c = arg;
    memset(c->out, 0, sizeof *c->out);
    return pg_each(s, PG_Q_COUNTS, PG_ARGS(PG_INT(c->now)), pg_read_count,
                   c->out, err);
}

static int
pg_counts(jobstore *js, int64_t now, jobstore_counts *out, kiln_error *err)
{
    pg_counts_ctx c = {now, out};
    return pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_COUNTS].what,
                   pg_counts_body, &c, err);
}

/* LISTEN on a connection of its own, made on first use and again after
 * it was lost; then waits up to timeout_ms for a notification that work
 * was queued (by any host). KILN_OK: woken; KILN_ENOTFOUND: the time ran
 * out; KILN_EIO: the server cannot be reached (the caller waits before
 * asking again). */
static int
pg_wait_work(jobstore *js, int timeout_ms, kiln_error *err)
{
    pg_pool *pool = pg(js);
    pthread_mutex_lock(&pool->listen_mu);
    pg_store *l = pool->listener;
    int rc = KILN_OK;
    if (l != NULL && pg_is_lost(l)) {
        pg_conn_free(l);
        l = pool->listener = NULL;
    }
    if (l == NULL) {
        err_clear(err);
        l = pg_conn_new(pool, err);
        if (l == NULL ||
            pg_run(l, PG_Q_LISTEN, NULL, 0, NULL, err) != KILN_OK) {
            rc = err->code != KILN_OK ? err->code : KILN_EIO;
            pg_conn_free(l);
            pthread_mutex_unlock(&pool->listen_mu);
            return rc;
        }
        pool->listener = l;
    }
    double end = clock_ms() + timeout_ms;
    rc = KILN_ENOTFOUND;
    for (;;) {
        if (PQconsumeInput(l->conn) == 0) {
            char why[PG_WHY_LEN];
            pg_why(l, NULL, why, sizeof why);
            rc =
                err_set(err, KILN_EIO, "job store (postgres): listen: %s", why);
            break;
        }
        PGnotify *n;
        bool woken = false;
        while ((n = PQnotifies(l->conn)) != NULL) {
            woken = true;
            PQfreemem(n);
        }
        if (woken) {
            rc = KILN_OK;
            break;
        }
        double left = end - clock_ms();
        if (left <= 0) {
            break;
        }
        struct pollfd pfd = {PQsocket(l->conn), POLLIN, 0};
        if (pfd.fd < 0) {
            rc = err_set(err, KILN_EIO,
                         "job store (postgres): listen: no connection");
            break;
        }
        if (poll(&pfd, 1, (int)left + 1) < 0 && errno != EINTR) {
            rc = err_set(err, KILN_EIO, "job store (postgres): listen: %s",
                         strerror(errno));
            break;
        }
    }
    pthread_mutex_unlock(&pool->listen_mu);
    return rc;
}

typedef struct pg_rate_ctx {
    const char *key;
    double rate, burst;
    int cost;
    bool ok;
    double tokens;
} pg_rate_ctx;

/* A row (ok, tokens) of PG_Q_RATE_TAKE or PG_Q_RATE_LEVEL. */
static int
pg_row_rate(const PGresult *res, int row, void *ctx, kiln_error *err)
{
    (void)err;
    pg_rate_ctx *c = ctx;
    c->ok = pg_col_int(res, row, 0) != 0;
    c->tokens = strtod(PQgetvalue(res, row, 1), NULL);
    return KILN_OK;
}

static int
pg_rate_body(pg_store *s, void *arg, kiln_error *err)
{
    pg_rate_ctx *c = arg;
    char rate[32], burst[32], cost[8];
    snprintf(rate, sizeof rate, "%.17g", c->rate);
    snprintf(burst, sizeof burst, "%.17g", c->burst);
    snprintf(cost, sizeof cost, "%d", c->cost);
    if (c->cost == 0) {
        int rc = pg_one(s, PG_Q_RATE_LEVEL,
                        PG_ARGS(PG_TEXT(c->key), PG_TEXT(rate), PG_TEXT(burst)),
                        pg_row_rate, c, err);
        if (rc == KILN_ENOTFOUND) { /* no bucket is a full one */
            err_clear(err);
            c->tokens = c->burst;
            rc = KILN_OK;
        }
        c->ok = c->tokens >= 1;
        return rc;
    }
    return pg_one(
        s, PG_Q_RATE_TAKE,
        PG_ARGS(PG_TEXT(c->key), PG_TEXT(rate), PG_TEXT(burst), PG_TEXT(cost)),
        pg_row_rate, c, err);
}

static int
pg_rate(jobstore *js, const char *key, double rate, double burst, int cost,
        int *wait, kiln_error *err)
{
    pg_rate_ctx c = {key, rate, burst, cost, false, 0};
    /* One statement, committed on its own: a bucket written twice after
     * a lost connection only spends one more token. */
    int rc = pg_call(pg(js), PG_PLAIN, pg_queries[PG_Q_RATE_TAKE].what,
                     pg_rate_body, &c, err);
    if (rc == KILN_OK) {
        *wait = c.ok ? 0 : (int)ceil((1 - c.tokens) / rate);
        if (!c.ok && *wait < 1) {
            *wait = 1;
        }
    }
    return rc;
}

const jobstore_driver jobstore_pg_driver = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .ping = pg_ping,
    .create = pg_create,
    .get = pg_get,
    .find_idempotent = pg_find_idempotent,
    .claim = pg_claim,
    .complete = pg_complete,
    .requeue = pg_requeue,
    .recover = pg_recover,
    .retry = pg_retry,
    .append_jobs = pg_append_jobs,
    .set_processing = pg_set_processing,
    .postback_enqueue = pg_postback_enqueue,
    .postback_due = pg_postback_due,
    .postback_record = pg_postback_record,
    .postback_get = pg_postback_get,
    .counts = pg_counts,
    .renew = pg_renew,
    .interrupt = pg_interrupt,
    .prune = pg_prune,
    .wait_work = pg_wait_work,
    .rate = pg_rate,
    .complete_timed = pg_complete_timed,
    .list = pg_list,
    .cancel = pg_cancel,
    .cancel_requested = pg_cancel_requested,
    .ended = pg_ended,
    .postbacks_of = pg_postbacks_of,
};
