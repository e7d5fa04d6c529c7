/*
 * The embedded job store driver: one SQLite file in WAL mode with
 * synchronous=FULL, so a commit is on disk when a call returns. One
 * connection per store, guarded by a mutex (the HTTP threads and workers
 * share it); every read-modify-write runs in BEGIN IMMEDIATE, so several
 * processes on the same file (tests, or `kiln` tools) stay atomic too.
 * All SQL of the job store lives here, in the table sq_queries; each
 * statement is prepared once per connection and reused under the mutex.
 */
#include "jobstore.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "../core/kiln.h"

#define SQ_SCHEMA_VERSION 1
#define SQ_BUSY_TIMEOUT_MS 10000
#define SQ_NAME_LEN 16 /* a status or state name, NUL included */

/* Columns of jobstore_process, in sq_read_process's order, with the
 * expressions read as request and result. */
#define SQ_PROC_COLS_AS(request, result)                                       \
    "id, service_id, status, attempt, n_requeues, " request                    \
    ", callback, " result                                                      \
    ", error, idem_key, idem_hash, created_at, updated_at, "                   \
    "not_before, lease_until, n_interrupts, lease_token, notify_status, "      \
    "retry_postback, n_jobs, duration_ms, cancel_requested"
#define SQ_PROC_COLS SQ_PROC_COLS_AS("request", "result")
/* list() leaves the two large texts out. */
#define SQ_LIST_COLS SQ_PROC_COLS_AS("NULL", "NULL")

/* The statuses of processes that have ended. */
#define SQ_ENDED "('FINISHED', 'FAILED', 'CANCELLED')"

/* A process whose run was asked to stop (cancel_requested) and that would
 * go back to the queue (or run again) ends CANCELLED instead, with this
 * error: the start of the CASE of each column that says so. */
#define SQ_IF_CANCEL "CASE WHEN cancel_requested THEN "
#define SQ_CANCELLED_RAN "'cancelled while it ran'"

/* The fencing condition of a change by a claim's holder: its token is the
 * claim's, or 0 (any holder). */
#define SQ_FENCE(t) "(" t " = 0 OR lease_token = " t ")"

/* The ids prune() deletes (?1 before, ?2 max). */
#define SQ_PRUNABLE                                                            \
    "SELECT id FROM process WHERE status IN " SQ_ENDED " AND "                 \
    "updated_at < ?1 AND NOT EXISTS (SELECT 1 FROM postback WHERE "            \
    "postback.process_id = process.id AND state = 'PENDING') ORDER BY "        \
    "updated_at LIMIT ?2"

#define SQ_PB_COLS                                                             \
    "id, process_id, service_id, url, body, state, attempt, next_at, "         \
    "last_status, last_error, retry"

/* Queue order: a counter that grows each time a process enters QUEUED
 * (creation, requeue, retry, set_processing), so claims are FIFO by the
 * moment a process was queued. recover() and a lease taken back keep the
 * old value: interrupted work goes first. */
#define SQ_NEXT_SEQ "(SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM process)"

/* The postbacks postback_due() takes (?1 now, ?2 max): the SELECT that
 * reads them and the UPDATE that leases them, in one write transaction,
 * see the same rows. */
#define SQ_PB_DUE_WHERE                                                        \
    "state = 'PENDING' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"

/* Why a process whose lease ran out is in the queue again (its error). */
#define SQ_LEASE_EXPIRED "'lease expired: re-run'"

/* Every statement the driver runs, an index into sq_queries. */
typedef enum sq_query {
    SQ_Q_WAL,
    SQ_Q_HAS_SCHEMA,
    SQ_Q_VERSION,
    SQ_Q_PING,
    SQ_Q_CREATE,
    SQ_Q_GET,
    SQ_Q_GET_ID,
    SQ_Q_FIND_IDEM,
    SQ_Q_STATUS,
    SQ_Q_CLAIM,
    SQ_Q_COMPLETE,
    SQ_Q_REQUEUE,
    SQ_Q_RENEW,
    SQ_Q_INTERRUPT,
    SQ_Q_RECOVER_CANCEL,
    SQ_Q_RECOVER,
    SQ_Q_RETRY,
    SQ_Q_READ_REQUEST,
    SQ_Q_WRITE_REQUEST,
    SQ_Q_SET_PROCESSING,
    SQ_Q_PB_ENQUEUE,
    SQ_Q_PB_DUE,
    SQ_Q_PB_LEASE,
    SQ_Q_PB_STATE,
    SQ_Q_PB_RECORD,
    SQ_Q_PB_GET,
    SQ_Q_COUNTS,
    SQ_Q_PRUNE_POSTBACKS,
    SQ_Q_PRUNE,
    SQ_Q_LIST,
    SQ_Q_CANCEL,
    SQ_Q_CANCEL_REQUESTED,
    SQ_Q_ENDED,
    SQ_Q_POSTBACKS_OF,
    SQ_N_QUERIES
} sq_query;

typedef struct sq_store {
    jobstore base; /* first: the handle the interface sees */
    sqlite3 *db;
    pthread_mutex_t mu; /* held by every call, around every statement */
    sqlite3_stmt *stmts[SQ_N_QUERIES]; /* prepared on first use */
} sq_store;

/* One value bound to a statement parameter: text (NULL binds SQL NULL),
 * an integer or a real. Text is bound without a copy: it must outlive the
 * step, which every helper below finishes before it returns. */
typedef struct sq_arg {
    bool is_text;
    const char *text;
    int64_t num;
    bool is_real;
    double real;
} sq_arg;

#define SQ_TEXT(v)                                                             \
    {                                                                          \
        .is_text = true, .text = (v)                                           \
    }
#define SQ_INT(v)                                                              \
    {                                                                          \
        .num = (int64_t)(v)                                                    \
    }
#define SQ_REAL(v)                                                             \
    {                                                                          \
        .is_real = true, .real = (v)                                           \
    }
/* The arguments ?1, ?2, ... of a statement as the pair (array, count)
 * the helpers take; sizeof does not evaluate its operand. */
#define SQ_ARGS(...)                                                           \
    (const sq_arg[]){__VA_ARGS__},                                             \
        (int)(sizeof((const sq_arg[]){__VA_ARGS__}) / sizeof(sq_arg))

/* Reads the current row of a statement into ctx. */
typedef int (*sq_row_fn)(sqlite3_stmt *st, void *ctx, kiln_error *err);

/* How sq_enter opens a call: no transaction (one statement is atomic by
 * itself), one read snapshot, or a write transaction taken at once. */
typedef enum sq_mode { SQ_PLAIN, SQ_SNAPSHOT, SQ_WRITE } sq_mode;

/* What each statement does (for messages: "job store: <what>: <why>"),
 * and its text. Parameters are numbered from ?1 in the order the callers
 * bind them. */
