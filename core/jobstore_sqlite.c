/*
 * The embedded job store driver: one SQLite file in WAL mode with
 * synchronous=FULL, so a commit is on disk when a call returns. One
 * connection per store, guarded by a mutex (the HTTP threads and workers
 * share it); every read-modify-write runs in BEGIN IMMEDIATE, so several
 * processes on the same file (tests, or `kiln` tools) stay atomic too.
 * All SQL of the job store lives here.
 */
#include "jobstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "kiln.h"

#define SQ_SCHEMA_VERSION 1
#define SQ_BUSY_TIMEOUT_MS 10000

typedef struct sq_store {
    jobstore base; /* first: the handle the interface sees */
    sqlite3 *db;
    pthread_mutex_t mu;
} sq_store;

/* Columns of jobstore_process, in sq_read_process's order. */
#define SQ_PROC_COLS                                                           \
    "id, service_id, status, attempt, n_requeues, request, callback, "         \
    "result, error, idem_key, idem_hash, created_at, updated_at, "             \
    "not_before, lease_until"

#define SQ_PB_COLS                                                             \
    "id, process_id, service_id, url, body, state, attempt, next_at, "         \
    "last_status, last_error"

/* Queue order: a counter that grows each time a process enters QUEUED
 * (creation, requeue, retry, set_processing), so claims are FIFO by the
 * moment a process was queued. recover() keeps the old value. */
#define SQ_NEXT_SEQ "(SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM process)"

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
    " updated_at INTEGER NOT NULL);"
    "CREATE INDEX postback_due ON postback (next_at, id)"
    " WHERE state = 'PENDING';"
    "INSERT INTO meta (key, value) VALUES ('schema_version', '1');";

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

static int
sq_prepare(sq_store *s, const char *sql, sqlite3_stmt **st, kiln_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return sq_fail(s, "prepare", err);
    }
    return KILN_OK;
}

/* Binds text, or NULL for a NULL pointer; SQLite copies it. */
static void
sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    }
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