static const struct {
    const char *what;
    const char *sql;
} sq_queries[SQ_N_QUERIES] = {
    [SQ_Q_WAL] = {"journal mode", "PRAGMA journal_mode = WAL"},
    [SQ_Q_HAS_SCHEMA] = {"read schema",
                         "SELECT count(*) FROM sqlite_master WHERE type = "
                         "'table' AND name = 'meta'"},
    [SQ_Q_VERSION] = {"read schema",
                      "SELECT value FROM meta WHERE key = 'schema_version'"},
    /* ?1 now. A write, not a read: a store that answers but cannot take
     * a new process (disk full, read-only) is not healthy. */
    [SQ_Q_PING] = {"health check",
                   "INSERT OR REPLACE INTO meta (key, value) VALUES "
                   "('health_checked_at', ?1)"},
    /* ?1 id, ?2 service, ?3 status, ?4 request, ?5 callback, ?6 key,
     * ?7 hash, ?8 now, ?9 not_before, ?10 notify_status, ?11
     * retry_postback, ?12 n_jobs */
    [SQ_Q_CREATE] =
        {"create process",
         "INSERT INTO process (id, service_id, status, request, "
         "callback, idem_key, idem_hash, created_at, updated_at, "
         "not_before, queue_seq, notify_status, retry_postback, n_jobs) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, " SQ_NEXT_SEQ
         ", ?10, ?11, ?12)"},
    [SQ_Q_GET] = {"read process",
                  "SELECT " SQ_PROC_COLS " FROM process WHERE id = ?1 AND "
                  "service_id = ?2"},
    [SQ_Q_GET_ID] = {"read process",
                     "SELECT " SQ_PROC_COLS " FROM process WHERE id = ?1"},
    [SQ_Q_FIND_IDEM] = {"read process", "SELECT " SQ_PROC_COLS
                                        " FROM process WHERE idem_key = ?1 "
                                        "AND service_id = ?2"},
    /* ?1 id, ?2 service or -1 for any */
    [SQ_Q_STATUS] = {"read process",
                     "SELECT status FROM process WHERE id = ?1 AND (?2 < 0 "
                     "OR service_id = ?2)"},
    /* ?1 now, ?2 lease_until, ?3 wall clock. The first in queue order of
     * the ready QUEUED processes and the PROCESSING ones whose lease ran
     * out (each found through its own index); a lease taken back counts
     * as a re-queue. One whose run was asked to stop becomes CANCELLED
     * instead, and the caller claims again: rare, so the common claim
     * stays one statement. */
    [SQ_Q_CLAIM] = {"claim",
                    "UPDATE process SET "
                    "status = " SQ_IF_CANCEL "'CANCELLED' ELSE 'PROCESSING' "
                    "END, lease_until = " SQ_IF_CANCEL "0 ELSE ?2 END, "
                    "updated_at = ?3, "
                    "lease_token = lease_token + 1, "
                    "n_requeues = n_requeues + "
                    "CASE status WHEN 'PROCESSING' THEN 1 ELSE 0 END, "
                    "n_interrupts = n_interrupts + "
                    "CASE status WHEN 'PROCESSING' THEN 1 ELSE 0 END, "
                    "error = " SQ_IF_CANCEL SQ_CANCELLED_RAN " WHEN status = "
                    "'PROCESSING' THEN " SQ_LEASE_EXPIRED " ELSE error END, "
                    "cancel_requested = 0 "
                    "WHERE id = (SELECT id FROM ("
                    "SELECT * FROM (SELECT id, queue_seq FROM process "
                    "WHERE status = 'QUEUED' AND not_before <= ?1 "
                    "ORDER BY queue_seq LIMIT 1) "
                    "UNION ALL SELECT id, queue_seq FROM process "
                    "WHERE status = 'PROCESSING' AND lease_until < ?1) "
                    "ORDER BY queue_seq LIMIT 1) "
                    "RETURNING " SQ_PROC_COLS},
    /* ?1 id, ?2 status, ?3 result, ?4 error, ?5 now, ?6 token, ?7
     * duration_ms or -1. Every change by the claim's holder matches its
     * fencing token (0: any). */
    [SQ_Q_COMPLETE] = {"complete",
                       "UPDATE process SET status = ?2, result = ?3, error = "
                       "?4, updated_at = ?5, lease_until = 0, duration_ms = "
                       "NULLIF(?7, -1), cancel_requested = 0 WHERE id = ?1 "
                       "AND status = 'PROCESSING' AND " SQ_FENCE("?6")},
    /* ?1 id, ?2 not_before, ?3 error, ?4 now, ?5 token */
    [SQ_Q_REQUEUE] =
        {"requeue",
         "UPDATE process SET status = " SQ_IF_CANCEL "'CANCELLED' "
         "ELSE 'QUEUED' END, not_before = ?2, error = " SQ_IF_CANCEL
             SQ_CANCELLED_RAN " ELSE ?3 END, n_requeues = n_requeues "
         "+ 1, updated_at = ?4, lease_until = 0, "
         "cancel_requested = 0, queue_seq = " SQ_NEXT_SEQ
         " WHERE id = ?1 AND status = 'PROCESSING' AND " SQ_FENCE("?5")},
    /* ?1 id, ?2 lease_until, ?3 token */
    [SQ_Q_RENEW] = {"renew",
                    "UPDATE process SET lease_until = ?2 WHERE id = "
                    "?1 AND status = 'PROCESSING' AND " SQ_FENCE("?3")},
    /* ?1 id, ?2 error, ?3 now, ?4 token. Back in its old place in the
     * queue, like a lease taken back. */
    [SQ_Q_INTERRUPT] = {"interrupt",
                        "UPDATE process SET status = " SQ_IF_CANCEL
                        "'CANCELLED' ELSE 'QUEUED' END, not_before = 0, "
                        "error = " SQ_IF_CANCEL SQ_CANCELLED_RAN " ELSE ?2 "
                        "END, n_interrupts = n_interrupts + 1, updated_at = "
                        "?3, lease_until = 0, cancel_requested = 0 WHERE "
                        "id = ?1 AND status = 'PROCESSING' AND " SQ_FENCE(
                            "?4")},
    /* ?1 now. Runs that were asked to stop end CANCELLED (RETURNING: the
     * hook sees each), before the others go back to the queue. */
    [SQ_Q_RECOVER_CANCEL] = {"recover",
                             "UPDATE process SET status = 'CANCELLED', "
                             "lease_until = 0, n_interrupts = n_interrupts "
                             "+ 1, updated_at = ?1, error = " SQ_CANCELLED_RAN
                             ", cancel_requested = 0 WHERE status = "
                             "'PROCESSING' AND cancel_requested "
                             "RETURNING " SQ_PROC_COLS},
    /* ?1 now */
    [SQ_Q_RECOVER] = {"recover",
                      "UPDATE process SET status = 'QUEUED', lease_until = 0, "
                      "n_interrupts = n_interrupts + 1, updated_at = ?1 "
                      "WHERE status = 'PROCESSING'"},
    /* ?1 id, ?2 service, ?3 now */
    [SQ_Q_RETRY] = {"retry",
                    "UPDATE process SET status = 'QUEUED', attempt = attempt "
                    "+ 1, n_requeues = 0, n_interrupts = 0, result = NULL, "
                    "error = NULL, duration_ms = NULL, cancel_requested = 0, "
                    "not_before = 0, updated_at = ?3, queue_seq = " SQ_NEXT_SEQ
                    " WHERE id = ?1 AND service_id = ?2 AND status IN " SQ_ENDED
                    " RETURNING attempt"},
    [SQ_Q_READ_REQUEST] = {"read process",
                           "SELECT status, request FROM process WHERE id = ?1 "
                           "AND service_id = ?2"},
    /* ?1 id, ?2 request, ?3 now, ?4 n_jobs */
    [SQ_Q_WRITE_REQUEST] = {"append jobs",
                            "UPDATE process SET request = ?2, updated_at = ?3, "
                            "n_jobs = ?4 WHERE id = ?1"},
    /* ?1 id, ?2 service, ?3 callback, ?4 now */
    [SQ_Q_SET_PROCESSING] = {"queue",
                             "UPDATE process SET status = 'QUEUED', callback "
                             "= COALESCE(?3, callback), updated_at = ?4, "
                             "queue_seq = " SQ_NEXT_SEQ " WHERE id = ?1 AND "
                             "service_id = ?2 AND status = 'INCOMPLETE'"},
    /* ?1 process, ?2 service, ?3 url, ?4 body, ?5 next_at, ?6 now,
     * ?7 retry */
    [SQ_Q_PB_ENQUEUE] = {"enqueue postback",
                         "INSERT INTO postback (process_id, service_id, url, "
                         "body, next_at, created_at, updated_at, retry) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)"},
    [SQ_Q_PB_DUE] = {"read postbacks", "SELECT " SQ_PB_COLS
                                       " FROM postback WHERE " SQ_PB_DUE_WHERE},
    /* ?1 now, ?2 max, ?3 next_at */
    [SQ_Q_PB_LEASE] = {"lease postbacks",
                       "UPDATE postback SET next_at = ?3 WHERE id IN (SELECT "
                       "id FROM postback WHERE " SQ_PB_DUE_WHERE ")"},
    [SQ_Q_PB_STATE] = {"read postback",
                       "SELECT state, attempt FROM postback WHERE id = ?1"},
    /* ?1 id, ?2 state, ?3 attempt, ?4 next_at, ?5 status, ?6 error, ?7 now */
    [SQ_Q_PB_RECORD] = {"record postback",
                        "UPDATE postback SET state = ?2, attempt = ?3, "
                        "next_at = ?4, last_status = ?5, last_error = ?6, "
                        "updated_at = ?7 WHERE id = ?1"},
    [SQ_Q_PB_GET] = {"read postback",
                     "SELECT " SQ_PB_COLS " FROM postback WHERE id = ?1"},
    /* ?1 now */
    /* ?1 before, ?2 max: the processes prune() takes, oldest first; one
     * that still owes a postback stays. The postbacks first, the
     * processes then, in one transaction. */
    [SQ_Q_PRUNE_POSTBACKS] =
        {"prune", "DELETE FROM postback WHERE process_id IN (" SQ_PRUNABLE ")"},
    [SQ_Q_PRUNE] = {"prune",
                    "DELETE FROM process WHERE id IN (" SQ_PRUNABLE ")"},
    [SQ_Q_COUNTS] = {"count",
                     "SELECT 0, status, count(*) FROM process GROUP BY status "
                     "UNION ALL SELECT 1, state, count(*) FROM postback GROUP "
                     "BY state UNION ALL SELECT 2, '', count(*) FROM process "
                     "WHERE status = 'QUEUED' AND not_before <= ?1"},
    /* ?1 service, ?2 status or '' for any, ?3 since, ?4 and ?5 the pair
     * (created_at, id) the rows are older than (jobstore_query_bounds),
     * ?6 limit. One service at a time: its rows come in order from
     * process_list, and only `limit` of them are read; several services'
     * pages are merged by sq_list. */
    [SQ_Q_LIST] = {"list processes",
                   "SELECT " SQ_LIST_COLS " FROM process WHERE service_id = "
                   "?1 AND (?2 = '' OR status = ?2) AND created_at >= ?3 AND "
                   "(created_at, id) < (?4, ?5) ORDER BY created_at DESC, id "
                   "DESC LIMIT ?6"},
    /* ?1 id, ?2 now: one that has not started is cancelled at once; a
     * running one is asked to stop (its status stays). The caller read
     * its status in the same transaction. */
    [SQ_Q_CANCEL] = {"cancel",
                     "UPDATE process SET status = CASE status WHEN "
                     "'PROCESSING' THEN status ELSE 'CANCELLED' END, "
                     "cancel_requested = (status = 'PROCESSING'), updated_at = "
                     "CASE status WHEN 'PROCESSING' THEN updated_at ELSE ?2 "
                     "END WHERE id = ?1 AND status IN ('INCOMPLETE', "
                     "'QUEUED', 'PROCESSING')"},
    /* ?1 the ids, a JSON array */
    [SQ_Q_CANCEL_REQUESTED] = {"read cancellations",
                               "SELECT id FROM process WHERE id IN (SELECT "
                               "value FROM json_each(?1)) AND status = "
                               "'PROCESSING' AND cancel_requested"},
    /* ?1 the services, a JSON array; ?2 since, ?3 until */
    [SQ_Q_ENDED] = {"read ended processes",
                    "SELECT updated_at, status, duration_ms FROM process "
                    "WHERE status IN " SQ_ENDED " AND updated_at >= ?2 AND "
                    "updated_at < ?3 AND service_id IN (SELECT value FROM "
                    "json_each(?1)) ORDER BY updated_at"},
    [SQ_Q_POSTBACKS_OF] = {"read postbacks",
                           "SELECT " SQ_PB_COLS " FROM postback WHERE "
                           "process_id = ?1 ORDER BY id"},
};

static const char sq_schema_sql[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE process ("
    " id TEXT PRIMARY KEY,"
    " service_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 1,"
    " n_requeues INTEGER NOT NULL DEFAULT 0,"
    " request TEXT NOT NULL,"
    " callback TEXT,"
    " result TEXT,"
    " error TEXT,"
    " idem_key TEXT,"
    " idem_hash TEXT,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL DEFAULT 0,"
    " lease_until INTEGER NOT NULL DEFAULT 0,"
    " queue_seq INTEGER NOT NULL DEFAULT 0,"
    " n_interrupts INTEGER NOT NULL DEFAULT 0,"
    " lease_token INTEGER NOT NULL DEFAULT 0,"
    " notify_status INTEGER NOT NULL DEFAULT 0,"
    " retry_postback INTEGER NOT NULL DEFAULT 1,"
    " UNIQUE (service_id, idem_key));"
    "CREATE INDEX process_queue ON process (queue_seq)"
    " WHERE status = 'QUEUED';"
    "CREATE INDEX process_seq ON process (queue_seq);"
    "CREATE TABLE postback ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " process_id TEXT NOT NULL,"
    " service_id INTEGER NOT NULL,"
    " url TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'PENDING',"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " next_at INTEGER NOT NULL,"
    " last_status INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " retry INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX postback_due ON postback (next_at, id)"
    " WHERE state = 'PENDING';"
    "INSERT INTO meta (key, value) VALUES ('schema_version', '1');";

/* Added after schema version 1 without changing it: an index changes no
 * data, and a build that does not know it ignores it. They keep claim()'s
 * search for expired leases, prune()'s and ended()'s for ended
 * processes, and list()'s for a service's newest, off the whole table.
 * process_ended covered FINISHED and FAILED only; process_ended_at, CANCELLED
 * too, replaces it (a build before CANCELLED makes process_ended again, and
 * this one drops it again). */
static const char sq_indexes_sql[] =
    "CREATE INDEX IF NOT EXISTS process_lease ON process (lease_until)"
    " WHERE status = 'PROCESSING';"
    "DROP INDEX IF EXISTS process_ended;"
    "CREATE INDEX IF NOT EXISTS process_ended_at ON process (updated_at)"
    " WHERE status IN " SQ_ENDED ";"
    "CREATE INDEX IF NOT EXISTS postback_process ON postback (process_id);"
    "CREATE INDEX IF NOT EXISTS process_list ON process"
    " (service_id, created_at DESC, id DESC);";

/* ------------------------------------------------------------ helpers */

static sq_store *
sq(jobstore *s)
{
    return (sq_store *)s;
}

static int64_t
sq_now(void)
{
    return (int64_t)time(NULL);
}

/* Maps the connection's last error to a status and message. */
static int
sq_fail(sq_store *s, const char *what, kiln_error *err)
{
    int ext = sqlite3_extended_errcode(s->db);
    int code = KILN_EIO;
    if ((ext & 0xff) == SQLITE_NOMEM) {
        code = KILN_ENOMEM;
    } else if ((ext & 0xff) == SQLITE_CONSTRAINT) {
        code = KILN_EEXIST;
    }
    /* Name the file and say what the system said: "database or disk is
     * full" alone names neither the disk nor the file. */
    const char *path = sqlite3_db_filename(s->db, "main");
    int sys = sqlite3_system_errno(s->db);
    if ((ext & 0xff) == SQLITE_READONLY) {
        return err_set(err, code, "job store \"%s\": %s: it cannot be written",
                       path != NULL ? path : "", what);
    }
    if ((ext & 0xff) == SQLITE_FULL || (ext & 0xff) == SQLITE_IOERR) {
        char why[128];
        if (sys != 0) {
            err_errno_text(sys, why, sizeof why);
        } else if ((ext & 0xff) == SQLITE_FULL) {
            err_errno_text(ENOSPC, why, sizeof why);
        } else {
            err_errno_text(EIO, why, sizeof why);
        }
        return err_set(err, code, "job store \"%s\": %s: %s (sqlite: %s)",
                       path != NULL ? path : "", what, why,
                       sqlite3_errmsg(s->db));
    }
    return err_set(err, code, "job store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int
sq_exec(sq_store *s, const char *sql, kiln_error *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return sq_fail(s, sql, err);
    }
    return KILN_OK;
}

/* Locks the store for one call and opens the transaction `mode` asks for.
 * Whatever it returns, the caller ends the call with sq_leave(). */
static int
sq_enter(sq_store *s, sq_mode mode, kiln_error *err)
{
    static const char *const begin[] = {NULL, "BEGIN", "BEGIN IMMEDIATE"};
    pthread_mutex_lock(&s->mu);
    return begin[mode] != NULL ? sq_exec(s, begin[mode], err) : KILN_OK;
}

/* Ends a call: commits an open transaction when rc is KILN_OK, rolls it
 * back otherwise (or when the commit fails), and unlocks. Returns rc, or
 * the commit's failure. */
static int
sq_leave(sq_store *s, int rc, kiln_error *err)
{
    if (rc == KILN_OK && !sqlite3_get_autocommit(s->db)) {
        rc = sq_exec(s, "COMMIT", err);
    }
    if (rc != KILN_OK && !sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The connection's statement `q`, prepared on first use, with args bound
 * to ?1..?n_args. The caller holds the mutex and runs it with sq_each. */
static int
sq_bind(sq_store *s, sq_query q, const sq_arg *args, int n_args,
        sqlite3_stmt **out, kiln_error *err)
{
    sqlite3_stmt *st = s->stmts[q];
    *out = NULL;
    if (st == NULL) {
        if (sqlite3_prepare_v3(s->db, sq_queries[q].sql, -1,
                               SQLITE_PREPARE_PERSISTENT, &st,
                               NULL) != SQLITE_OK) {
            return sq_fail(s, sq_queries[q].what, err);
        }
        s->stmts[q] = st;
    }
    assert(n_args == sqlite3_bind_parameter_count(st));
    int rc = SQLITE_OK;
    for (int i = 0; i < n_args && rc == SQLITE_OK; i++) {
        if (args[i].is_real) {
            rc = sqlite3_bind_double(st, i + 1, args[i].real);
        } else if (!args[i].is_text) {
            rc = sqlite3_bind_int64(st, i + 1, args[i].num);
        } else if (args[i].text == NULL) {
            rc = sqlite3_bind_null(st, i + 1);
        } else {
            rc = sqlite3_bind_text(st, i + 1, args[i].text, -1, SQLITE_STATIC);
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(st);
        return sq_fail(s, sq_queries[q].what, err);
    }
    *out = st;
    return KILN_OK;
}

/* Runs statement `q` with `args` to its end, calling fn (unless NULL) on
 * each row; stops at the first failure. The statement is reset and its
 * bindings cleared on every path, so none keeps a read open or points at
 * the caller's strings once this returns. */
static int
sq_each(sq_store *s, sq_query q, const sq_arg *args, int n_args, sq_row_fn fn,
        void *ctx, kiln_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_bind(s, q, args, n_args, &st, err);
    while (rc == KILN_OK) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) {
            break;
        }
        if (step != SQLITE_ROW) {
            rc = sq_fail(s, sq_queries[q].what, err);
        } else if (fn != NULL) {
            rc = fn(st, ctx, err);
        }
    }
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return rc;
}

/* Runs a statement that changes rows; *n_changed (may be NULL) gets how
 * many it changed. */
static int
sq_run(sq_store *s, sq_query q, const sq_arg *args, int n_args, int *n_changed,
       kiln_error *err)
{
    int rc = sq_each(s, q, args, n_args, NULL, NULL, err);
    if (rc == KILN_OK && n_changed != NULL) {
        *n_changed = sqlite3_changes(s->db);
    }
    return rc;
}

typedef struct sq_first {
    sq_row_fn fn;
    void *ctx;
    bool seen;
} sq_first;

static int
sq_first_row(sqlite3_stmt *st, void *arg, kiln_error *err)
{
    sq_first *f = arg;
    if (f->seen) {
        return KILN_OK;
    }
    f->seen = true;
    return f->fn(st, f->ctx, err);
}

/* Runs `q` to its end (a RETURNING statement finishes its change so),
 * reading its first row with fn. KILN_ENOTFOUND when it has none, with a
 * plain message the callers reword. */
static int
sq_one(sq_store *s, sq_query q, const sq_arg *args, int n_args, sq_row_fn fn,
       void *ctx, kiln_error *err)
{
    sq_first f = {fn, ctx, false};
    int rc = sq_each(s, q, args, n_args, sq_first_row, &f, err);
    if (rc == KILN_OK && !f.seen) {
        rc = err_set(err, KILN_ENOTFOUND, "job store: %s: not found",
                     sq_queries[q].what);
    }
    return rc;
}

/* Row readers for sq_one and sq_each. */

static int
sq_row_int(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    (void)err;
    *(int64_t *)ctx = sqlite3_column_int64(st, 0);
    return KILN_OK;
}

/* A status or state name into char[SQ_NAME_LEN] ("" for NULL). */
static int
sq_row_name(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    (void)err;
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(ctx, SQ_NAME_LEN, "%s", v ? (const char *)v : "");
    return KILN_OK;
}

/* A malloc'd copy of a text column, NULL for SQL NULL; *oom on failure. */
static char *
sq_col_dup(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    if (v == NULL) {
        return NULL;
    }
    char *d = strdup((const char *)v);
    if (d == NULL) {
        *oom = true;
    }
    return d;
}

static void
sq_col_id(sqlite3_stmt *st, int i, char out[JOBSTORE_ID_LEN + 1])
{
    const unsigned char *v = sqlite3_column_text(st, i);
    snprintf(out, JOBSTORE_ID_LEN + 1, "%s", v ? (const char *)v : "");
}

/* How reading a row into a struct went: KILN_ENOMEM if a copy failed,
 * KILN_EINTERNAL if its `column` held no name we know (parsed < 0). */
static int
sq_row_checked(bool oom, int parsed, const char *row, const char *column,
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

/* A row of SQ_PROC_COLS into the jobstore_process ctx. */
static int
sq_read_process(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    jobstore_process *p = ctx;
    bool oom = false;
    memset(p, 0, sizeof *p);
    sq_col_id(st, 0, p->id);
    p->service_id = sqlite3_column_int(st, 1);
    int status =
        jobstore_status_parse((const char *)sqlite3_column_text(st, 2));
    p->attempt = sqlite3_column_int(st, 3);
    p->n_requeues = sqlite3_column_int(st, 4);
    p->request = sq_col_dup(st, 5, &oom);
    p->callback = sq_col_dup(st, 6, &oom);
    p->result = sq_col_dup(st, 7, &oom);
    p->error = sq_col_dup(st, 8, &oom);
    p->idem_key = sq_col_dup(st, 9, &oom);
    p->idem_hash = sq_col_dup(st, 10, &oom);
    p->created_at = sqlite3_column_int64(st, 11);
    p->updated_at = sqlite3_column_int64(st, 12);
    p->not_before = sqlite3_column_int64(st, 13);
    p->lease_until = sqlite3_column_int64(st, 14);
    p->n_interrupts = sqlite3_column_int(st, 15);
    p->lease_token = sqlite3_column_int64(st, 16);
    p->notify_status = sqlite3_column_int(st, 17) != 0;
    p->retry_postback = sqlite3_column_int(st, 18) != 0;
    p->n_jobs = sqlite3_column_int(st, 19);
    p->duration_ms = sqlite3_column_type(st, 20) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_double(st, 20);
    p->cancel_requested = sqlite3_column_int(st, 21) != 0;
    int rc = sq_row_checked(oom, status, "process", "status", err);
    if (rc != KILN_OK) {
        jobstore_process_clear(p);
        return rc;
    }
    p->status = (jobstore_status)status;
    return KILN_OK;
}

/* A row of SQ_PB_COLS into the jobstore_postback ctx. */
static int
sq_read_postback(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    jobstore_postback *pb = ctx;
    bool oom = false;
    memset(pb, 0, sizeof *pb);
    pb->id = sqlite3_column_int64(st, 0);
    sq_col_id(st, 1, pb->process_id);
    pb->service_id = sqlite3_column_int(st, 2);
    pb->url = sq_col_dup(st, 3, &oom);
    pb->body = sq_col_dup(st, 4, &oom);
    int state =
        jobstore_postback_state_parse((const char *)sqlite3_column_text(st, 5));
    pb->attempt = sqlite3_column_int(st, 6);
    pb->next_at = sqlite3_column_int64(st, 7);
    pb->last_status = sqlite3_column_int(st, 8);
    pb->last_error = sq_col_dup(st, 9, &oom);
    pb->retry = sqlite3_column_int(st, 10) != 0;
    int rc = sq_row_checked(oom, state, "postback", "state", err);
    if (rc != KILN_OK) {
        jobstore_postback_clear(pb);
        return rc;
    }
    pb->state = (jobstore_postback_state)state;
    return KILN_OK;
}

/* Reads the first row of `q` (SQ_PROC_COLS) into *out; on failure *out
 * is left cleared. KILN_ENOTFOUND as sq_one. */
static int
sq_one_process(sq_store *s, sq_query q, const sq_arg *args, int n_args,
               jobstore_process *out, kiln_error *err)
{
    int rc = sq_one(s, q, args, n_args, sq_read_process, out, err);
    if (rc != KILN_OK) {
        jobstore_process_clear(out);
    }
    return rc;
}

/* The rows of a statement as a growing array of items of `size` bytes,
 * each read by `read` (processes, postbacks, ended processes). */
typedef struct sq_rows {
    sq_row_fn read;
    size_t size;
    void *items; /* NULL until the first row */
    size_t n, cap;
} sq_rows;

#define SQ_ROWS(read, type)                                                    \
    {                                                                          \
        (read), sizeof(type), NULL, 0, 0                                       \
    }

/* Appends the current row to the sq_rows ctx. */
static int
sq_read_into(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    sq_rows *l = ctx;
    void *items = jobstore_grow(l->items, &l->cap, l->n + 1, l->size);
    if (items == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    l->items = items;
    int rc = l->read(st, (char *)items + l->n * l->size, err);
    if (rc == KILN_OK) {
        l->n++;
    }
    return rc;
}

/* Why process `id` (of `service_id` unless it is < 0) was not changed by
 * `what`: KILN_ENOTFOUND, or KILN_EPERM naming its status. */
static int
sq_refuse(sq_store *s, const char *id, int service_id, const char *what,
          const char *expected, kiln_error *err)
{
    char status[SQ_NAME_LEN];
    int rc = sq_one(s, SQ_Q_STATUS, SQ_ARGS(SQ_TEXT(id), SQ_INT(service_id)),
                    sq_row_name, status, err);
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
sq_notify(sq_store *s, const char *id, const jobstore_process *p,
          kiln_error *err)
{
    if (s->base.notify == NULL) {
        return KILN_OK;
    }
    jobstore_process read;
    memset(&read, 0, sizeof read);
    if (p == NULL) {
        int rc =
            sq_one_process(s, SQ_Q_GET_ID, SQ_ARGS(SQ_TEXT(id)), &read, err);
        if (rc != KILN_OK) {
            return rc;
        }
        p = &read;
    }
    int rc = KILN_OK;
    char *body =
        p->callback != NULL ? s->base.notify(p, s->base.notify_arg) : NULL;
    if (body != NULL) {
        rc = sq_run(s, SQ_Q_PB_ENQUEUE,
                    SQ_ARGS(SQ_TEXT(p->id), SQ_INT(p->service_id),
                            SQ_TEXT(p->callback), SQ_TEXT(body),
                            SQ_INT(sq_now()), SQ_INT(sq_now()),
                            SQ_INT(p->retry_postback)),
                    NULL, err);
        free(body);
    }
    jobstore_process_clear(&read);
    return rc;
}

/* One call that moves process `id` from `expected`: runs `q` in a write
 * transaction (fn, if not NULL, reads what it returns), and when it
 * changes no row, tells why (sq_refuse). A status change (`notify`) runs
 * the store's hook in the same transaction. */
static int
sq_transition(sq_store *s, sq_query q, const sq_arg *args, int n_args,
              sq_row_fn fn, void *ctx, const char *id, int service_id,
              const char *expected, bool notify, kiln_error *err)
{
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, q, args, n_args, fn, ctx, err);
    }
    if (rc == KILN_OK && sqlite3_changes(s->db) == 0) {
        rc = sq_refuse(s, id, service_id, sq_queries[q].what, expected, err);
    } else if (rc == KILN_OK && notify) {
        rc = sq_notify(s, id, NULL, err);
    }
    return sq_leave(s, rc, err);
}

/* Creates the directories above `path` (mkdir -p of its dirname). */
static int
sq_mkdir_parents(const char *path, kiln_error *err)
{
    char *dir = strdup(path);
    if (dir == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        free(dir);
        return KILN_OK;
    }
    *slash = '\0';
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            break; /* the final mkdir or the open reports it */
        }
        *p = '/';
    }
    int rc = KILN_OK;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = err_set(err, KILN_EIO,
                     "cannot create job store directory "
                     "\"%s\": %s",
                     dir, strerror(errno));
    }
    free(dir);
    return rc;
}

/* Adds a column that a store made by an older build lacks. Like the
 * indexes above, an added column with a default changes nothing an older
 * build reads, so the schema version stays. *added (may be NULL) says
 * whether it was missing. */
static int
sq_add_column(sq_store *s, const char *table, const char *column,
              const char *decl, bool *added, kiln_error *err)
{
    char sql[256];
    if (added != NULL) {
        *added = false;
    }
    snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", column, table);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK) {
        return KILN_OK;
    }
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, column,
             decl);
    int rc = sq_exec(s, sql, err);
    if (rc == KILN_OK && added != NULL) {
        *added = true;
    }
    return rc;
}