static int
sq_read_process(sqlite3_stmt *st, jobstore_process *p, kiln_error *err)
{
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
    if (oom) {
        jobstore_process_clear(p);
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (status < 0) {
        jobstore_process_clear(p);
        return err_set(err, KILN_EINTERNAL,
                       "job store: process has an unknown status");
    }
    p->status = (jobstore_status)status;
    return KILN_OK;
}

static int
sq_read_postback(sqlite3_stmt *st, jobstore_postback *pb, kiln_error *err)
{
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
    if (oom) {
        jobstore_postback_clear(pb);
        return err_set(err, KILN_ENOMEM, "job store: out of memory");
    }
    if (state < 0) {
        jobstore_postback_clear(pb);
        return err_set(err, KILN_EINTERNAL,
                       "job store: postback has an unknown state");
    }
    pb->state = (jobstore_postback_state)state;
    return KILN_OK;
}

static int
sq_begin(sq_store *s, kiln_error *err)
{
    return sq_exec(s, "BEGIN IMMEDIATE", err);
}

static int
sq_commit(sq_store *s, kiln_error *err)
{
    return sq_exec(s, "COMMIT", err);
}

static void
sq_rollback(sq_store *s)
{
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* The status of process `id` (of `service_id` unless it is < 0), for the
 * message of a refused transition: KILN_ENOTFOUND or KILN_EPERM. */
static int
sq_refuse(sq_store *s, const char *id, int service_id, const char *what,
          const char *expected, kiln_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sq_prepare(s,
                   "SELECT status FROM process WHERE id = ?1 AND (?2 < 0 OR "
                   "service_id = ?2)",
                   &st, err);
    if (rc != KILN_OK) {
        return rc;
    }
    sq_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, service_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = err_set(err, KILN_EPERM,
                     "cannot %s process \"%s\": it is %s (expected %s)", what,
                     id, (const char *)sqlite3_column_text(st, 0), expected);
    } else if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
    } else {
        rc = sq_fail(s, "read process", err);
    }
    sqlite3_finalize(st);
    return rc;
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

/* Creates the schema in a fresh database, or checks its version. */
static int
sq_schema(sq_store *s, kiln_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_begin(s, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = sq_prepare(s,
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                    "AND name = 'meta'",
                    &st, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sq_fail(s, "read schema", err);
        goto fail;
    }
    bool exists = sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    st = NULL;
    if (!exists) {
        rc = sq_exec(s, sq_schema_sql, err);
        if (rc != KILN_OK) {
            goto fail;
        }
    } else {
        rc = sq_prepare(
            s, "SELECT value FROM meta WHERE key = 'schema_version'", &st, err);
        if (rc != KILN_OK) {
            goto fail;
        }
        int version = 0;
        if (sqlite3_step(st) == SQLITE_ROW) {
            version = sqlite3_column_int(st, 0);
        }
        if (version != SQ_SCHEMA_VERSION) {
            rc = err_set(err, KILN_EINVAL,
                         "job store schema version %d is not supported "
                         "(expected %d)",
                         version, SQ_SCHEMA_VERSION);
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    return sq_commit(s, err);

fail:
    sqlite3_finalize(st);
    sq_rollback(s);
    return rc;
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
    sqlite3_stmt *st = NULL;
    rc = sq_prepare(s, "PRAGMA journal_mode = WAL", &st, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    const unsigned char *mode = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        mode = sqlite3_column_text(st, 0);
    }
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
        rc = err_set(err, KILN_EIO,
                     "job store \"%s\": cannot use WAL journal mode (got "
                     "\"%s\")",
                     path, mode ? (const char *)mode : "an error");
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    rc = sq_exec(s, "PRAGMA synchronous = FULL", err);
    if (rc != KILN_OK) {
        goto fail;
    }
    rc = sq_schema(s, err);
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
    sqlite3_close(s->db); /* NULL is a no-op */
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int
sq_ping(jobstore *js, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s, "SELECT count(*) FROM meta", &st, err);
    if (rc == KILN_OK && sqlite3_step(st) != SQLITE_ROW) {
        rc = sq_fail(s, "ping", err);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---------------------------------------------------------- processes */

static int
sq_create(jobstore *js, const jobstore_process *p, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int64_t now = sq_now();
    int rc = sq_prepare(
        s,
        "INSERT INTO process (id, service_id, status, request, callback, "
        "idem_key, idem_hash, created_at, updated_at, not_before, queue_seq) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, " SQ_NEXT_SEQ ")",
        &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, p->id);
    sqlite3_bind_int(st, 2, p->service_id);
    sq_bind_text(st, 3, jobstore_status_name(p->status));
    sq_bind_text(st, 4, p->request);
    sq_bind_text(st, 5, p->callback);
    sq_bind_text(st, 6, p->idem_key);
    sq_bind_text(st, 7, p->idem_hash);
    sqlite3_bind_int64(st, 8, now);
    sqlite3_bind_int64(st, 9, p->not_before);
    if (sqlite3_step(st) != SQLITE_DONE) {
        if ((sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_CONSTRAINT) {
            /* "UNIQUE constraint failed: process.service_id, ..." */
            bool key_taken = p->idem_key != NULL &&
                             strstr(sqlite3_errmsg(s->db), "idem_key") != NULL;
            if (key_taken) {
                rc =
                    err_set(err, KILN_EEXIST,
                            "idempotency key \"%s\" already used", p->idem_key);
            } else {
                rc = err_set(err, KILN_EEXIST, "process \"%s\" already exists",
                             p->id);
            }
        } else {
            rc = sq_fail(s, "create process", err);
        }
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Reads one process by `where` (binding ?1 text, ?2 int). */
static int
sq_select_one(sq_store *s, const char *where, const char *a, int b,
              jobstore_process *out, const char *what, kiln_error *err)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " SQ_PROC_COLS " FROM process WHERE %s",
             where);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s, sql, &st, err);
    if (rc != KILN_OK) {
        return rc;
    }
    sq_bind_text(st, 1, a);
    sqlite3_bind_int(st, 2, b);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = sq_read_process(st, out, err);
    } else if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "%s \"%s\" not found", what, a);
    } else {
        rc = sq_fail(s, "read process", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int
sq_get(jobstore *js, const char *id, int service_id, jobstore_process *out,
       kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    int rc = sq_select_one(s, "id = ?1 AND service_id = ?2", id, service_id,
                           out, "process", err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
sq_find_idempotent(jobstore *js, int service_id, const char *key,
                   jobstore_process *out, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    int rc = sq_select_one(s, "idem_key = ?1 AND service_id = ?2", key,
                           service_id, out, "idempotency key", err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
sq_claim(jobstore *js, int64_t now, int lease_seconds, jobstore_process *out,
         kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_begin(s, err);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = sq_prepare(s,
                    "SELECT " SQ_PROC_COLS " FROM process WHERE status = "
                    "'QUEUED' AND not_before <= ?1 ORDER BY queue_seq LIMIT 1",
                    &st, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    sqlite3_bind_int64(st, 1, now);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "no process is ready");
        goto fail;
    }
    if (step != SQLITE_ROW) {
        rc = sq_fail(s, "claim", err);
        goto fail;
    }
    rc = sq_read_process(st, out, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sq_prepare(s,
                    "UPDATE process SET status = 'PROCESSING', updated_at = "
                    "?1, lease_until = ?2 WHERE id = ?3",
                    &st, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    int64_t stamp = sq_now();
    sqlite3_bind_int64(st, 1, stamp);
    sqlite3_bind_int64(st, 2, now + lease_seconds);
    sq_bind_text(st, 3, out->id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, "claim", err);
        goto fail;
    }
    rc = sq_commit(s, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    out->status = JOBSTORE_PROCESSING;
    out->updated_at = stamp;
    out->lease_until = now + lease_seconds;
    goto done;

fail:
    jobstore_process_clear(out);
    sq_rollback(s);
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Runs a one-row UPDATE that names its process in ?1 (and ?2 service, if
 * service_id >= 0); zero rows changed becomes ENOTFOUND or EPERM. The
 * caller binds the other parameters through `bind`. */
typedef void (*sq_binder)(sqlite3_stmt *st, const void *arg);

static int
sq_transition(sq_store *s, const char *sql, const char *id, int service_id,
              sq_binder bind, const void *arg, const char *what,
              const char *expected, kiln_error *err)
{
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s, sql, &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, service_id);
    sqlite3_bind_int64(st, 3, sq_now());
    bind(st, arg);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, what, err);
        goto done;
    }
    if (sqlite3_changes(s->db) == 0) {
        rc = sq_refuse(s, id, service_id, what, expected, err);
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

typedef struct sq_complete_args {
    jobstore_status status;
    const char *result;
    const char *error;
    int64_t not_before;
} sq_complete_args;

static void
sq_bind_complete(sqlite3_stmt *st, const void *arg)
{
    const sq_complete_args *a = arg;
    sq_bind_text(st, 4, jobstore_status_name(a->status));
    sq_bind_text(st, 5, a->result);
    sq_bind_text(st, 6, a->error);
}

static int
sq_complete(jobstore *js, const char *id, jobstore_status status,
            const char *result_json, const char *error, kiln_error *err)
{
    sq_complete_args a = {status, result_json, error, 0};
    return sq_transition(
        sq(js),
        "UPDATE process SET status = ?4, result = ?5, error = ?6, "
        "updated_at = ?3, lease_until = 0 WHERE id = ?1 AND ?2 < 0 AND "
        "status = 'PROCESSING'",
        id, -1, sq_bind_complete, &a, "complete", "PROCESSING", err);
}

static void
sq_bind_requeue(sqlite3_stmt *st, const void *arg)
{
    const sq_complete_args *a = arg;
    sqlite3_bind_int64(st, 4, a->not_before);
    sq_bind_text(st, 5, a->error);
}

static int
sq_requeue(jobstore *js, const char *id, int64_t not_before, const char *error,
           kiln_error *err)
{
    sq_complete_args a = {JOBSTORE_QUEUED, NULL, error, not_before};
    return sq_transition(
        sq(js),
        "UPDATE process SET status = 'QUEUED', not_before = ?4, error = ?5, "
        "n_requeues = n_requeues + 1, updated_at = ?3, lease_until = 0, "
        "queue_seq = " SQ_NEXT_SEQ " WHERE id = ?1 AND ?2 < 0 AND "
        "status = 'PROCESSING'",
        id, -1, sq_bind_requeue, &a, "requeue", "PROCESSING", err);
}

static void
sq_bind_callback(sqlite3_stmt *st, const void *arg)
{
    sq_bind_text(st, 4, arg);
}

static int
sq_set_processing(jobstore *js, const char *id, int service_id,
                  const char *callback, kiln_error *err)
{
    return sq_transition(
        sq(js),
        "UPDATE process SET status = 'QUEUED', callback = COALESCE(?4, "
        "callback), updated_at = ?3, queue_seq = " SQ_NEXT_SEQ
        " WHERE id = ?1 AND service_id = ?2 AND status = 'INCOMPLETE'",
        id, service_id, sq_bind_callback, callback, "queue", "INCOMPLETE", err);
}

static int
sq_recover(jobstore *js, int *n_requeued, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s,
                        "UPDATE process SET status = 'QUEUED', lease_until = "
                        "0, updated_at = ?1 WHERE status = 'PROCESSING'",
                        &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sqlite3_bind_int64(st, 1, sq_now());
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, "recover", err);
        goto done;
    }
    *n_requeued = sqlite3_changes(s->db);
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
sq_retry(jobstore *js, const char *id, int service_id, int *attempt,
         kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(
        s,
        "UPDATE process SET status = 'QUEUED', attempt = attempt + 1, "
        "n_requeues = 0, result = NULL, error = NULL, not_before = 0, "
        "updated_at = ?3, queue_seq = " SQ_NEXT_SEQ " WHERE id = ?1 AND "
        "service_id = ?2 AND status IN ('FINISHED', 'FAILED') "
        "RETURNING attempt",
        &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, service_id);
    sqlite3_bind_int64(st, 3, sq_now());
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *attempt = sqlite3_column_int(st, 0);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = sq_fail(s, "retry", err);
        }
    } else if (step == SQLITE_DONE) {
        rc = sq_refuse(s, id, service_id, "retry", "FINISHED or FAILED", err);
    } else {
        rc = sq_fail(s, "retry", err);
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
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
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    cJSON *req = NULL;
    char *text = NULL;
    int rc = sq_begin(s, err);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = sq_prepare(s,
                    "SELECT status, request FROM process WHERE id = ?1 AND "
                    "service_id = ?2",
                    &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, service_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "process \"%s\" not found", id);
        goto done;
    }
    if (step != SQLITE_ROW) {
        rc = sq_fail(s, "read process", err);
        goto done;
    }
    const char *status = (const char *)sqlite3_column_text(st, 0);
    if (status == NULL || strcmp(status, "INCOMPLETE") != 0) {
        rc = err_set(err, KILN_EPERM,
                     "cannot append jobs to process \"%s\": it is %s "
                     "(expected INCOMPLETE)",
                     id, status ? status : "?");
        goto done;
    }
    req = cJSON_Parse((const char *)sqlite3_column_text(st, 1));
    if (req == NULL || !cJSON_IsObject(req)) {
        rc = err_set(err, KILN_EINTERNAL,
                     "stored request of process \"%s\" is not a JSON object",
                     id);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    cJSON *jobs = cJSON_GetObjectItemCaseSensitive(req, "jobs");
    if (jobs == NULL || !cJSON_IsArray(jobs)) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "jobs");
        jobs = cJSON_AddArrayToObject(req, "jobs");
        if (jobs == NULL) {
            rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
            goto done;
        }
    }
    size_t n =
        (size_t)cJSON_GetArraySize(jobs) + (size_t)cJSON_GetArraySize(add);
    if (max_jobs > 0 && n > max_jobs) {
        rc = err_set(err, KILN_ELIMIT,
                     "process \"%s\" would have %zu jobs (at most %zu "
                     "allowed)",
                     id, n, max_jobs);
        goto done;
    }
    while (cJSON_GetArraySize(add) > 0) {
        cJSON_AddItemToArray(jobs, cJSON_DetachItemFromArray(add, 0));
    }
    text = cJSON_PrintUnformatted(req);
    if (text == NULL) {
        rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
        goto done;
    }
    rc = sq_prepare(s,
                    "UPDATE process SET request = ?1, updated_at = ?2 WHERE "
                    "id = ?3",
                    &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, text);
    sqlite3_bind_int64(st, 2, sq_now());
    sq_bind_text(st, 3, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, "append jobs", err);
        goto done;
    }
    rc = sq_commit(s, err);
    if (rc == KILN_OK) {
        *n_jobs = n;
    }
done:
    sqlite3_finalize(st);
    if (rc != KILN_OK) {
        sq_rollback(s);
    }
    pthread_mutex_unlock(&s->mu);
    free(text);
    cJSON_Delete(req);
    cJSON_Delete(add);
    return rc;
}

/* ---------------------------------------------------------- postbacks */

static int
sq_postback_enqueue(jobstore *js, const jobstore_postback *pb, int64_t *id,
                    kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s,
                        "INSERT INTO postback (process_id, service_id, url, "
                        "body, next_at, created_at, updated_at) VALUES (?1, "
                        "?2, ?3, ?4, ?5, ?6, ?6)",
                        &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, pb->process_id);
    sqlite3_bind_int(st, 2, pb->service_id);
    sq_bind_text(st, 3, pb->url);
    sq_bind_text(st, 4, pb->body);
    sqlite3_bind_int64(st, 5, pb->next_at);
    sqlite3_bind_int64(st, 6, sq_now());
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, "enqueue postback", err);
        goto done;
    }
    *id = sqlite3_last_insert_rowid(s->db);
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
sq_postback_due(jobstore *js, int64_t now, int lease_seconds, size_t max,
                jobstore_postback **out, size_t *n_out, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    jobstore_postback *pbs = NULL;
    size_t n = 0, cap = 0;
    int rc = sq_begin(s, err);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = sq_prepare(s,
                    "SELECT " SQ_PB_COLS " FROM postback WHERE state = "
                    "'PENDING' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
                    &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            jobstore_postback *np = realloc(pbs, ncap * sizeof *np);
            if (np == NULL) {
                rc = err_set(err, KILN_ENOMEM, "job store: out of memory");
                goto done;
            }
            pbs = np;
            cap = ncap;
        }
        rc = sq_read_postback(st, &pbs[n], err);
        if (rc != KILN_OK) {
            goto done;
        }
        n++;
    }
    if (step != SQLITE_DONE) {
        rc = sq_fail(s, "read postbacks", err);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sq_prepare(s, "UPDATE postback SET next_at = ?1 WHERE id = ?2", &st,
                    err);
    if (rc != KILN_OK) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, now + lease_seconds);
        sqlite3_bind_int64(st, 2, pbs[i].id);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sq_fail(s, "lease postback", err);
            goto done;
        }
        pbs[i].next_at = now + lease_seconds;
    }
    rc = sq_commit(s, err);
done:
    sqlite3_finalize(st);
    if (rc != KILN_OK) {
        sq_rollback(s);
        jobstore_postbacks_free(pbs, n);
        pbs = NULL;
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    *out = pbs;
    *n_out = n;
    return rc;
}

static int
sq_postback_record(jobstore *js, int64_t id, bool delivered, int http_status,
                   const char *error, int64_t now, bool retry,
                   jobstore_postback_state *state, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_begin(s, err);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = sq_prepare(s, "SELECT state, attempt FROM postback WHERE id = ?1", &st,
                    err);
    if (rc != KILN_OK) {
        goto done;
    }
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)id);
        goto done;
    }
    if (step != SQLITE_ROW) {
        rc = sq_fail(s, "read postback", err);
        goto done;
    }
    const char *cur = (const char *)sqlite3_column_text(st, 0);
    if (cur == NULL || strcmp(cur, "PENDING") != 0) {
        rc = err_set(err, KILN_EPERM, "postback %lld is %s (expected PENDING)",
                     (long long)id, cur ? cur : "?");
        goto done;
    }
    int attempt = sqlite3_column_int(st, 1) + 1;
    sqlite3_finalize(st);
    st = NULL;

    jobstore_postback_state next = JOBSTORE_PB_DELIVERED;
    int64_t next_at = now;
    if (!delivered) {
        int delay = retry ? jobstore_postback_delay(attempt) : -1;
        next = delay < 0 ? JOBSTORE_PB_GIVEN_UP : JOBSTORE_PB_PENDING;
        next_at = now + (delay < 0 ? 0 : delay);
    }
    rc = sq_prepare(s,
                    "UPDATE postback SET state = ?1, attempt = ?2, next_at = "
                    "?3, last_status = ?4, last_error = ?5, updated_at = ?6 "
                    "WHERE id = ?7",
                    &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sq_bind_text(st, 1, jobstore_postback_state_name(next));
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int64(st, 3, next_at);
    sqlite3_bind_int(st, 4, http_status);
    sq_bind_text(st, 5, error);
    sqlite3_bind_int64(st, 6, sq_now());
    sqlite3_bind_int64(st, 7, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sq_fail(s, "record postback", err);
        goto done;
    }
    rc = sq_commit(s, err);
    if (rc == KILN_OK) {
        *state = next;
    }
done:
    sqlite3_finalize(st);
    if (rc != KILN_OK) {
        sq_rollback(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int
sq_postback_get(jobstore *js, int64_t id, jobstore_postback *out,
                kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_prepare(s, "SELECT " SQ_PB_COLS " FROM postback WHERE id = ?1",
                        &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sqlite3_bind_int64(st, 1, id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = sq_read_postback(st, out, err);
    } else if (step == SQLITE_DONE) {
        rc = err_set(err, KILN_ENOTFOUND, "postback %lld not found",
                     (long long)id);
    } else {
        rc = sq_fail(s, "read postback", err);
    }
done:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------ metrics */

static int
sq_counts(jobstore *js, int64_t now, jobstore_counts *out, kiln_error *err)
{
    sq_store *s = sq(js);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int rc = sq_exec(s, "BEGIN", err); /* one snapshot for all three */
    if (rc != KILN_OK) {
        goto done;
    }
    rc = sq_prepare(s,
                    "SELECT 0, status, count(*) FROM process GROUP BY status "
                    "UNION ALL SELECT 1, state, count(*) FROM postback GROUP "
                    "BY state UNION ALL SELECT 2, '', count(*) FROM process "
                    "WHERE status = 'QUEUED' AND not_before <= ?1",
                    &st, err);
    if (rc != KILN_OK) {
        goto done;
    }
    sqlite3_bind_int64(st, 1, now);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
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
    }
    if (step != SQLITE_DONE) {
        rc = sq_fail(s, "count", err);
        goto done;
    }
    rc = sq_commit(s, err);
done:
    sqlite3_finalize(st);
    if (rc != KILN_OK) {
        sq_rollback(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
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
};