/* kiln_request_flag(request, name): 1 or 0, the postback setting `name`
 * ("notify_status", else retry_postback) of a stored request as
 * jobstore_request_flags() reads it. SQLite's json functions would not
 * read every request the way the server did (they refuse text after the
 * object, and take the number 1 for true), so the backfill below calls
 * this instead. */
static void
sq_request_flag(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *request = (const char *)sqlite3_value_text(argv[0]);
    const char *name = (const char *)sqlite3_value_text(argv[1]);
    if ((request == NULL && sqlite3_value_type(argv[0]) != SQLITE_NULL) ||
        (name == NULL && sqlite3_value_type(argv[1]) != SQLITE_NULL)) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    bool notify = false, retry = true;
    jobstore_request_flags(request, &notify, &retry);
    bool is_notify = name != NULL && strcmp(name, "notify_status") == 0;
    sqlite3_result_int(ctx, is_notify ? notify : retry);
}

/* kiln_request_n_jobs(request): the jobs of a stored request as
 * jobstore_request_n_jobs() counts them (with cJSON, for the reasons
 * sq_request_flag gives). */
static void
sq_request_n_jobs(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *request = (const char *)sqlite3_value_text(argv[0]);
    if (request == NULL && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_int(ctx, jobstore_request_n_jobs(request));
}

/* The backfill of each column; only values other than its default are
 * written. Requests are parsed only if they name the setting or have a
 * \u escape, which could spell it (a JSON parser reads
 * "notify\u005fstatus" as notify_status): a large store has many that
 * do neither. Postbacks that are no longer PENDING keep the default:
 * their retries are over. */
static const char sq_backfill_notify_sql[] =
    "UPDATE process SET notify_status = 1 WHERE (instr(request, "
    "'notify_status') > 0 OR instr(request, '\\u') > 0) AND "
    "kiln_request_flag(request, 'notify_status') = 1";
static const char sq_backfill_retry_sql[] =
    "UPDATE process SET retry_postback = 0 WHERE (instr(request, "
    "'retry_postback') > 0 OR instr(request, '\\u') > 0) AND "
    "kiln_request_flag(request, 'retry_postback') = 0";
static const char sq_backfill_pb_retry_sql[] =
    "UPDATE postback SET retry = 0 WHERE state = 'PENDING' AND process_id IN "
    "(SELECT id FROM process WHERE retry_postback = 0)";
static const char sq_backfill_n_jobs_sql[] =
    "UPDATE process SET n_jobs = kiln_request_n_jobs(request) WHERE "
    "(instr(request, 'jobs') > 0 OR instr(request, '\\u') > 0) AND "
    "kiln_request_n_jobs(request) > 0";

/* Fills the columns a store made by an older build has just gained
 * (notify, retry, n_jobs: on process; pb_retry: on postback) from what its
 * requests say, in the schema's transaction, so that no process or
 * postback owed changes meaning with the upgrade. */
static int
sq_backfill(sq_store *s, bool notify, bool retry, bool pb_retry, bool n_jobs,
            kiln_error *err)
{
    int rc = KILN_OK;
    if ((notify || retry) &&
        sqlite3_create_function_v2(
            s->db, "kiln_request_flag", 2,
            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
            sq_request_flag, NULL, NULL, NULL) != SQLITE_OK) {
        rc = sq_fail(s, "upgrade schema", err);
    }
    if (rc == KILN_OK && n_jobs &&
        sqlite3_create_function_v2(
            s->db, "kiln_request_n_jobs", 1,
            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
            sq_request_n_jobs, NULL, NULL, NULL) != SQLITE_OK) {
        rc = sq_fail(s, "upgrade schema", err);
    }
    if (rc == KILN_OK && n_jobs) {
        rc = sq_exec(s, sq_backfill_n_jobs_sql, err);
    }
    if (rc == KILN_OK && notify) {
        rc = sq_exec(s, sq_backfill_notify_sql, err);
    }
    if (rc == KILN_OK && retry) {
        rc = sq_exec(s, sq_backfill_retry_sql, err);
    }
    if (rc == KILN_OK && pb_retry) {
        rc = sq_exec(s, sq_backfill_pb_retry_sql, err);
    }
    return rc;
}

/* Creates the schema in a fresh database, or checks its version; then
 * adds the indexes and columns that came later. */
static int
sq_schema(sq_store *s, kiln_error *err)
{
    int64_t exists = 0, version = 0;
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_HAS_SCHEMA, NULL, 0, sq_row_int, &exists, err);
    }
    if (rc == KILN_OK && exists == 0) {
        rc = sq_exec(s, sq_schema_sql, err);
    } else if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_VERSION, NULL, 0, sq_row_int, &version, err);
        if (rc == KILN_ENOTFOUND ||
            (rc == KILN_OK && version != SQ_SCHEMA_VERSION)) {
            rc = err_set(err, KILN_EINVAL,
                         "job store schema version %lld is not supported "
                         "(expected %d)",
                         (long long)version, SQ_SCHEMA_VERSION);
        }
    }
    if (rc == KILN_OK) {
        rc = sq_exec(s, sq_indexes_sql, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "n_interrupts",
                           "INTEGER NOT NULL DEFAULT 0", NULL, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "lease_token",
                           "INTEGER NOT NULL DEFAULT 0", NULL, err);
    }
    /* The postback settings, once read from the request at every status
     * change and delivery. */
    bool notify = false, retry = false, pb_retry = false;
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "notify_status",
                           "INTEGER NOT NULL DEFAULT 0", &notify, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "retry_postback",
                           "INTEGER NOT NULL DEFAULT 1", &retry, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "postback", "retry", "INTEGER NOT NULL DEFAULT 1",
                           &pb_retry, err);
    }
    /* Issue 16: what list() shows without reading the request, the
     * processing time, and a cancellation asked of a running process. */
    bool n_jobs = false;
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "n_jobs", "INTEGER NOT NULL DEFAULT 0",
                           &n_jobs, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "duration_ms", "REAL", NULL, err);
    }
    if (rc == KILN_OK) {
        rc = sq_add_column(s, "process", "cancel_requested",
                           "INTEGER NOT NULL DEFAULT 0", NULL, err);
    }
    if (rc == KILN_OK) {
        rc = sq_backfill(s, notify, retry, pb_retry, n_jobs, err);
    }
    return sq_leave(s, rc, err);
}

/* ---------------------------------------------------------- lifecycle */

static void sq_close(jobstore *js);

static int
sq_open(const char *path, jobstore **out, kiln_error *err)
{
    int rc = sq_mkdir_parents(path, err);
    if (rc != KILN_OK) {
        return rc;
    }
    sq_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return err_set(err, KILN_ENOMEM, "job store: cannot create a mutex");
    }
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        rc = err_set(err, KILN_EIO, "cannot open job store \"%s\": %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, SQ_BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode it got: a file system without
     * shared memory may refuse WAL, and we want to know. */
    char mode[SQ_NAME_LEN] = "";
    rc = sq_one(s, SQ_Q_WAL, NULL, 0, sq_row_name, mode, err);
    if (rc == KILN_ENOTFOUND || (rc == KILN_OK && strcmp(mode, "wal") != 0)) {
        rc = err_set(err, KILN_EIO,
                     "job store \"%s\": cannot use WAL journal mode (got "
                     "\"%s\")",
                     path, mode[0] ? mode : "an error");
    }
    if (rc == KILN_OK) {
        rc = sq_exec(s, "PRAGMA synchronous = FULL", err);
    }
    if (rc == KILN_OK) {
        rc = sq_schema(s, err);
    }
    if (rc != KILN_OK) {
        goto fail;
    }
    *out = &s->base;
    return KILN_OK;

fail:
    sq_close(&s->base);
    return rc;
}

static void
sq_close(jobstore *js)
{
    sq_store *s = sq(js);
    for (int i = 0; i < SQ_N_QUERIES; i++) {
        sqlite3_finalize(s->stmts[i]); /* NULL is a no-op */
    }
    sqlite3_close(s->db); /* so is this */
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int
sq_ping(jobstore *js, kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_PING, SQ_ARGS(SQ_INT(sq_now())), NULL, err);
    }
    return sq_leave(s, rc, err);
}

/* ---------------------------------------------------------- processes */

static int
sq_create(jobstore *js, const jobstore_process *p, kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_CREATE,
                    SQ_ARGS(SQ_TEXT(p->id), SQ_INT(p->service_id),
                            SQ_TEXT(jobstore_status_name(p->status)),
                            SQ_TEXT(p->request), SQ_TEXT(p->callback),
                            SQ_TEXT(p->idem_key), SQ_TEXT(p->idem_hash),
                            SQ_INT(sq_now()), SQ_INT(p->not_before),
                            SQ_INT(p->notify_status), SQ_INT(p->retry_postback),
                            SQ_INT(p->n_jobs)),
                    NULL, err);
    }
    if (rc == KILN_EEXIST) {
        /* "UNIQUE constraint failed: process.service_id, ..." */
        if (p->idem_key != NULL &&
            strstr(sqlite3_errmsg(s->db), "idem_key") != NULL) {
            rc = err_set(err, KILN_EEXIST,
                         "idempotency key \"%s\" already used", p->idem_key);
        } else {
            rc = err_set(err, KILN_EEXIST, "process \"%s\" already exists",
                         p->id);
        }
    }
    return sq_leave(s, rc, err);
}

/* get() and find_idempotent(): the process of `service_id` that `key`
 * names (an id, or an idempotency key). */
static int
sq_lookup(jobstore *js, sq_query q, const char *key, int service_id,
          const char *what, jobstore_process *out, kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_one_process(s, q, SQ_ARGS(SQ_TEXT(key), SQ_INT(service_id)),
                            out, err);
    }
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "%s \"%s\" not found", what, key);
    }
    return sq_leave(s, rc, err);
}

static int
sq_get(jobstore *js, const char *id, int service_id, jobstore_process *out,
       kiln_error *err)
{
    return sq_lookup(js, SQ_Q_GET, id, service_id, "process", out, err);
}

static int
sq_find_idempotent(jobstore *js, int service_id, const char *key,
                   jobstore_process *out, kiln_error *err)
{
    return sq_lookup(js, SQ_Q_FIND_IDEM, key, service_id, "idempotency key",
                     out, err);
}

static int
sq_claim(jobstore *js, int64_t now, int lease_seconds, jobstore_process *out,
         kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_WRITE, err);
    /* A process it took that had been asked to stop is CANCELLED now (its
     * status change told): on to the next. Each turn ends one of them. */
    while (rc == KILN_OK) {
        rc = sq_one_process(
            s, SQ_Q_CLAIM,
            SQ_ARGS(SQ_INT(now), SQ_INT(now + lease_seconds), SQ_INT(sq_now())),
            out, err);
        if (rc == KILN_OK) {
            rc = sq_notify(s, out->id, out, err);
        }
        if (rc != KILN_OK || out->status != JOBSTORE_CANCELLED) {
            break;
        }
        jobstore_process_clear(out);
    }
    /* Nothing ready is no failure: the processes it cancelled on the way
     * are committed all the same. */
    bool none = rc == KILN_ENOTFOUND;
    rc = sq_leave(s, none ? KILN_OK : rc, err);
    if (rc == KILN_OK && none) {
        rc = err_set(err, KILN_ENOTFOUND, "no process is ready");
    }
    if (rc != KILN_OK) {
        jobstore_process_clear(out);
    }
    return rc;
}

static int
sq_complete_timed(jobstore *js, const char *id, int64_t token,
                  jobstore_status status, const char *result_json,
                  const char *error, double duration_ms, kiln_error *err)
{
    return sq_transition(
        sq(js), SQ_Q_COMPLETE,
        SQ_ARGS(SQ_TEXT(id), SQ_TEXT(jobstore_status_name(status)),
                SQ_TEXT(result_json), SQ_TEXT(error), SQ_INT(sq_now()),
                SQ_INT(token), SQ_REAL(duration_ms)),
        NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
sq_complete(jobstore *js, const char *id, int64_t token, jobstore_status status,
            const char *result_json, const char *error, kiln_error *err)
{
    return sq_complete_timed(js, id, token, status, result_json, error, -1,
                             err);
}

static int
sq_requeue(jobstore *js, const char *id, int64_t token, int64_t not_before,
           const char *error, kiln_error *err)
{
    return sq_transition(sq(js), SQ_Q_REQUEUE,
                         SQ_ARGS(SQ_TEXT(id), SQ_INT(not_before),
                                 SQ_TEXT(error), SQ_INT(sq_now()),
                                 SQ_INT(token)),
                         NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
sq_renew(jobstore *js, const char *id, int64_t token, int64_t now,
         int lease_seconds, kiln_error *err)
{
    return sq_transition(
        sq(js), SQ_Q_RENEW,
        SQ_ARGS(SQ_TEXT(id), SQ_INT(now + lease_seconds), SQ_INT(token)), NULL,
        NULL, id, -1, "PROCESSING", false, err);
}

static int
sq_interrupt(jobstore *js, const char *id, int64_t token, const char *error,
             kiln_error *err)
{
    return sq_transition(
        sq(js), SQ_Q_INTERRUPT,
        SQ_ARGS(SQ_TEXT(id), SQ_TEXT(error), SQ_INT(sq_now()), SQ_INT(token)),
        NULL, NULL, id, -1, "PROCESSING", true, err);
}

static int
sq_set_processing(jobstore *js, const char *id, int service_id,
                  const char *callback, kiln_error *err)
{
    return sq_transition(sq(js), SQ_Q_SET_PROCESSING,
                         SQ_ARGS(SQ_TEXT(id), SQ_INT(service_id),
                                 SQ_TEXT(callback), SQ_INT(sq_now())),
                         NULL, NULL, id, service_id, "INCOMPLETE", true, err);
}

/* Inside a write transaction: the status of process `id` of
 * `service_id` into *out; KILN_ENOTFOUND naming the process when it has
 * none. retry() and cancel() decide from it, and say which it was. */
static int
sq_status_of(sq_store *s, const char *id, int service_id, jobstore_status *out,
             kiln_error *err)
{
    char name[SQ_NAME_LEN] = "";
    int rc = sq_one(s, SQ_Q_STATUS, SQ_ARGS(SQ_TEXT(id), SQ_INT(service_id)),
                    sq_row_name, name, err);
    int status = jobstore_status_parse(name);
    if (rc == KILN_ENOTFOUND) {
        return err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
    }
    if (rc == KILN_OK) {
        rc = sq_row_checked(false, status, "process", "status", err);
    }
    if (rc == KILN_OK) {
        *out = (jobstore_status)status;
    }
    return rc;
}

static int
sq_retry(jobstore *js, const char *id, int service_id, int *attempt,
         jobstore_status *was, kiln_error *err)
{
    sq_store *s = sq(js);
    int64_t a = 0;
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_status_of(s, id, service_id, was, err);
    }
    if (rc == KILN_OK && !jobstore_status_ended(*was)) {
        rc = err_set(err, KILN_EPERM,
                     "cannot retry process \"%s\": it is %s (expected "
                     "FINISHED, FAILED or CANCELLED)",
                     id, jobstore_status_name(*was));
    }
    if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_RETRY,
                    SQ_ARGS(SQ_TEXT(id), SQ_INT(service_id), SQ_INT(sq_now())),
                    sq_row_int, &a, err);
    }
    if (rc == KILN_OK) {
        rc = sq_notify(s, id, NULL, err);
    }
    rc = sq_leave(s, rc, err);
    if (rc == KILN_OK) {
        *attempt = (int)a;
    }
    return rc;
}

static int
sq_recover(jobstore *js, int *n_requeued, kiln_error *err)
{
    sq_store *s = sq(js);
    sq_rows cancelled = SQ_ROWS(sq_read_process, jobstore_process);
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_RECOVER_CANCEL, SQ_ARGS(SQ_INT(sq_now())),
                     sq_read_into, &cancelled, err);
    }
    jobstore_process *ps = cancelled.items;
    for (size_t i = 0; rc == KILN_OK && i < cancelled.n; i++) {
        rc = sq_notify(s, ps[i].id, &ps[i], err);
    }
    if (rc == KILN_OK) {
        rc =
            sq_run(s, SQ_Q_RECOVER, SQ_ARGS(SQ_INT(sq_now())), n_requeued, err);
    }
    jobstore_processes_free(ps, cancelled.n);
    return sq_leave(s, rc, err);
}

/* The status and the request of the process append_jobs() grows. */
typedef struct sq_request {
    char status[SQ_NAME_LEN];
    cJSON *json; /* NULL if the text is not JSON */
} sq_request;

static int
sq_read_request(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    sq_request *r = ctx;
    sq_row_name(st, r->status, err);
    r->json = cJSON_Parse((const char *)sqlite3_column_text(st, 1));
    return KILN_OK;
}

/* Appends the elements of `add` (emptied) to req's "jobs" array, made if
 * missing, unless the total would pass max_jobs > 0. */
static int
sq_add_jobs(const char *id, cJSON *req, cJSON *add, size_t max_jobs,
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

static int
sq_append_jobs(jobstore *js, const char *id, int service_id,
               const char *jobs_json, size_t max_jobs, size_t *n_jobs,
               kiln_error *err)
{
    sq_store *s = sq(js);
    cJSON *add = cJSON_Parse(jobs_json);
    if (add == NULL || !cJSON_IsArray(add)) {
        cJSON_Delete(add);
        return err_set(err, KILN_EINVAL, "jobs to append must be a JSON array");
    }
    sq_request req = {"", NULL};
    char *text = NULL;
    size_t n = 0;
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_READ_REQUEST,
                    SQ_ARGS(SQ_TEXT(id), SQ_INT(service_id)), sq_read_request,
                    &req, err);
    }
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
    } else if (rc == KILN_OK && strcmp(req.status, "INCOMPLETE") != 0) {
        rc = err_set(err, KILN_EPERM,
                     "cannot append jobs to process \"%s\": it is %s "
                     "(expected INCOMPLETE)",
                     id, req.status);
    }
    if (rc == KILN_OK) {
        rc = sq_add_jobs(id, req.json, add, max_jobs, &n, err);
    }
    if (rc == KILN_OK) {
        text = cJSON_PrintUnformatted(req.json);
        if (text == NULL) {
            rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
        }
    }
    if (rc == KILN_OK) {
        rc = sq_run(
            s, SQ_Q_WRITE_REQUEST,
            SQ_ARGS(SQ_TEXT(id), SQ_TEXT(text), SQ_INT(sq_now()), SQ_INT(n)),
            NULL, err);
    }
    rc = sq_leave(s, rc, err);
    if (rc == KILN_OK) {
        *n_jobs = n;
    }
    free(text);
    cJSON_Delete(req.json);
    cJSON_Delete(add);
    return rc;
}

/* Newest first: created_at, then id, descending (qsort). */
static int
sq_cmp_newest(const void *a, const void *b)
{
    const jobstore_process *x = a, *y = b;
    if (x->created_at != y->created_at) {
        return x->created_at < y->created_at ? 1 : -1;
    }
    return -strcmp(x->id, y->id);
}

/* Each service's newest `limit` (one index range each), merged: the
 * newest `limit` of them all, with no rows read beyond those. */
static int
sq_list(jobstore *js, const jobstore_query *q, jobstore_process **out,
        size_t *n_out, kiln_error *err)
{
    sq_store *s = sq(js);
    sq_rows l = SQ_ROWS(sq_read_process, jobstore_process);
    int64_t since = 0, before = 0;
    const char *before_id = "";
    jobstore_query_bounds(q, &since, &before, &before_id);
    const char *status =
        q->status < 0 ? "" : jobstore_status_name((jobstore_status)q->status);
    int rc = sq_enter(s, SQ_SNAPSHOT, err); /* one snapshot for them all */
    for (size_t i = 0; rc == KILN_OK && i < q->n_service_ids; i++) {
        bool again = false; /* a service named twice is listed once */
        for (size_t j = 0; j < i; j++) {
            again = again || q->service_ids[j] == q->service_ids[i];
        }
        if (again) {
            continue;
        }
        rc = sq_each(s, SQ_Q_LIST,
                     SQ_ARGS(SQ_INT(q->service_ids[i]), SQ_TEXT(status),
                             SQ_INT(since), SQ_INT(before), SQ_TEXT(before_id),
                             SQ_INT(q->limit)),
                     sq_read_into, &l, err);
    }
    rc = sq_leave(s, rc, err);
    jobstore_process *ps = l.items;
    if (rc != KILN_OK) {
        jobstore_processes_free(ps, l.n);
        return rc;
    }
    if (q->n_service_ids > 1 && l.n > 0) {
        qsort(ps, l.n, sizeof *ps, sq_cmp_newest);
    }
    for (size_t i = (size_t)q->limit; i < l.n; i++) {
        jobstore_process_clear(&ps[i]);
    }
    *out = ps;
    *n_out = l.n < (size_t)q->limit ? l.n : (size_t)q->limit;
    return KILN_OK;
}

static int
sq_cancel(jobstore *js, const char *id, int service_id, jobstore_status *was,
          kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_status_of(s, id, service_id, was, err);
    }
    if (rc == KILN_OK && jobstore_status_ended(*was)) {
        rc = err_set(err, KILN_EPERM,
                     "cannot cancel process \"%s\": it is %s (it has ended)",
                     id, jobstore_status_name(*was));
    }
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_CANCEL, SQ_ARGS(SQ_TEXT(id), SQ_INT(sq_now())),
                    NULL, err);
    }
    if (rc == KILN_OK && *was != JOBSTORE_PROCESSING) {
        rc = sq_notify(s, id, NULL, err);
    }
    return sq_leave(s, rc, err);
}

/* The ids asked about, and which of them a row named (cancel_requested). */
typedef struct sq_ids_seen {
    const char *const *ids;
    size_t n;
    bool *seen;
} sq_ids_seen;

static int
sq_read_id_seen(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    (void)err;
    sq_ids_seen *c = ctx;
    const char *id = (const char *)sqlite3_column_text(st, 0);
    for (size_t i = 0; id != NULL && i < c->n; i++) {
        if (strcmp(c->ids[i], id) == 0) {
            c->seen[i] = true;
        }
    }
    return KILN_OK;
}

/* A JSON array of its items (for json_each), or NULL when memory ran
 * out. */
static char *
sq_json_array(cJSON *a)
{
    char *text = a != NULL ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return text;
}

static int
sq_cancel_requested(jobstore *js, const char *const *ids, size_t n, bool *out,
                    kiln_error *err)
{
    sq_store *s = sq(js);
    char *list = sq_json_array(cJSON_CreateStringArray(ids, (int)n));
    if (list == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    sq_ids_seen c = {ids, n, out};
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_CANCEL_REQUESTED, SQ_ARGS(SQ_TEXT(list)),
                     sq_read_id_seen, &c, err);
    }
    rc = sq_leave(s, rc, err);
    cJSON_free(list);
    return rc;
}

/* A row of SQ_Q_ENDED into the jobstore_ended_process ctx. */
static int
sq_read_ended(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    jobstore_ended_process *e = ctx;
    int status =
        jobstore_status_parse((const char *)sqlite3_column_text(st, 1));
    e->updated_at = sqlite3_column_int64(st, 0);
    e->status = (jobstore_status)status;
    e->duration_ms = sqlite3_column_type(st, 2) == SQLITE_NULL
                         ? -1
                         : sqlite3_column_double(st, 2);
    return sq_row_checked(false, status, "process", "status", err);
}

static int
sq_ended(jobstore *js, const int *service_ids, size_t n_service_ids,
         int64_t since, int64_t until, jobstore_ended_process **out,
         size_t *n_out, kiln_error *err)
{
    sq_store *s = sq(js);
    char *list =
        sq_json_array(cJSON_CreateIntArray(service_ids, (int)n_service_ids));
    if (list == NULL) {
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    sq_rows l = SQ_ROWS(sq_read_ended, jobstore_ended_process);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_ENDED,
                     SQ_ARGS(SQ_TEXT(list), SQ_INT(since), SQ_INT(until)),
                     sq_read_into, &l, err);
    }
    rc = sq_leave(s, rc, err);
    cJSON_free(list);
    if (rc != KILN_OK) {
        free(l.items);
        return rc;
    }
    *out = l.items;
    *n_out = l.n;
    return KILN_OK;
}

/* ---------------------------------------------------------- postbacks */

static int
sq_postback_enqueue(jobstore *js, const jobstore_postback *pb, int64_t *id,
                    kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_PB_ENQUEUE,
                    SQ_ARGS(SQ_TEXT(pb->process_id), SQ_INT(pb->service_id),
                            SQ_TEXT(pb->url), SQ_TEXT(pb->body),
                            SQ_INT(pb->next_at), SQ_INT(sq_now()),
                            SQ_INT(pb->retry)),
                    NULL, err);
    }
    if (rc == KILN_OK) {
        *id = sqlite3_last_insert_rowid(s->db);
    }
    return sq_leave(s, rc, err);
}

static int
sq_postback_due(jobstore *js, int64_t now, int lease_seconds, size_t max,
                jobstore_postback **out, size_t *n_out, kiln_error *err)
{
    sq_store *s = sq(js);
    sq_rows l = SQ_ROWS(sq_read_postback, jobstore_postback);
    int64_t limit = max > INT64_MAX ? INT64_MAX : (int64_t)max;
    int64_t until = now + lease_seconds;
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_PB_DUE, SQ_ARGS(SQ_INT(now), SQ_INT(limit)),
                     sq_read_into, &l, err);
    }
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_PB_LEASE,
                    SQ_ARGS(SQ_INT(now), SQ_INT(limit), SQ_INT(until)), NULL,
                    err);
    }
    rc = sq_leave(s, rc, err);
    jobstore_postback *pbs = l.items;
    if (rc != KILN_OK) {
        jobstore_postbacks_free(pbs, l.n);
        pbs = NULL;
        l.n = 0;
    }
    for (size_t i = 0; i < l.n; i++) {
        pbs[i].next_at = until;
    }
    *out = pbs;
    *n_out = l.n;
    return rc;
}

/* The state and attempts of the postback postback_record() updates. */
typedef struct sq_pb_state {
    char state[SQ_NAME_LEN];
    int attempt;
} sq_pb_state;

static int
sq_read_pb_state(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    sq_pb_state *p = ctx;
    p->attempt = sqlite3_column_int(st, 1);
    return sq_row_name(st, p->state, err);
}

static int
sq_postback_record(jobstore *js, int64_t id, bool delivered, int http_status,
                   const char *error, int64_t now, bool retry,
                   jobstore_postback_state *state, kiln_error *err)
{
    sq_store *s = sq(js);
    sq_pb_state cur = {"", 0};
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_PB_STATE, SQ_ARGS(SQ_INT(id)), sq_read_pb_state,
                    &cur, err);
    }
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)id);
    } else if (rc == KILN_OK && strcmp(cur.state, "PENDING") != 0) {
        rc = err_set(err, KILN_EPERM, "postback %lld is %s (expected PENDING)",
                     (long long)id, cur.state);
    }
    int attempt = cur.attempt + 1;
    jobstore_postback_state next = JOBSTORE_PB_DELIVERED;
    int64_t next_at = now;
    if (!delivered) {
        int delay = retry ? jobstore_postback_delay(attempt) : -1;
        next = delay < 0 ? JOBSTORE_PB_GIVEN_UP : JOBSTORE_PB_PENDING;
        next_at = now + (delay < 0 ? 0 : delay);
    }
    if (rc == KILN_OK) {
        rc = sq_run(
            s, SQ_Q_PB_RECORD,
            SQ_ARGS(SQ_INT(id), SQ_TEXT(jobstore_postback_state_name(next)),
                    SQ_INT(attempt), SQ_INT(next_at), SQ_INT(http_status),
                    SQ_TEXT(error), SQ_INT(sq_now())),
            NULL, err);
    }
    rc = sq_leave(s, rc, err);
    if (rc == KILN_OK) {
        *state = next;
    }
    return rc;
}

static int
sq_postback_get(jobstore *js, int64_t id, jobstore_postback *out,
                kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_one(s, SQ_Q_PB_GET, SQ_ARGS(SQ_INT(id)), sq_read_postback, out,
                    err);
    }
    if (rc == KILN_ENOTFOUND) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)id);
    }
    if (rc != KILN_OK) {
        jobstore_postback_clear(out);
    }
    return sq_leave(s, rc, err);
}

static int
sq_postbacks_of(jobstore *js, const char *process_id, jobstore_postback **out,
                size_t *n_out, kiln_error *err)
{
    sq_store *s = sq(js);
    sq_rows l = SQ_ROWS(sq_read_postback, jobstore_postback);
    int rc = sq_enter(s, SQ_PLAIN, err);
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_POSTBACKS_OF, SQ_ARGS(SQ_TEXT(process_id)),
                     sq_read_into, &l, err);
    }
    rc = sq_leave(s, rc, err);
    if (rc != KILN_OK) {
        jobstore_postbacks_free(l.items, l.n);
        return rc;
    }
    *out = l.items;
    *n_out = l.n;
    return KILN_OK;
}

/* ------------------------------------------------------------ metrics */

static int
sq_read_count(sqlite3_stmt *st, void *ctx, kiln_error *err)
{
    (void)err;
    jobstore_counts *out = ctx;
    int kind = sqlite3_column_int(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    int64_t n = sqlite3_column_int64(st, 2);
    if (kind == 0 && jobstore_status_parse(name) >= 0) {
        out->processes[jobstore_status_parse(name)] = n;
    } else if (kind == 1 && jobstore_postback_state_parse(name) >= 0) {
        out->postbacks[jobstore_postback_state_parse(name)] = n;
    } else if (kind == 2) {
        out->queue_ready = n;
    }
    return KILN_OK;
}

static int
sq_counts(jobstore *js, int64_t now, jobstore_counts *out, kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_SNAPSHOT, err); /* one snapshot for all three */
    if (rc == KILN_OK) {
        rc = sq_each(s, SQ_Q_COUNTS, SQ_ARGS(SQ_INT(now)), sq_read_count, out,
                     err);
    }
    return sq_leave(s, rc, err);
}

static int
sq_prune(jobstore *js, int64_t before, int max, int *n_pruned, kiln_error *err)
{
    sq_store *s = sq(js);
    int rc = sq_enter(s, SQ_WRITE, err);
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_PRUNE_POSTBACKS,
                    SQ_ARGS(SQ_INT(before), SQ_INT(max)), NULL, err);
    }
    if (rc == KILN_OK) {
        rc = sq_run(s, SQ_Q_PRUNE, SQ_ARGS(SQ_INT(before), SQ_INT(max)),
                    n_pruned, err);
    }
    return sq_leave(s, rc, err);
}

const jobstore_driver jobstore_sqlite_driver = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .create = sq_create,
    .get = sq_get,
    .find_idempotent = sq_find_idempotent,
    .claim = sq_claim,
    .complete = sq_complete,
    .requeue = sq_requeue,
    .recover = sq_recover,
    .retry = sq_retry,
    .append_jobs = sq_append_jobs,
    .set_processing = sq_set_processing,
    .postback_enqueue = sq_postback_enqueue,
    .postback_due = sq_postback_due,
    .postback_record = sq_postback_record,
    .postback_get = sq_postback_get,
    .counts = sq_counts,
    .renew = sq_renew,
    .interrupt = sq_interrupt,
    .prune = sq_prune,
    .complete_timed = sq_complete_timed,
    .list = sq_list,
    .cancel = sq_cancel,
    .cancel_requested = sq_cancel_requested,
    .ended = sq_ended,
    .postbacks_of = sq_postbacks_of,
};
