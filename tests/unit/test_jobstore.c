/*
 * Unit tests for the job store (server/jobstore.c and its two drivers,
 * server/jobstore_sqlite.c and server/jobstore_pg.c), one contract suite run
 * once per driver: "jobstore" on SQLite and "jobstore-postgres" on the
 * PostgreSQL server $KILN_TEST_PG_DSN names (tests/run.sh starts one with
 * tests/servers/postgres.sh; each test gets a database of its own). The
 * tests:
 * every operation's success and refusal, queue order and not_before,
 * leases (renewal, expiry and take-back), concurrent claims from two
 * threads and two connections, recovery,
 * retry's 200/404/409 rules, idempotency keys, dynamic processes, the
 * postback schedule across a reopen, the postback settings as columns
 * (and their backfill when a store from an older build is opened), a
 * child killed with SIGKILL in the middle of writes losing no process
 * whose create() had returned, and issue 16's cancellation (at once, or
 * asked of a running process, which then never runs again), n_jobs and
 * duration_ms, a process's postbacks, and list() and list_ended()
 * against a model of a random store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <CUnit/CUnit.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "../../server/jobstore.h"
#include "../../server/postback.h"

int test_jobstore_register(void);

/* CUnit's string assertions call strcmp: keep a NULL from crashing. */
#define JS_STR(s) ((s) != NULL ? (s) : "(null)")

#define JS_N_CONC 200   /* processes claimed by two threads */
#define JS_N_DURABLE 20 /* creates the child reports before it may die */

typedef struct js_env {
    char dir[256];
    char path[512];    /* SQLite: the database file */
    char db[64];       /* PostgreSQL: the test's own database */
    char target[1024]; /* what jobstore_open() is given: path or DSN */
    jobstore *s;
} js_env;

/* Every test's directory lives under this one, removed by the suite's
 * cleanup even when a fatal assertion skipped a test's own. */
static char js_base[200];

/* The driver the running suite tests, and for PostgreSQL the server. */
static const char *js_driver = "sqlite";
static const char *js_pg_dsn;
static int js_pg_serial;

static bool
js_pg(void)
{
    return strcmp(js_driver, "postgres") == 0;
}

/* Runs one statement on the server's administration database (CREATE and
 * DROP DATABASE cannot run inside a store's connection). */
static int
js_pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(js_pg_dsn);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0) {
            fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        }
        PQclear(r);
    } else {
        fprintf(stderr, "postgres: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

/* ------------------------------------------------------------ helpers */

static int
js_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
js_rm_rf(const char *dir)
{
    nftw(dir, js_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new temporary directory and, on PostgreSQL, a new database, with no
 * store opened in them yet. */
static int
js_setup_bare(js_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/t-XXXXXX", js_base);
    if (mkdtemp(e->dir) == NULL) {
        return -1;
    }
    snprintf(e->path, sizeof e->path, "%s/kiln.db", e->dir);
    snprintf(e->target, sizeof e->target, "%s", e->path);
    if (js_pg()) {
        /* A database per test: later keywords of a libpq conninfo
         * string override earlier ones. */
        snprintf(e->db, sizeof e->db, "kiln_t%d_%d", (int)getpid(),
                 ++js_pg_serial);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", e->db);
        if (js_pg_admin(sql) != 0) {
            CU_FAIL("cannot create the test database");
            js_rm_rf(e->dir);
            return -1;
        }
        snprintf(e->target, sizeof e->target, "%s dbname=%s", js_pg_dsn, e->db);
    }
    return 0;
}

/* A fresh store in a new temporary directory. */
static int
js_setup(js_env *e)
{
    if (js_setup_bare(e) != 0) {
        return -1;
    }
    kiln_error err = {0};
    int rc = jobstore_open(js_driver, e->target, &e->s, &err);
    CU_ASSERT_EQUAL(rc, KILN_OK);
    if (rc != KILN_OK) {
        fprintf(stderr, "jobstore_open: %s\n", err.message);
        js_rm_rf(e->dir);
        return -1;
    }
    return 0;
}

static void
js_teardown(js_env *e)
{
    jobstore_close(e->s);
    e->s = NULL;
    js_rm_rf(e->dir);
    if (e->db[0] != '\0') {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                 e->db);
        js_pg_admin(sql);
    }
}

/* Creates a process of `service` in `status` with a fresh id (into id). */
static int
js_create(jobstore *s, int service, jobstore_status status, const char *request,
          const char *key, const char *hash, int64_t not_before,
          char id[JOBSTORE_ID_LEN + 1])
{
    kiln_error err = {0};
    jobstore_process p = {0};
    if (jobstore_new_id(p.id, &err) != KILN_OK) {
        return KILN_EIO;
    }
    p.service_id = service;
    p.status = status;
    p.request = (char *)request;
    p.idem_key = (char *)key;
    p.idem_hash = (char *)hash;
    p.not_before = not_before;
    int rc = jobstore_create(s, &p, &err);
    if (id != NULL) {
        memcpy(id, p.id, JOBSTORE_ID_LEN + 1);
    }
    return rc;
}

/* sqlite3_exec callback: counts the rows into *(int *)arg. */
static int
js_count_rows(void *arg, int n_cols, char **values, char **names)
{
    (void)n_cols;
    (void)values;
    (void)names;
    (*(int *)arg)++;
    return 0;
}

static int
js_status_of(jobstore *s, const char *id, int service)
{
    jobstore_process p;
    kiln_error err = {0};
    if (jobstore_get(s, id, service, &p, &err) != KILN_OK) {
        return -1;
    }
    int st = (int)p.status;
    jobstore_process_clear(&p);
    return st;
}

/* ------------------------------------------------------------- basics */

static void
test_js_open_errors(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    jobstore *s = NULL;
    int n_rows = 0;
    CU_ASSERT_EQUAL(jobstore_ping(e.s, &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_open("mysql", e.path, &s, &err), KILN_ENOTFOUND);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "\"mysql\""));
    CU_ASSERT_EQUAL(jobstore_open("sqlite", "", &s, &err), KILN_EINVAL);

    /* Missing parent directories are created. */
    char nested[600];
    snprintf(nested, sizeof nested, "%s/a/b/kiln.db", e.dir);
    CU_ASSERT_EQUAL(jobstore_open("sqlite", nested, &s, &err), KILN_OK);
    jobstore_close(s);
    s = NULL;

    /* A file that is not a database is an I/O error, not a crash. */
    char junk[600];
    snprintf(junk, sizeof junk, "%s/junk.db", e.dir);
    FILE *f = fopen(junk, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("this is not an sqlite database, not at all, no no no\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(jobstore_open("sqlite", junk, &s, &err), KILN_EIO);
    CU_ASSERT_PTR_NULL(s);

    /* A store made before the lease index gains it when opened. */
    jobstore_close(e.s);
    e.s = NULL;
    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL(sqlite3_open(e.path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(
        sqlite3_exec(db, "DROP INDEX process_lease", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    CU_ASSERT_EQUAL(sqlite3_open(e.path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "SELECT 1 FROM sqlite_master WHERE name = "
                                 "'process_lease'",
                                 js_count_rows, &n_rows, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(n_rows, 1);
    sqlite3_close(db);

    /* A schema from a newer kiln is refused. */
    jobstore_close(e.s);
    e.s = NULL;
    CU_ASSERT_EQUAL(sqlite3_open(e.path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "UPDATE meta SET value = '99' WHERE key = "
                                 "'schema_version'",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    sqlite3_close(db);
    CU_ASSERT_EQUAL(jobstore_open("sqlite", e.path, &s, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "version 99"));
    js_teardown(&e);
}

/* Runs tests/servers/postgres.sh CMD on the test server's directory
 * ($KILN_TEST_PG_DIR); false when there is none to drive. */
static bool
js_pg_server(const char *cmd)
{
    const char *dir = getenv("KILN_TEST_PG_DIR");
    if (dir == NULL || dir[0] == '\0') {
        return false;
    }
    char sh[1024];
    snprintf(sh, sizeof sh, "bash tests/servers/postgres.sh %s '%s' >/dev/null",
             cmd, dir);
    return system(sh) == 0;
}

static void
test_js_open_errors_pg(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    jobstore *s = NULL;
    CU_ASSERT_EQUAL(jobstore_ping(e.s, &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_open("postgres", "", &s, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "dsn"));
    /* No server there: an I/O error that does not show the password. */
    CU_ASSERT_EQUAL(jobstore_open("postgres",
                                  "host=127.0.0.1 port=1 user=kiln "
                                  "password=s3cret-pw connect_timeout=2",
                                  &s, &err),
                    KILN_EIO);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NULL(strstr(err.message, "s3cret-pw"));
    /* A second handle on the same database: the schema is there. */
    CU_ASSERT_EQUAL_FATAL(jobstore_open("postgres", e.target, &s, &err),
                          KILN_OK);
    char id[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(js_create(s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, id),
                    KILN_OK);
    CU_ASSERT_EQUAL(js_status_of(e.s, id, 1), JOBSTORE_QUEUED);
    jobstore_close(s);
    s = NULL;
    /* A schema from a newer kiln is refused. */
    PGconn *c = PQconnectdb(e.target);
    CU_ASSERT_EQUAL_FATAL(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "INSERT INTO kiln_schema (version, applied_at) "
                            "VALUES (99, 0)");
    CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    CU_ASSERT_EQUAL(jobstore_open("postgres", e.target, &s, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "version 99"));
    r = PQexec(c, "DELETE FROM kiln_schema WHERE version = 99");
    PQclear(r);
    PQfinish(c);
    /* The server stops: ping says so; it comes back: the handle
     * reconnects, and nothing committed is lost. */
    if (js_pg_server("stop")) {
        CU_ASSERT_EQUAL(jobstore_ping(e.s, &err), KILN_EIO);
        CU_ASSERT_EQUAL(js_status_of(e.s, id, 1), -1);
        CU_ASSERT_FATAL(js_pg_server("restart"));
        CU_ASSERT_EQUAL(jobstore_ping(e.s, &err), KILN_OK);
        CU_ASSERT_EQUAL(js_status_of(e.s, id, 1), JOBSTORE_QUEUED);
        jobstore_process p;
        CU_ASSERT_EQUAL(jobstore_claim(e.s, time(NULL), 60, &p, &err), KILN_OK);
        CU_ASSERT_STRING_EQUAL(p.id, id);
        jobstore_process_clear(&p);
        /* A restart between two calls, not seen by a ping first: the
         * call itself reconnects. */
        CU_ASSERT_FATAL(js_pg_server("restart"));
        CU_ASSERT_EQUAL(js_status_of(e.s, id, 1), JOBSTORE_PROCESSING);
    } else {
        printf("\n  skip: no KILN_TEST_PG_DIR, the restart is not tested\n");
    }
    js_teardown(&e);
}

static void
test_js_new_id(void)
{
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    kiln_error err = {0};
    CU_ASSERT_EQUAL(jobstore_new_id(a, &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_new_id(b, &err), KILN_OK);
    CU_ASSERT_EQUAL(strlen(a), JOBSTORE_ID_LEN);
    CU_ASSERT_EQUAL(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                              "vwxyz0123456789_-"),
                    JOBSTORE_ID_LEN);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    CU_ASSERT_STRING_EQUAL(JS_STR(jobstore_status_name(JOBSTORE_PROCESSING)),
                           "PROCESSING");
    CU_ASSERT_EQUAL(jobstore_status_parse("FAILED"), JOBSTORE_FAILED);
    CU_ASSERT_EQUAL(jobstore_status_parse("failed"), -1);
    CU_ASSERT_EQUAL(jobstore_postback_delay(1), 1);
    CU_ASSERT_EQUAL(jobstore_postback_delay(2), 3);
    CU_ASSERT_EQUAL(jobstore_postback_delay(3), 15);
    CU_ASSERT_EQUAL(jobstore_postback_delay(4), 600);
    CU_ASSERT_EQUAL(jobstore_postback_delay(5), -1);
    CU_ASSERT_EQUAL(jobstore_postback_delay(0), -1);
}

static void
test_js_create_get(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t t0 = (int64_t)time(NULL);
    jobstore_process p = {0};
    CU_ASSERT_EQUAL(jobstore_new_id(p.id, &err), KILN_OK);
    p.service_id = 7;
    p.status = JOBSTORE_QUEUED;
    p.request = "{\"service_id\":7,\"jobs\":[]}";
    p.callback = "https://example.com/cb";
    CU_ASSERT_EQUAL(jobstore_create(e.s, &p, &err), KILN_OK);
    int64_t t1 = (int64_t)time(NULL);

    jobstore_process g;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, p.id, 7, &g, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(g.id), p.id);
    CU_ASSERT_EQUAL(g.service_id, 7);
    CU_ASSERT_EQUAL(g.status, JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(g.attempt, 1);
    CU_ASSERT_EQUAL(g.n_requeues, 0);
    CU_ASSERT_STRING_EQUAL(JS_STR(g.request), p.request);
    CU_ASSERT_STRING_EQUAL(JS_STR(g.callback), "https://example.com/cb");
    CU_ASSERT_PTR_NULL(g.result);
    CU_ASSERT_PTR_NULL(g.error);
    CU_ASSERT_PTR_NULL(g.idem_key);
    CU_ASSERT(g.created_at >= t0 && g.created_at <= t1);
    CU_ASSERT_EQUAL(g.updated_at, g.created_at);
    CU_ASSERT_EQUAL(g.lease_until, 0);
    jobstore_process_clear(&g);
    jobstore_process_clear(&g); /* cleared twice is harmless */

    /* Another service's process is not found, like a missing one. */
    CU_ASSERT_EQUAL(jobstore_get(e.s, p.id, 8, &g, &err), KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_get(e.s, "AAAAAAAAAAAAAAAAAAAAA", 7, &g, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_PTR_NULL(g.request);

    /* Same id twice; bad status; no request. */
    CU_ASSERT_EQUAL(jobstore_create(e.s, &p, &err), KILN_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, p.id));
    p.status = JOBSTORE_FINISHED;
    CU_ASSERT_EQUAL(jobstore_create(e.s, &p, &err), KILN_EINVAL);
    p.status = JOBSTORE_QUEUED;
    p.request = NULL;
    CU_ASSERT_EQUAL(jobstore_create(e.s, &p, &err), KILN_EINVAL);
    js_teardown(&e);
}

static void
test_js_idempotency(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(js_create(e.s, 1, JOBSTORE_QUEUED, "{}", "k1", "h1", 0, a),
                    KILN_OK);
    /* The same key in another service is another process. */
    CU_ASSERT_EQUAL(js_create(e.s, 2, JOBSTORE_QUEUED, "{}", "k1", "h2", 0, b),
                    KILN_OK);
    /* The same key in the same service is refused, whatever the body. */
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", "k1", "h3", 0, NULL),
        KILN_EEXIST);
    /* Processes without a key never collide. */
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, NULL), KILN_OK);
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, NULL), KILN_OK);

    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_find_idempotent(e.s, 1, "k1", &p, &err),
                          KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), a);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.idem_hash), "h1");
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL_FATAL(jobstore_find_idempotent(e.s, 2, "k1", &p, &err),
                          KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), b);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.idem_hash), "h2");
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_find_idempotent(e.s, 3, "k1", &p, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_find_idempotent(e.s, 1, "k2", &p, &err),
                    KILN_ENOTFOUND);
    js_teardown(&e);
}

/* ---------------------------------------------------------- the queue */

static void
test_js_claim_order(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    char c[JOBSTORE_ID_LEN + 1], d[JOBSTORE_ID_LEN + 1];
    jobstore_process p;
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_ENOTFOUND);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, now + 100, b);
    js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{}", NULL, NULL, 0, d);
    js_create(e.s, 2, JOBSTORE_QUEUED, "{}", NULL, NULL, now, c);

    /* Leases that outlive the test: none is taken back here. */
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 3600, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), a);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(p.lease_until, now + 3600);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.request), "{}");
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(js_status_of(e.s, a, 1), JOBSTORE_PROCESSING);

    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 3600, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), c); /* b waits; d is INCOMPLETE */
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now + 99, 60, &p, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now + 100, 3600, &p, &err),
                          KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), b);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now + 1000, 60, &p, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(js_status_of(e.s, d, 1), JOBSTORE_INCOMPLETE);
    js_teardown(&e);
}

static void
test_js_complete_requeue(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, b);

    /* Not PROCESSING yet. */
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "QUEUED"));
    CU_ASSERT_EQUAL(jobstore_requeue(e.s, a, 0, 0, NULL, &err), KILN_EPERM);

    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_QUEUED, NULL, NULL, &err),
        KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_complete(e.s, a, 0, JOBSTORE_FINISHED,
                                      "[{\"status\":\"FINISHED\"}]", NULL,
                                      &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.result), "[{\"status\":\"FINISHED\"}]");
    CU_ASSERT_PTR_NULL(p.error);
    CU_ASSERT_EQUAL(p.lease_until, 0);
    CU_ASSERT(p.updated_at >= p.created_at);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FAILED, NULL, "x", &err),
        KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_complete(e.s, "AAAAAAAAAAAAAAAAAAAAA", 0,
                                      JOBSTORE_FAILED, NULL, "x", &err),
                    KILN_ENOTFOUND);

    /* requeue: back in the queue after not_before, counted. */
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), b);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(
        jobstore_requeue(e.s, b, 0, now + 30, "source not found", &err),
        KILN_OK);
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now + 29, 60, &p, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now + 30, 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), b);
    CU_ASSERT_EQUAL(p.n_requeues, 1);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.error), "source not found");
    CU_ASSERT_EQUAL(p.attempt, 1);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_complete(e.s, b, 0, JOBSTORE_FAILED, NULL,
                                      "source not found", &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(js_status_of(e.s, b, 1), JOBSTORE_FAILED);
    CU_ASSERT_EQUAL(
        jobstore_requeue(e.s, "AAAAAAAAAAAAAAAAAAAAA", 0, 0, NULL, &err),
        KILN_ENOTFOUND);
    js_teardown(&e);
}

/* Recovery at start-up. SQLite's store is one host's: every PROCESSING
 * process is re-queued. PostgreSQL's is shared by hosts: only processes
 * whose lease ran out come back; a live lease is another host's work. */
static void
test_js_recover(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char id[5][JOBSTORE_ID_LEN + 1];
    for (int i = 0; i < 5; i++) {
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, id[i]);
    }
    jobstore_process p;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(jobstore_claim(e.s, now, 1, &p, &err), KILN_OK);
        jobstore_process_clear(&p);
    }
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, id[1], 0, JOBSTORE_FINISHED, NULL, NULL, &err),
        KILN_OK);
    /* id[3]: a lease that is still live when the store restarts. */
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now, 600, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), id[3]);
    jobstore_process_clear(&p);
    if (js_pg()) {
        sleep(2); /* the one-second leases run out */
    }

    /* A restart: a new handle on the same store. */
    jobstore_close(e.s);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    int n = -1;
    CU_ASSERT_EQUAL(jobstore_recover(e.s, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, js_pg() ? 2 : 3);
    CU_ASSERT_EQUAL(js_status_of(e.s, id[0], 1), JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(js_status_of(e.s, id[1], 1), JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(js_status_of(e.s, id[2], 1), JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(js_status_of(e.s, id[3], 1),
                    js_pg() ? JOBSTORE_PROCESSING : JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(jobstore_recover(e.s, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 0);

    /* Recovered processes keep their place ahead of the queue. */
    const char *order_sqlite[] = {id[0], id[2], id[3], id[4]};
    const char *order_pg[] = {id[0], id[2], id[4]};
    const char **order = js_pg() ? order_pg : order_sqlite;
    int n_order = js_pg() ? 3 : 4;
    now = (int64_t)time(NULL);
    for (int i = 0; i < n_order; i++) {
        CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
        CU_ASSERT_STRING_EQUAL(JS_STR(p.id), order[i]);
        CU_ASSERT_EQUAL(p.lease_until, now + 60);
        jobstore_process_clear(&p);
    }
    js_teardown(&e);
}

static void
test_js_retry(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1], inc[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{}", NULL, NULL, 0, inc);
    int attempt = 0;

    /* QUEUED: not run yet, 409; the store says which status refused it
     * (the API's message differs for each). */
    jobstore_status was = JOBSTORE_N_STATUS;
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 1, &attempt, &was, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_QUEUED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "QUEUED"));
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    jobstore_process_clear(&p);
    /* PROCESSING: 409. */
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 1, &attempt, &was, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_PROCESSING);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "PROCESSING"));
    CU_ASSERT_EQUAL(jobstore_retry(e.s, inc, 1, &attempt, &was, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_INCOMPLETE);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FAILED, "[1]", "boom", &err),
        KILN_OK);
    /* Unknown or another service's: 404. */
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 2, &attempt, NULL, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(
        jobstore_retry(e.s, "AAAAAAAAAAAAAAAAAAAAA", 1, &attempt, NULL, &err),
        KILN_ENOTFOUND);
    /* FAILED: 200, attempt 2, a clean slate. */
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 1, &attempt, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL(attempt, 2);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(p.attempt, 2);
    CU_ASSERT_PTR_NULL(p.result);
    CU_ASSERT_PTR_NULL(p.error);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 1, &attempt, NULL, &err),
                    KILN_EPERM);
    /* FINISHED: 200 as well. */
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.attempt, 2);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_EQUAL(jobstore_retry(e.s, a, 1, NULL, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.attempt, 3);
    jobstore_process_clear(&p);
    js_teardown(&e);
}

static void
test_js_dynamic(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1], q[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{\"service_id\":1,\"jobs\":[]}",
              NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{\"jobs\":[]}", NULL, NULL, 0, q);
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1,
                                         "[{\"destination\":\"/a.jpg\"},"
                                         "{\"destination\":\"/b.png\"}]",
                                         3, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* Past max_jobs: refused, nothing stored. */
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1, "[{}, {}]", 3, &n, &err),
                    KILN_ELIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "4 jobs"));
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1, "{}", 0, &n, &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1, "[", 0, &n, &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 2, "[{}]", 0, &n, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, q, 1, "[{}]", 0, &n, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1,
                                         "[{\"destination\":\"/c.webp\"}]", 0,
                                         &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 3);

    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.request),
                           "{\"service_id\":1,\"jobs\":[{\"destination\":"
                           "\"/a.jpg\"},{\"destination\":\"/b.png\"},{"
                           "\"destination\":\"/c.webp\"}]}");
    CU_ASSERT_EQUAL(p.status, JOBSTORE_INCOMPLETE);
    jobstore_process_clear(&p);

    /* Queue it: first q (queued earlier), then a. */
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, a, 2, NULL, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, q, 1, NULL, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(
        jobstore_set_processing(e.s, a, 1, "https://x.test/cb", &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, a, 1, NULL, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, a, 1, "[{}]", 0, &n, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), q);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), a);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.callback), "https://x.test/cb");
    jobstore_process_clear(&p);

    /* A request without "jobs" gets the array. */
    char b[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{\"service_id\":1}", NULL, NULL, 0,
              b);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, b, 1, "[{\"x\":1}]", 0, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, b, 1, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, b, 1, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.request),
                           "{\"service_id\":1,\"jobs\":[{\"x\":1}]}");
    CU_ASSERT_PTR_NULL(p.callback);
    jobstore_process_clear(&p);
    js_teardown(&e);
}

/* ------------------------------------------------------------- leases */

/* Claims at `now` for `lease` seconds and checks that it took process `id`
 * (nothing, when id is NULL), re-queued n_requeues times so far. */
static void
js_expect_claim(jobstore *s, int64_t now, int lease, const char *id,
                int n_requeues)
{
    jobstore_process p;
    kiln_error err = {0};
    int rc = jobstore_claim(s, now, lease, &p, &err);
    CU_ASSERT_EQUAL(rc, id != NULL ? KILN_OK : KILN_ENOTFOUND);
    if (rc != KILN_OK) {
        return;
    }
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), JS_STR(id));
    CU_ASSERT_EQUAL(p.status, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(p.lease_until, now + lease);
    CU_ASSERT_EQUAL(p.n_requeues, n_requeues);
    CU_ASSERT_EQUAL(p.attempt, 1);
    if (n_requeues > 0) {
        CU_ASSERT_STRING_EQUAL(JS_STR(p.error), "lease expired: re-run");
    } else {
        CU_ASSERT_PTR_NULL(p.error);
    }
    jobstore_process_clear(&p);
}

static void
test_js_lease_renew(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = 1700000000;
    char a[JOBSTORE_ID_LEN + 1], q[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, now + 100000, q);
    js_expect_claim(e.s, now, 60, a, 0);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    int64_t updated = p.updated_at;
    jobstore_process_clear(&p);

    /* Renewed at now + 50 for 60 s: live until now + 110, nothing else
     * changes. */
    CU_ASSERT_EQUAL(jobstore_renew(e.s, a, 0, now + 50, 60, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(p.lease_until, now + 110);
    CU_ASSERT_EQUAL(p.updated_at, updated);
    CU_ASSERT_EQUAL(p.n_requeues, 0);
    jobstore_process_clear(&p);

    /* Past the first lease, within the renewed one (its last second
     * included): not taken back. */
    js_expect_claim(e.s, now + 61, 60, NULL, 0);
    js_expect_claim(e.s, now + 110, 60, NULL, 0);

    /* Leases must be positive. */
    CU_ASSERT_EQUAL(jobstore_renew(e.s, a, 0, now, 0, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "lease"));
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now, -5, &p, &err), KILN_EINVAL);
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 0, 10, &due, &n, &err),
                    KILN_EINVAL);
    CU_ASSERT_PTR_NULL(due);

    /* Unknown: 404; not PROCESSING (yet, or any more): 409. */
    CU_ASSERT_EQUAL(
        jobstore_renew(e.s, "AAAAAAAAAAAAAAAAAAAAA", 0, now, 60, &err),
        KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_renew(e.s, q, 0, now, 60, &err), KILN_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "QUEUED"));
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_EQUAL(jobstore_renew(e.s, a, 0, now + 60, 60, &err), KILN_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "FINISHED"));
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(p.lease_until, 0);
    jobstore_process_clear(&p);
    js_teardown(&e);
}

static void
test_js_lease_expiry(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = 1700000000;
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    char c[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, b);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, c);
    js_expect_claim(e.s, now, 10, a, 0);
    js_expect_claim(e.s, now, 100, b, 0);

    /* a's worker died: its lease ran out at now + 10. It is taken back,
     * as a re-queue, before c, which was queued after it. */
    js_expect_claim(e.s, now + 11, 600, a, 1);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.lease_until, now + 611);
    CU_ASSERT_EQUAL(p.n_requeues, 1);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.error), "lease expired: re-run");
    jobstore_process_clear(&p);
    js_expect_claim(e.s, now + 11, 600, c, 0);

    /* b's lease is live until now + 100, a's and c's until now + 611:
     * nothing to take. */
    js_expect_claim(e.s, now + 11, 60, NULL, 0);
    js_expect_claim(e.s, now + 100, 60, NULL, 0);
    CU_ASSERT_EQUAL(js_status_of(e.s, b, 1), JOBSTORE_PROCESSING);

    /* The new holder of a finishes it; a finished process is never taken
     * back. Both other leases out: taken back in queue order, counted
     * again. */
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    js_expect_claim(e.s, now + 101, 60, b, 1);
    js_expect_claim(e.s, now + 1000, 60, b, 2);
    js_expect_claim(e.s, now + 1000, 60, c, 1);
    js_expect_claim(e.s, now + 1000, 60, NULL, 0);
    CU_ASSERT_EQUAL(js_status_of(e.s, a, 1), JOBSTORE_FINISHED);

    /* A postback's lease: due again from the second it ends, and not
     * counted as a delivery attempt. */
    jobstore_postback pb = {0};
    memcpy(pb.process_id, a, sizeof a);
    pb.service_id = 1;
    pb.url = "https://example.com/cb";
    pb.body = "{}";
    pb.next_at = now;
    int64_t id = 0;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id, &err), KILN_OK);
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 30, 10, &due, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(due[0].next_at, now + 30);
    char first[POSTBACK_DELIVERY_ID_LEN], again[POSTBACK_DELIVERY_ID_LEN];
    postback_delivery_id(&due[0], first);
    jobstore_postbacks_free(due, n);
    CU_ASSERT_EQUAL(
        jobstore_postback_due(e.s, now + 29, 30, 10, &due, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(
        jobstore_postback_due(e.s, now + 30, 30, 10, &due, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(due[0].id, id);
    CU_ASSERT_EQUAL(due[0].attempt, 0);
    CU_ASSERT_EQUAL(due[0].next_at, now + 60);
    /* Redelivered after its sender's lease ran out (a crash): the same
     * Kiln-Delivery-Id, the process's id and the postback's. */
    postback_delivery_id(&due[0], again);
    CU_ASSERT_STRING_EQUAL(again, first);
    char want[POSTBACK_DELIVERY_ID_LEN];
    snprintf(want, sizeof want, "%s.%lld", a, (long long)id);
    CU_ASSERT_STRING_EQUAL(first, want);
    /* After a failed attempt too; another postback of the process has
     * its own. */
    jobstore_postback_state st;
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id, false, 500, "boom",
                                             now + 31, true, &st, &err),
                    KILN_OK);
    jobstore_postbacks_free(due, n);
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL(
        jobstore_postback_due(e.s, now + 1000, 30, 10, &due, &n, &err),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    for (size_t i = 0; i < n; i++) {
        postback_delivery_id(&due[i], again);
        CU_ASSERT_EQUAL(strcmp(again, first) == 0, due[i].id == id);
    }
    jobstore_postbacks_free(due, n);
    js_teardown(&e);
}

/* ---------------------------------------------------------- postbacks */

/* Fencing: a claim taken back from a worker (its lease ran out) leaves
 * that worker's token stale; nothing it sends afterwards changes the
 * process, and the message says why. */
static void
test_js_fencing(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a), KILN_OK);
    jobstore_process p1, p2;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 10, &p1, &err), KILN_OK);
    CU_ASSERT(p1.lease_token > 0);
    /* Twenty seconds on, the lease has run out: another claim takes it. */
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now + 20, 10, &p2, &err),
                          KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p2.id), a);
    CU_ASSERT(p2.lease_token > p1.lease_token);
    int64_t t1 = p1.lease_token, t2 = p2.lease_token;
    jobstore_process_clear(&p1);
    jobstore_process_clear(&p2);
    /* The first holder, late: every change refused, nothing changed. */
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, t1, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "lease was taken back"));
    CU_ASSERT_EQUAL(jobstore_renew(e.s, a, t1, now + 20, 10, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_requeue(e.s, a, t1, 0, "x", &err), KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_interrupt(e.s, a, t1, "x", &err), KILN_EPERM);
    jobstore_process g;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &g, &err), KILN_OK);
    CU_ASSERT_EQUAL(g.status, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(g.lease_token, t2);
    CU_ASSERT_EQUAL(g.lease_until, now + 30);
    jobstore_process_clear(&g);
    /* The holder of the claim: renew and complete. */
    CU_ASSERT_EQUAL(jobstore_renew(e.s, a, t2, now + 25, 10, &err), KILN_OK);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, t2, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_EQUAL(js_status_of(e.s, a, 1), JOBSTORE_FINISHED);
    /* After the end, the plain refusal. */
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, a, t2, JOBSTORE_FAILED, NULL, "x", &err),
        KILN_EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "it is FINISHED"));
    /* Token 0 is any holder's (an operator's action). */
    char b[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, b), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now + 40, 10, &p1, &err),
                          KILN_OK);
    jobstore_process_clear(&p1);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, b, 0, JOBSTORE_FAILED, NULL, "ended", &err),
        KILN_OK);
    js_teardown(&e);
}

/* Creates a process, claims it and ends it in `status`; with `pb`, owes
 * it a postback first, delivered or not. */
static void
js_ended(jobstore *s, jobstore_status status, int pb,
         char id[JOBSTORE_ID_LEN + 1], int64_t *pb_id)
{
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    CU_ASSERT_EQUAL_FATAL(
        js_create(s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, id), KILN_OK);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.id), id);
    CU_ASSERT_EQUAL(jobstore_complete_timed(s, id, p.lease_token, status, "[]",
                                            NULL, 10, &err),
                    KILN_OK);
    jobstore_process_clear(&p);
    if (pb == 0) {
        return;
    }
    jobstore_postback b = {0};
    memcpy(b.process_id, id, JOBSTORE_ID_LEN + 1);
    b.service_id = 1;
    b.url = "https://example.com/cb";
    b.body = "{}";
    b.next_at = now;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(s, &b, pb_id, &err), KILN_OK);
    if (pb == 2) { /* delivered */
        jobstore_postback_state st;
        CU_ASSERT_EQUAL(jobstore_postback_record(s, *pb_id, true, 200, NULL,
                                                 now, false, &st, &err),
                        KILN_OK);
    }
}

/* Retention: ended processes (CANCELLED too) go, oldest first, in
 * batches; running,
 * queued and those still owing a postback stay. */
static void
test_js_prune(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    char fin[JOBSTORE_ID_LEN + 1], failed[JOBSTORE_ID_LEN + 1],
        cancelled[JOBSTORE_ID_LEN + 1], owed[JOBSTORE_ID_LEN + 1],
        sent[JOBSTORE_ID_LEN + 1], queued[JOBSTORE_ID_LEN + 1],
        running[JOBSTORE_ID_LEN + 1];
    int64_t pb_owed = 0, pb_sent = 0;
    js_ended(e.s, JOBSTORE_FINISHED, 0, fin, NULL);
    js_ended(e.s, JOBSTORE_FAILED, 0, failed, NULL);
    js_ended(e.s, JOBSTORE_CANCELLED, 0, cancelled, NULL);
    js_ended(e.s, JOBSTORE_FINISHED, 1, owed, &pb_owed);
    js_ended(e.s, JOBSTORE_FINISHED, 2, sent, &pb_sent);
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, running),
        KILN_OK);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, time(NULL), 60, &p, &err),
                          KILN_OK);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, queued),
        KILN_OK);
    int64_t now = (int64_t)time(NULL);
    int n = -1;
    CU_ASSERT_EQUAL(jobstore_prune(e.s, now, 0, &n, &err), KILN_EINVAL);
    /* Nothing ended before a minute ago. */
    CU_ASSERT_EQUAL(jobstore_prune(e.s, now - 60, 10, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 0);
    /* Everything ended before a minute from now: four go, in batches. */
    CU_ASSERT_EQUAL(jobstore_prune(e.s, now + 60, 2, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(jobstore_prune(e.s, now + 60, 2, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(jobstore_prune(e.s, now + 60, 2, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(js_status_of(e.s, fin, 1), -1);
    CU_ASSERT_EQUAL(js_status_of(e.s, failed, 1), -1);
    CU_ASSERT_EQUAL(js_status_of(e.s, cancelled, 1), -1);
    CU_ASSERT_EQUAL(js_status_of(e.s, sent, 1), -1);
    jobstore_postback g;
    CU_ASSERT_EQUAL(jobstore_postback_get(e.s, pb_sent, &g, &err),
                    KILN_ENOTFOUND);
    /* Kept: the one that owes a postback, and the unfinished ones. */
    CU_ASSERT_EQUAL(js_status_of(e.s, owed, 1), JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(e.s, pb_owed, &g, &err),
                          KILN_OK);
    jobstore_postback_clear(&g);
    CU_ASSERT_EQUAL(js_status_of(e.s, running, 1), JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(js_status_of(e.s, queued, 1), JOBSTORE_QUEUED);
    /* A pruned process's id is free: it is simply gone. */
    jobstore_counts c;
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, now, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_FINISHED], 1);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_FAILED], 0);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_CANCELLED], 0);
    js_teardown(&e);
}

typedef struct js_waiter {
    jobstore *s;
    int rc;
} js_waiter;

static void *
js_wait_thread(void *arg)
{
    js_waiter *w = arg;
    kiln_error err = {0};
    w->rc = jobstore_wait_work(w->s, 20000, &err);
    return NULL;
}

/* wait_work: PostgreSQL tells a handle (another host) when work is
 * queued anywhere; SQLite says it cannot. */
static void
test_js_wait_work(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    if (!js_pg()) {
        CU_ASSERT_EQUAL(jobstore_wait_work(e.s, 10, &err), KILN_EABI);
        js_teardown(&e);
        return;
    }
    jobstore *other = NULL;
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &other, &err),
                          KILN_OK);
    /* Nothing queued: the time runs out. The first call also starts
     * listening, so the waits below cannot miss a notification. */
    CU_ASSERT_EQUAL(jobstore_wait_work(other, 100, &err), KILN_ENOTFOUND);
    /* A process created through the first handle wakes the other, long
     * before its 20 s run out. */
    js_waiter w = {other, -1};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, js_wait_thread, &w), 0);
    usleep(100 * 1000);
    char id[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, id),
                    KILN_OK);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.rc, KILN_OK);
    /* A process made INCOMPLETE (dynamic) is not work yet; a claim and a
     * complete queue nothing either. */
    char dyn[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{}", NULL, NULL, 0, dyn),
        KILN_OK);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, time(NULL), 60, &p, &err),
                          KILN_OK);
    CU_ASSERT_EQUAL(jobstore_complete(e.s, p.id, p.lease_token,
                                      JOBSTORE_FINISHED, "[]", NULL, &err),
                    KILN_OK);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_wait_work(other, 200, &err), KILN_ENOTFOUND);
    /* Queuing the dynamic one wakes it. */
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, dyn, 1, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_wait_work(other, 20000, &err), KILN_OK);
    jobstore_close(other);
    js_teardown(&e);
}

static void
test_js_postbacks(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = 1700000000;
    jobstore_postback pb = {0};
    char pid[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, pid);
    memcpy(pb.process_id, pid, sizeof pid);
    pb.service_id = 1;
    pb.url = "https://example.com/cb";
    pb.body = "{\"status\":\"FINISHED\"}";
    pb.next_at = now;
    int64_t id1 = 0, id2 = 0, id3 = 0;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id1, &err), KILN_OK);
    pb.next_at = now + 10;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id2, &err), KILN_OK);
    pb.next_at = now;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id3, &err), KILN_OK);
    CU_ASSERT(id1 > 0 && id2 > id1 && id3 > id2);
    pb.url = NULL;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, NULL, &err),
                    KILN_EINVAL);

    /* Due: id1 and id3 (not id2), leased so a second call gets none. */
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 30, 1, &due, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(due[0].id, id1);
    CU_ASSERT_STRING_EQUAL(JS_STR(due[0].url), "https://example.com/cb");
    CU_ASSERT_STRING_EQUAL(JS_STR(due[0].body), "{\"status\":\"FINISHED\"}");
    CU_ASSERT_STRING_EQUAL(JS_STR(due[0].process_id), pid);
    CU_ASSERT_EQUAL(due[0].state, JOBSTORE_PB_PENDING);
    CU_ASSERT_EQUAL(due[0].attempt, 0);
    jobstore_postbacks_free(due, n);
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 30, 10, &due, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(due[0].id, id3);
    jobstore_postbacks_free(due, n);
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 30, 10, &due, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NULL(due);

    /* id3 delivered at once; retry disabled gives up after one failure. */
    jobstore_postback_state st;
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id3, true, 204, NULL, now,
                                             true, &st, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(st, JOBSTORE_PB_DELIVERED);
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id3, false, 500, NULL, now,
                                             true, &st, &err),
                    KILN_EPERM);
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id2, false, 0, "timeout", now,
                                             false, &st, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(st, JOBSTORE_PB_GIVEN_UP);
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, 9999, true, 200, NULL, now,
                                             true, &st, &err),
                    KILN_ENOTFOUND);

    /* id1 fails: 1, 3, 15, 600 s apart, with a restart in the middle,
     * then gives up. */
    static const int delays[] = {1, 3, 15, 600};
    int64_t t = now;
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id1, false, 503,
                                                 "unavailable", t, true, &st,
                                                 &err),
                        KILN_OK);
        CU_ASSERT_EQUAL(st, JOBSTORE_PB_PENDING);
        if (i == 1) {
            jobstore_close(e.s);
            CU_ASSERT_EQUAL_FATAL(
                jobstore_open(js_driver, e.target, &e.s, &err), KILN_OK);
        }
        jobstore_postback g;
        CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(e.s, id1, &g, &err),
                              KILN_OK);
        CU_ASSERT_EQUAL(g.attempt, i + 1);
        CU_ASSERT_EQUAL(g.next_at, t + delays[i]);
        CU_ASSERT_EQUAL(g.last_status, 503);
        CU_ASSERT_STRING_EQUAL(JS_STR(g.last_error), "unavailable");
        jobstore_postback_clear(&g);
        CU_ASSERT_EQUAL(jobstore_postback_due(e.s, t + delays[i] - 1, 30, 10,
                                              &due, &n, &err),
                        KILN_OK);
        CU_ASSERT_EQUAL(n, 0);
        t += delays[i];
        CU_ASSERT_EQUAL(jobstore_postback_due(e.s, t, 30, 10, &due, &n, &err),
                        KILN_OK);
        CU_ASSERT_EQUAL(n, 1);
        jobstore_postbacks_free(due, n);
    }
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, id1, false, 503, NULL, t,
                                             true, &st, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(st, JOBSTORE_PB_GIVEN_UP);
    jobstore_postback g;
    CU_ASSERT_EQUAL(jobstore_postback_get(e.s, id1, &g, &err), KILN_OK);
    CU_ASSERT_EQUAL(g.state, JOBSTORE_PB_GIVEN_UP);
    CU_ASSERT_EQUAL(g.attempt, 5);
    CU_ASSERT_PTR_NULL(g.last_error);
    jobstore_postback_clear(&g);
    CU_ASSERT_EQUAL(jobstore_postback_get(e.s, 9999, &g, &err), KILN_ENOTFOUND);

    jobstore_counts c;
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, now, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(c.postbacks[JOBSTORE_PB_PENDING], 0);
    CU_ASSERT_EQUAL(c.postbacks[JOBSTORE_PB_DELIVERED], 1);
    CU_ASSERT_EQUAL(c.postbacks[JOBSTORE_PB_GIVEN_UP], 2);
    js_teardown(&e);
}

static void
test_js_counts(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    jobstore_counts c;
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, now, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_QUEUED], 0);
    CU_ASSERT_EQUAL(c.queue_ready, 0);
    char id[JOBSTORE_ID_LEN + 1];
    for (int i = 0; i < 5; i++) {
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL,
                  i == 4 ? now + 60 : 0, id);
    }
    js_create(e.s, 1, JOBSTORE_INCOMPLETE, "{}", NULL, NULL, 0, id);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, p.id, 0, JOBSTORE_FAILED, NULL, "x", &err),
        KILN_OK);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_OK);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, now, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_INCOMPLETE], 1);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_QUEUED], 3);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_PROCESSING], 1);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_FINISHED], 0);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_FAILED], 1);
    CU_ASSERT_EQUAL(c.queue_ready, 2);
    CU_ASSERT_EQUAL(jobstore_ping(e.s, &err), KILN_OK);
    js_teardown(&e);
}

/* -------------------------------------------------------- concurrency */

typedef struct js_claimer {
    jobstore *s;
    int64_t now;
    char (*ids)[JOBSTORE_ID_LEN + 1];
    int n;
    int n_errors;
} js_claimer;

static void *
js_claim_loop(void *arg)
{
    js_claimer *c = arg;
    for (;;) {
        jobstore_process p;
        kiln_error err = {0};
        int rc = jobstore_claim(c->s, c->now, 60, &p, &err);
        if (rc == KILN_ENOTFOUND) {
            break;
        }
        if (rc != KILN_OK) {
            c->n_errors++;
            break;
        }
        if (c->n < JS_N_CONC) {
            memcpy(c->ids[c->n], p.id, JOBSTORE_ID_LEN + 1);
        }
        c->n++;
        jobstore_process_clear(&p);
    }
    return NULL;
}

static int
js_cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Two threads claim until the queue is empty; with `shared` they share one
 * handle, otherwise each has its own connection to the file. With
 * `expired`, every process was claimed long ago by a worker that died,
 * and the two threads take back the expired leases. */
static void
js_concurrent(bool shared, bool expired)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    static char made[JS_N_CONC][JOBSTORE_ID_LEN + 1];
    static char got[2][JS_N_CONC][JOBSTORE_ID_LEN + 1];
    static char all[2 * JS_N_CONC][JOBSTORE_ID_LEN + 1];
    for (int i = 0; i < JS_N_CONC; i++) {
        CU_ASSERT_EQUAL_FATAL(
            js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, made[i]),
            KILN_OK);
    }
    for (int i = 0; expired && i < JS_N_CONC; i++) {
        jobstore_process p;
        CU_ASSERT_EQUAL_FATAL(
            jobstore_claim(e.s, (int64_t)time(NULL) - 1000, 60, &p, &err),
            KILN_OK);
        jobstore_process_clear(&p);
    }
    jobstore *other = e.s;
    if (!shared) {
        CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &other, &err),
                              KILN_OK);
    }
    js_claimer c[2] = {{e.s, (int64_t)time(NULL), got[0], 0, 0},
                       {other, (int64_t)time(NULL), got[1], 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(
            pthread_create(&th[i], NULL, js_claim_loop, &c[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    CU_ASSERT_EQUAL(c[0].n_errors + c[1].n_errors, 0);
    CU_ASSERT_EQUAL(c[0].n + c[1].n, JS_N_CONC);
    if (c[0].n + c[1].n == JS_N_CONC) {
        memcpy(all, got[0], (size_t)c[0].n * sizeof all[0]);
        memcpy(all + c[0].n, got[1], (size_t)c[1].n * sizeof all[0]);
        qsort(all, JS_N_CONC, sizeof all[0], js_cmp_id);
        qsort(made, JS_N_CONC, sizeof made[0], js_cmp_id);
        int n_same = 0;
        for (int i = 0; i < JS_N_CONC; i++) {
            n_same += strcmp(all[i], made[i]) == 0;
        }
        CU_ASSERT_EQUAL(n_same, JS_N_CONC); /* each claimed exactly once */
    }
    if (!shared) {
        jobstore_close(other);
    }
    js_teardown(&e);
}

static void
test_js_concurrent_shared(void)
{
    js_concurrent(true, false);
}

static void
test_js_concurrent_connections(void)
{
    js_concurrent(false, false);
}

static void
test_js_concurrent_expired(void)
{
    js_concurrent(false, true);
}

/* --------------------------------------------------------- durability */

static void
js_die(int sig)
{
    (void)sig;
    raise(SIGKILL);
}

/* The child: N creates, each reported once it returned, then more writes
 * until it dies by SIGKILL: with `by_timer`, a timer kills it wherever it
 * is (most likely inside a commit: the database must stay intact);
 * otherwise it kills itself right after reporting create N + 1, so a
 * create that returned before its commit was durable would be caught. */
static void
js_child(const char *target, int fd, bool by_timer)
{
    kiln_error err = {0};
    jobstore *s = NULL;
    if (jobstore_open(js_driver, target, &s, &err) != KILN_OK) {
        _exit(2);
    }
    for (int i = 0;; i++) {
        if (i == JS_N_DURABLE && by_timer) {
            struct sigaction sa = {0};
            sa.sa_handler = js_die;
            sigaction(SIGALRM, &sa, NULL);
            struct itimerval it = {{0, 0}, {0, 30000}};
            setitimer(ITIMER_REAL, &it, NULL);
        }
        if (i > 100000 || (i == JS_N_DURABLE + 1 && !by_timer)) {
            raise(SIGKILL);
        }
        char id[JOBSTORE_ID_LEN + 2];
        if (js_create(s, 1, JOBSTORE_QUEUED, "{\"jobs\":[]}", NULL, NULL, 0,
                      id) != KILN_OK) {
            _exit(3);
        }
        id[JOBSTORE_ID_LEN] = '\n';
        if (write(fd, id, JOBSTORE_ID_LEN + 1) != JOBSTORE_ID_LEN + 1) {
            _exit(4);
        }
        /* More kinds of writes to be killed in. */
        jobstore_process p;
        if (i % 3 == 0 &&
            jobstore_claim(s, time(NULL), 60, &p, &err) == KILN_OK) {
            jobstore_complete(s, p.id, 0, JOBSTORE_FINISHED, "[]", NULL, &err);
            jobstore_process_clear(&p);
        }
    }
}

/* Runs one child to its death; appends the ids it reported to *ids. */
static void
js_run_child(const char *target, bool by_timer,
             char (**ids)[JOBSTORE_ID_LEN + 1], size_t *n, size_t *cap)
{
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        js_child(target, fds[1], by_timer);
        _exit(5);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    size_t n0 = *n;
    char line[64];
    while (fgets(line, sizeof line, in) != NULL) {
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            void *p = realloc(*ids, ncap * sizeof **ids);
            if (p == NULL) {
                break;
            }
            *ids = p;
            *cap = ncap;
        }
        line[strcspn(line, "\n")] = '\0';
        snprintf((*ids)[(*n)++], JOBSTORE_ID_LEN + 1, "%s", line);
    }
    fclose(in);
    int wst = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &wst, 0), pid);
    CU_ASSERT(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    CU_ASSERT(*n - n0 >= JS_N_DURABLE);
}

static void
test_js_durability(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    jobstore_close(e.s); /* the child opens its own */
    e.s = NULL;
    char(*ids)[JOBSTORE_ID_LEN + 1] = NULL;
    size_t n = 0, cap = 0;
    js_run_child(e.target, true, &ids, &n, &cap);
    js_run_child(e.target, false, &ids, &n, &cap);

    /* Every create that returned is there after the crash. */
    kiln_error err = {0};
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    size_t n_found = 0;
    for (size_t i = 0; ids != NULL && i < n; i++) {
        n_found += js_status_of(e.s, ids[i], 1) >= 0;
    }
    CU_ASSERT_EQUAL(n_found, n);
    int n_rec = 0;
    CU_ASSERT_EQUAL(jobstore_recover(e.s, &n_rec, &err), KILN_OK);
    jobstore_counts c;
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, time(NULL), &c, &err), KILN_OK);
    /* SQLite's recover takes every run back. PostgreSQL's takes back only
     * expired leases (hosts share it): a child killed between its claim
     * and its complete leaves that process PROCESSING under a live
     * 60-second lease (one per child at most), which any claim takes
     * back once it runs out; it is not lost either. */
    int64_t running = js_pg() ? 2 : 0;
    CU_ASSERT(c.processes[JOBSTORE_PROCESSING] <= running);
    CU_ASSERT((size_t)(c.processes[JOBSTORE_QUEUED] +
                       c.processes[JOBSTORE_FINISHED] +
                       c.processes[JOBSTORE_PROCESSING]) >= n);
    free(ids);
    if (js_pg()) {
        js_teardown(&e); /* PostgreSQL keeps its own integrity */
        return;
    }

    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(e.path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    CU_ASSERT_EQUAL(
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
        SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
    CU_ASSERT_STRING_EQUAL(JS_STR((const char *)sqlite3_column_text(st, 0)),
                           "ok");
    sqlite3_finalize(st);
    CU_ASSERT_EQUAL(
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
        SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
    CU_ASSERT_STRING_EQUAL(JS_STR((const char *)sqlite3_column_text(st, 0)),
                           "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    js_teardown(&e);
}

/* ------------------------------------------------------------ register */

static int
js_suite_init(void)
{
    js_driver = "sqlite";
    const char *tmp = getenv("TMPDIR");
    snprintf(js_base, sizeof js_base, "%s/kiln-jobstore-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(js_base) == NULL ? -1 : 0;
}

static int
js_suite_init_pg(void)
{
    int rc = js_suite_init();
    js_driver = "postgres";
    return rc;
}

/* The status-change hook: records the statuses it saw and asks for a
 * postback only for FINISHED and CANCELLED. */
typedef struct js_seen {
    char statuses[256];
} js_seen;

static char *
js_hook(const jobstore_process *p, void *arg)
{
    js_seen *seen = arg;
    size_t n = strlen(seen->statuses);
    snprintf(seen->statuses + n, sizeof seen->statuses - n, "%s%s",
             n ? " " : "", jobstore_status_name(p->status));
    if (p->status != JOBSTORE_FINISHED && p->status != JOBSTORE_CANCELLED) {
        return NULL;
    }
    char *body = malloc(64);
    snprintf(body, 64, "{\"status\":\"%s\"}", jobstore_status_name(p->status));
    return body;
}

static void
test_js_notify(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    js_seen seen = {""};
    jobstore_set_notify(e.s, js_hook, &seen);
    kiln_error err = {0};
    jobstore_process p = {0};
    CU_ASSERT_EQUAL_FATAL(jobstore_new_id(p.id, &err), KILN_OK);
    p.service_id = 1;
    p.status = JOBSTORE_QUEUED;
    p.request = "{}";
    p.callback = "http://example.com/cb";
    CU_ASSERT_EQUAL_FATAL(jobstore_create(e.s, &p, &err), KILN_OK);
    int64_t now = 1000;
    jobstore_process c = {0};
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c.id, p.id);
    jobstore_process_clear(&c);
    CU_ASSERT_EQUAL(jobstore_requeue(e.s, p.id, 0, now, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    jobstore_process_clear(&c);
    CU_ASSERT_EQUAL(jobstore_renew(e.s, p.id, 0, now, 60, &err), KILN_OK);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, p.id, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_STRING_EQUAL(seen.statuses,
                           "PROCESSING QUEUED PROCESSING FINISHED");
    /* The postback the hook asked for was stored with the change, due
     * now, for the process's callback. */
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(
        jobstore_postback_due(e.s, INT64_MAX / 2, 60, 10, &due, &n, &err),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(due[0].process_id, p.id);
    CU_ASSERT_STRING_EQUAL(due[0].url, "http://example.com/cb");
    CU_ASSERT_STRING_EQUAL(due[0].body, "{\"status\":\"FINISHED\"}");
    jobstore_postbacks_free(due, n);
    /* A process without a callback never reaches the hook. */
    char quiet[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, quiet),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    jobstore_process_clear(&c);
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, quiet, 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_STRING_EQUAL(seen.statuses,
                           "PROCESSING QUEUED PROCESSING FINISHED");
    js_teardown(&e);
}

/* ------------------------------------------------- postback settings */

/* The notify hook of test_js_flags: records the settings of every process
 * it is handed and asks for a postback each time. */
typedef struct js_flags_seen {
    int n;
    char id[8][JOBSTORE_ID_LEN + 1];
    bool notify[8], retry[8];
} js_flags_seen;

static char *
js_flags_hook(const jobstore_process *p, void *arg)
{
    js_flags_seen *seen = arg;
    if (seen->n < 8) {
        memcpy(seen->id[seen->n], p->id, sizeof p->id);
        seen->notify[seen->n] = p->notify_status;
        seen->retry[seen->n] = p->retry_postback;
        seen->n++;
    }
    return strdup("{}");
}

/* notify_status and retry_postback, all four combinations, come back from
 * get, find_idempotent and claim and reach the hook; the postback the
 * hook asks for is retried as its process says. The requests say nothing
 * of either: the store keeps what create() was given. */
static void
test_js_flags(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    js_flags_seen seen;
    memset(&seen, 0, sizeof seen);
    jobstore_set_notify(e.s, js_flags_hook, &seen);
    kiln_error err = {0};
    char id[4][JOBSTORE_ID_LEN + 1];
    char key[4][8];
    for (int i = 0; i < 4; i++) {
        jobstore_process p = {0};
        CU_ASSERT_EQUAL_FATAL(jobstore_new_id(p.id, &err), KILN_OK);
        snprintf(key[i], sizeof key[i], "k%d", i);
        p.service_id = 1;
        p.status = JOBSTORE_QUEUED;
        p.request = "{}";
        p.callback = "https://example.com/cb";
        p.idem_key = key[i];
        p.idem_hash = "h";
        p.notify_status = (i & 1) != 0;
        p.retry_postback = (i & 2) != 0;
        CU_ASSERT_EQUAL_FATAL(jobstore_create(e.s, &p, &err), KILN_OK);
        memcpy(id[i], p.id, sizeof p.id);
    }
    jobstore_process g;
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, id[i], 1, &g, &err), KILN_OK);
        CU_ASSERT_EQUAL(g.notify_status, (i & 1) != 0);
        CU_ASSERT_EQUAL(g.retry_postback, (i & 2) != 0);
        jobstore_process_clear(&g);
        CU_ASSERT_EQUAL_FATAL(
            jobstore_find_idempotent(e.s, 1, key[i], &g, &err), KILN_OK);
        CU_ASSERT_STRING_EQUAL(JS_STR(g.id), id[i]);
        CU_ASSERT_EQUAL(g.notify_status, (i & 1) != 0);
        CU_ASSERT_EQUAL(g.retry_postback, (i & 2) != 0);
        jobstore_process_clear(&g);
    }
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &g, &err), KILN_OK);
        CU_ASSERT_STRING_EQUAL(JS_STR(g.id), id[i]);
        CU_ASSERT_EQUAL(g.notify_status, (i & 1) != 0);
        CU_ASSERT_EQUAL(g.retry_postback, (i & 2) != 0);
        jobstore_process_clear(&g);
    }
    /* complete(): the hook reads the process itself, not from a claim. */
    CU_ASSERT_EQUAL(
        jobstore_complete(e.s, id[1], 0, JOBSTORE_FINISHED, "[]", NULL, &err),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(seen.n, 5);
    for (int k = 0; k < 5; k++) {
        int i = k < 4 ? k : 1;
        CU_ASSERT_STRING_EQUAL(seen.id[k], id[i]);
        CU_ASSERT_EQUAL(seen.notify[k], (i & 1) != 0);
        CU_ASSERT_EQUAL(seen.retry[k], (i & 2) != 0);
    }
    /* One postback per hook call, each with its process's retry. */
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(
        jobstore_postback_due(e.s, INT64_MAX / 2, 60, 10, &due, &n, &err),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    for (size_t k = 0; k < n; k++) {
        int i = -1;
        for (int j = 0; j < 4; j++) {
            if (strcmp(due[k].process_id, id[j]) == 0) {
                i = j;
            }
        }
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_EQUAL(due[k].retry, (i & 2) != 0);
        jobstore_postback pb;
        CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(e.s, due[k].id, &pb, &err),
                              KILN_OK);
        CU_ASSERT_EQUAL(pb.retry, (i & 2) != 0);
        jobstore_postback_clear(&pb);
    }
    jobstore_postbacks_free(due, n);
    js_teardown(&e);
}

/* postback_enqueue stores pb->retry; postback_due and postback_get give
 * it back, after a reopen too. */
static void
test_js_postback_retry(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = 1700000000;
    char pid[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, pid), KILN_OK);
    jobstore_postback pb = {0};
    memcpy(pb.process_id, pid, sizeof pid);
    pb.service_id = 1;
    pb.url = "https://example.com/cb";
    pb.body = "{}";
    pb.next_at = now;
    int64_t id_retry = 0, id_once = 0;
    pb.retry = true;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id_retry, &err),
                    KILN_OK);
    pb.retry = false;
    CU_ASSERT_EQUAL(jobstore_postback_enqueue(e.s, &pb, &id_once, &err),
                    KILN_OK);
    jobstore_postback *due = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_postback_due(e.s, now, 30, 10, &due, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL(due[0].id, id_retry);
    CU_ASSERT_EQUAL(due[0].retry, true);
    CU_ASSERT_EQUAL(due[1].id, id_once);
    CU_ASSERT_EQUAL(due[1].retry, false);
    jobstore_postbacks_free(due, n);
    jobstore_close(e.s);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    jobstore_postback g;
    CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(e.s, id_retry, &g, &err),
                          KILN_OK);
    CU_ASSERT_EQUAL(g.retry, true);
    jobstore_postback_clear(&g);
    CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(e.s, id_once, &g, &err),
                          KILN_OK);
    CU_ASSERT_EQUAL(g.retry, false);
    jobstore_postback_clear(&g);
    js_teardown(&e);
}

/* Requests a store made before the settings (and n_jobs) were columns
 * may hold, and the settings the server read from each (cJSON): only JSON
 * true sets notify_status, only JSON false clears retry_postback; n_jobs
 * is the length of the "jobs" array, 0 without one. */
static const struct {
    const char *request;
    bool notify, retry;
    int n_jobs;
} js_old_requests[] = {
    {"{\"service_id\":1,\"notify_status\":true,\"retry_postback\":false}", true,
     false, 0},
    {"{\"service_id\":1}", false, true, 0},
    {"this is not JSON {", false, true, 0},
    /* Numbers are not booleans. */
    {"{\"notify_status\":1,\"retry_postback\":0}", false, true, 0},
    /* cJSON reads the object and ignores what follows; PostgreSQL's
     * jsonb and SQLite's json_valid refuse the whole. */
    {"{\"notify_status\":true,\"retry_postback\":false} and more", true, false,
     0},
    /* Keys spelled with escapes. */
    {"{\"notify\\u005fstatus\":true,\"retry\\u005fpostback\":false}", true,
     false, 0},
    /* cJSON takes the first of repeated keys. */
    {"{\"retry_postback\":false,\"retry_postback\":true}", false, false, 0},
    /* Named in a value only; \u0000, which jsonb refuses. */
    {"{\"source\":\"/notify_status.png\",\"x\":\"\\u0000\"}", false, true, 0},
    {"[\"notify_status\", true]", false, true, 0},
    /* The jobs, counted as cJSON reads them. */
    {"{\"jobs\":[{\"source\":\"/a.jpg\"},{\"source\":\"/b.jpg\"}]}", false,
     true, 2},
    {"{\"jobs\":[1,2,3]} and more", false, true, 3},
    {"{\"j\\u006fbs\":[{}]}", false, true, 1},
    {"{\"jobs\":[{}],\"jobs\":[{},{}]}", false, true, 1},
    {"{\"jobs\":{\"a\":1}}", false, true, 0},
    {"[{\"jobs\":[1]}]", false, true, 0},
    {"{\"jobs\":[1,2] \"broken", false, true, 0},
};
#define JS_N_OLD ((int)(sizeof js_old_requests / sizeof js_old_requests[0]))

/* The id of old request i. */
static void
js_old_id(int i, char id[JOBSTORE_ID_LEN + 1])
{
    snprintf(id, JOBSTORE_ID_LEN + 1, "old%018d", i);
}

/* After an upgrade: every old process has the settings and the jobs its
 * request stated, no processing time and no cancellation; the PENDING
 * postbacks of the first two (js_old_postbacks) follow
 * their process, a DELIVERED one of the first keeps the default (its
 * retries are over); a new process round-trips its own. */
static void
js_check_upgraded(jobstore *s, const int64_t pb_id[3])
{
    kiln_error err = {0};
    for (int i = 0; i < JS_N_OLD; i++) {
        char id[JOBSTORE_ID_LEN + 1];
        js_old_id(i, id);
        jobstore_process p;
        CU_ASSERT_EQUAL_FATAL(jobstore_get(s, id, 1, &p, &err), KILN_OK);
        if (p.notify_status != js_old_requests[i].notify ||
            p.retry_postback != js_old_requests[i].retry) {
            fprintf(stderr, "\n  %s: got notify %d retry %d\n",
                    js_old_requests[i].request, p.notify_status,
                    p.retry_postback);
        }
        CU_ASSERT_EQUAL(p.notify_status, js_old_requests[i].notify);
        CU_ASSERT_EQUAL(p.retry_postback, js_old_requests[i].retry);
        if (p.n_jobs != js_old_requests[i].n_jobs) {
            fprintf(stderr, "\n  %s: got %d jobs\n", js_old_requests[i].request,
                    p.n_jobs);
        }
        CU_ASSERT_EQUAL(p.n_jobs, js_old_requests[i].n_jobs);
        CU_ASSERT_EQUAL(p.duration_ms, -1);
        CU_ASSERT_EQUAL(p.cancel_requested, false);
        CU_ASSERT_STRING_EQUAL(JS_STR(p.request), js_old_requests[i].request);
        jobstore_process_clear(&p);
    }
    static const bool retry[3] = {false, true, true};
    for (int k = 0; k < 3; k++) {
        jobstore_postback pb;
        CU_ASSERT_EQUAL_FATAL(jobstore_postback_get(s, pb_id[k], &pb, &err),
                              KILN_OK);
        CU_ASSERT_EQUAL(pb.retry, retry[k]);
        jobstore_postback_clear(&pb);
    }
    jobstore_process p = {0};
    CU_ASSERT_EQUAL_FATAL(jobstore_new_id(p.id, &err), KILN_OK);
    p.service_id = 1;
    p.status = JOBSTORE_QUEUED;
    p.request = "{}";
    p.notify_status = true;
    p.retry_postback = false;
    CU_ASSERT_EQUAL_FATAL(jobstore_create(s, &p, &err), KILN_OK);
    jobstore_process g;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(s, p.id, 1, &g, &err), KILN_OK);
    CU_ASSERT_EQUAL(g.notify_status, true);
    CU_ASSERT_EQUAL(g.retry_postback, false);
    jobstore_process_clear(&g);
}

/* The tables of a SQLite store made by the build before the postback
 * settings were columns (its schema version 1, columns added since
 * included). */
static const char js_sqlite_old_schema[] =
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
    " UNIQUE (service_id, idem_key));"
    "CREATE INDEX process_queue ON process (queue_seq)"
    " WHERE status = 'QUEUED';"
    "CREATE INDEX process_seq ON process (queue_seq);"
    "CREATE INDEX process_ended ON process (updated_at)"
    " WHERE status IN ('FINISHED', 'FAILED');"
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

/* Runs `sql` on db with text parameters ?1.. (NULL: none). */
static int
js_sqlite_run(sqlite3 *db, const char *sql, const char *const *args, int n_args)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    for (int i = 0; rc == SQLITE_OK && i < n_args; i++) {
        rc = sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* The postbacks of the old stores: PENDING for the first two processes,
 * DELIVERED for the first. */
static const char *const js_old_postbacks[3] = {"PENDING", "PENDING",
                                                "DELIVERED"};

static void
test_js_upgrade_sqlite(void)
{
    js_env e;
    if (js_setup_bare(&e) != 0) {
        return;
    }
    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(e.path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(
        sqlite3_exec(db, js_sqlite_old_schema, NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < JS_N_OLD; i++) {
        char id[JOBSTORE_ID_LEN + 1];
        js_old_id(i, id);
        const char *args[] = {id, js_old_requests[i].request};
        CU_ASSERT_EQUAL(
            js_sqlite_run(db,
                          "INSERT INTO process (id, service_id, status, "
                          "request, callback, created_at, updated_at) VALUES "
                          "(?1, 1, 'FINISHED', ?2, 'https://example.com/cb', "
                          "1, 1)",
                          args, 2),
            SQLITE_OK);
    }
    int64_t pb_id[3];
    for (int k = 0; k < 3; k++) {
        char id[JOBSTORE_ID_LEN + 1];
        js_old_id(k == 1 ? 1 : 0, id);
        const char *args[] = {id, js_old_postbacks[k]};
        CU_ASSERT_EQUAL(js_sqlite_run(db,
                                      "INSERT INTO postback (process_id, "
                                      "service_id, url, body, state, next_at, "
                                      "created_at, updated_at) VALUES (?1, 1, "
                                      "'https://example.com/cb', '{}', ?2, 1, "
                                      "1, 1)",
                                      args, 2),
                        SQLITE_OK);
        pb_id[k] = sqlite3_last_insert_rowid(db);
    }
    sqlite3_close(db);

    kiln_error err = {0};
    int rc = jobstore_open(js_driver, e.target, &e.s, &err);
    CU_ASSERT_EQUAL_FATAL(rc, KILN_OK);
    js_check_upgraded(e.s, pb_id);
    /* The index of list(), and the ended processes' one made again with
     * CANCELLED under another name. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(e.path, &db), SQLITE_OK);
    int n_rows = 0;
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "SELECT 1 FROM sqlite_master WHERE name = "
                                 "'process_list' OR (name = "
                                 "'process_ended_at' AND sql LIKE "
                                 "'%CANCELLED%')",
                                 js_count_rows, &n_rows, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(n_rows, 2);
    n_rows = 0;
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "SELECT 1 FROM sqlite_master WHERE name = "
                                 "'process_ended'",
                                 js_count_rows, &n_rows, NULL),
                    SQLITE_OK);
    CU_ASSERT_EQUAL(n_rows, 0);
    sqlite3_close(db);
    /* Opened again: the columns are there, nothing is filled twice. */
    jobstore_close(e.s);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    js_check_upgraded(e.s, pb_id);
    js_teardown(&e);
}

/* Runs `sql` on c with text parameters $1.. */
static bool
js_pg_run(PGconn *c, const char *sql, const char *const *args, int n_args)
{
    PGresult *r = PQexecParams(c, sql, n_args, NULL, args, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
    return ok;
}

/* The first value of the first row of `sql` as a number, -1 if none. */
static long
js_pg_number(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    } else {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
    return v;
}

/* The PostgreSQL driver's schema version 1 (kiln_schema at 1). */
static const char *const js_pg_old_schema[] = {
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
    " CONSTRAINT kiln_process_idem UNIQUE (service_id, idem_key))",
    "CREATE INDEX kiln_process_queue ON kiln_process (queue_seq)"
    " WHERE status IN ('QUEUED', 'PROCESSING')",
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
    "INSERT INTO kiln_schema (version, applied_at) VALUES (1, 0)",
};

/* Old processes beyond the cases: enough for several of the backfill's
 * pages (a third each say notify_status true, retry_postback false, and
 * nothing), and one whose id needs quoting in an array literal. */
#define JS_N_BULK 450
#define JS_QUOTE_(x) #x
#define JS_QUOTE(x) JS_QUOTE_(x) /* JS_N_BULK as a string */
#define JS_ODD_ID "we\"ird\\,id {x}"

static void
test_js_upgrade_pg(void)
{
    js_env e;
    if (js_setup_bare(&e) != 0) {
        return;
    }
    PGconn *c = PQconnectdb(e.target);
    CU_ASSERT_EQUAL_FATAL(PQstatus(c), CONNECTION_OK);
    for (size_t i = 0; i < sizeof js_pg_old_schema / sizeof *js_pg_old_schema;
         i++) {
        CU_ASSERT_FATAL(js_pg_run(c, js_pg_old_schema[i], NULL, 0));
    }
    for (int i = 0; i < JS_N_OLD; i++) {
        char id[JOBSTORE_ID_LEN + 1];
        js_old_id(i, id);
        const char *args[] = {id, js_old_requests[i].request};
        CU_ASSERT(js_pg_run(c,
                            "INSERT INTO kiln_process (id, service_id, status, "
                            "request, callback, created_at, updated_at, "
                            "queue_seq) VALUES ($1, 1, 'FINISHED', $2, "
                            "'https://example.com/cb', 1, 1, "
                            "nextval('kiln_queue_seq'))",
                            args, 2));
    }
    CU_ASSERT(js_pg_run(
        c,
        "INSERT INTO kiln_process (id, service_id, status, request, "
        "created_at, updated_at, queue_seq) SELECT 'bulk' || lpad(i::text, "
        "17, '0'), 1, 'FINISHED', CASE i % 3 WHEN 0 THEN "
        "'{\"notify_status\": true}' WHEN 1 THEN '{\"retry_postback\": false}' "
        "ELSE '{\"jobs\": [{}, {}]}' END, 1, 1, nextval('kiln_queue_seq') FROM "
        "generate_series(1, " JS_QUOTE(JS_N_BULK) ") AS i",
        NULL, 0));
    const char *odd[] = {JS_ODD_ID};
    CU_ASSERT(js_pg_run(c,
                        "INSERT INTO kiln_process (id, service_id, status, "
                        "request, created_at, updated_at, queue_seq) VALUES "
                        "($1, 1, 'FINISHED', '{\"notify_status\": true, "
                        "\"retry_postback\": false}', 1, 1, "
                        "nextval('kiln_queue_seq'))",
                        odd, 1));
    int64_t pb_id[3];
    for (int k = 0; k < 3; k++) {
        char id[JOBSTORE_ID_LEN + 1];
        js_old_id(k == 1 ? 1 : 0, id);
        const char *args[] = {id, js_old_postbacks[k]};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO kiln_postback (process_id, "
                                   "service_id, url, body, state, next_at, "
                                   "created_at, updated_at) VALUES ($1, 1, "
                                   "'https://example.com/cb', '{}', $2, 1, 1, "
                                   "1) RETURNING id",
                                   2, NULL, args, NULL, NULL, 0);
        CU_ASSERT_EQUAL_FATAL(PQresultStatus(r), PGRES_TUPLES_OK);
        pb_id[k] = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }

    kiln_error err = {0};
    int rc = jobstore_open(js_driver, e.target, &e.s, &err);
    if (rc != KILN_OK) {
        fprintf(stderr, "\n  upgrade: %s\n", err.message);
    }
    CU_ASSERT_EQUAL_FATAL(rc, KILN_OK);
    js_check_upgraded(e.s, pb_id);
    /* Every later migration too (3: the rate-limit buckets; 4: n_jobs,
     * duration_ms, cancel_requested, and the indexes of list() and of
     * ended processes, CANCELLED included). */
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT max(version) FROM kiln_schema"), 4);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "id LIKE 'bulk%' AND n_jobs = 2"),
                    JS_N_BULK / 3);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "id LIKE 'bulk%' AND n_jobs <> 0 AND "
                                    "request NOT LIKE '%jobs%'"),
                    0);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "duration_ms IS NOT NULL OR "
                                    "cancel_requested"),
                    0);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM pg_indexes WHERE "
                                    "indexname = 'kiln_process_list' OR "
                                    "(indexname = 'kiln_process_ended' AND "
                                    "indexdef LIKE '%CANCELLED%')"),
                    2);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "id LIKE 'bulk%' AND notify_status"),
                    JS_N_BULK / 3);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "id LIKE 'bulk%' AND NOT retry_postback"),
                    JS_N_BULK / 3);
    CU_ASSERT_EQUAL(js_pg_number(c, "SELECT count(*) FROM kiln_process WHERE "
                                    "id LIKE 'bulk%' AND (notify_status OR "
                                    "NOT retry_postback) AND request LIKE "
                                    "'%jobs%'"),
                    0);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, JS_ODD_ID, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.notify_status, true);
    CU_ASSERT_EQUAL(p.retry_postback, false);
    jobstore_process_clear(&p);
    PQfinish(c);
    /* Opened again: already at the newest version, nothing runs twice. */
    jobstore_close(e.s);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    js_check_upgraded(e.s, pb_id);
    js_teardown(&e);
}

/* -------------------------------------- cancel, list, statistics (16) */

/* Creates a process of `service` in `status` with n_jobs and a callback
 * (NULL: none), fresh id into id. */
static int
js_create_full(jobstore *s, int service, jobstore_status status, int n_jobs,
               const char *callback, int64_t not_before,
               char id[JOBSTORE_ID_LEN + 1])
{
    kiln_error err = {0};
    jobstore_process p = {0};
    if (jobstore_new_id(p.id, &err) != KILN_OK) {
        return KILN_EIO;
    }
    p.service_id = service;
    p.status = status;
    p.request = "{\"jobs\":[]}";
    p.callback = (char *)callback;
    p.not_before = not_before;
    p.retry_postback = true;
    p.n_jobs = n_jobs;
    int rc = jobstore_create(s, &p, &err);
    memcpy(id, p.id, JOBSTORE_ID_LEN + 1);
    return rc;
}

/* Claims at `now` and checks that the claim took process `id`; returns
 * its lease token (0 when it did not). */
static int64_t
js_claim_id(jobstore *s, int64_t now, const char *id)
{
    jobstore_process p;
    kiln_error err = {0};
    int rc = jobstore_claim(s, now, 3600, &p, &err);
    CU_ASSERT_EQUAL(rc, KILN_OK);
    if (rc != KILN_OK) {
        return 0;
    }
    CU_ASSERT_STRING_EQUAL(p.id, id);
    int64_t token = strcmp(p.id, id) == 0 ? p.lease_token : 0;
    jobstore_process_clear(&p);
    return token;
}

/* The bodies of the postbacks stored for process `id`, oldest first,
 * joined by spaces. */
static void
js_postback_bodies(jobstore *s, const char *id, char *out, size_t size)
{
    jobstore_postback *pbs = NULL;
    size_t n = 0;
    kiln_error err = {0};
    out[0] = '\0';
    CU_ASSERT_EQUAL(jobstore_postbacks_of(s, id, &pbs, &n, &err), KILN_OK);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i > 0 ? " " : "",
                 JS_STR(pbs[i].body));
    }
    jobstore_postbacks_free(pbs, n);
}

/* POST /cancel: a process that has not started ends at once (a status
 * change: hook and postback); a running one is asked to stop, and its
 * worker ends it CANCELLED; an ended one is refused with its status;
 * another service's is not found. CANCELLED counts as ended for retry,
 * counts and complete_timed. */
static void
test_js_cancel(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    js_seen seen = {""};
    jobstore_set_notify(e.s, js_hook, &seen);
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    const char *cb = "https://example.com/cb";
    char inc[JOBSTORE_ID_LEN + 1], queued[JOBSTORE_ID_LEN + 1],
        quiet[JOBSTORE_ID_LEN + 1], run[JOBSTORE_ID_LEN + 1],
        fin[JOBSTORE_ID_LEN + 1], failed[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_INCOMPLETE, 0, cb, 0, inc), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 2, cb, 0, queued), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 1, NULL, 0, quiet), KILN_OK);

    /* Not started: CANCELLED at once, told to the hook, its postback
     * stored with the change (none without a callback). */
    jobstore_status was = JOBSTORE_N_STATUS;
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, inc, 1, &was, &err), KILN_OK);
    CU_ASSERT_EQUAL(was, JOBSTORE_INCOMPLETE);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, queued, 1, &was, &err), KILN_OK);
    CU_ASSERT_EQUAL(was, JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, quiet, 1, NULL, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED CANCELLED");
    CU_ASSERT_EQUAL(js_status_of(e.s, inc, 1), JOBSTORE_CANCELLED);
    CU_ASSERT_EQUAL(js_status_of(e.s, queued, 1), JOBSTORE_CANCELLED);
    CU_ASSERT_EQUAL(js_status_of(e.s, quiet, 1), JOBSTORE_CANCELLED);
    char bodies[256];
    js_postback_bodies(e.s, inc, bodies, sizeof bodies);
    CU_ASSERT_STRING_EQUAL(bodies, "{\"status\":\"CANCELLED\"}");
    js_postback_bodies(e.s, queued, bodies, sizeof bodies);
    CU_ASSERT_STRING_EQUAL(bodies, "{\"status\":\"CANCELLED\"}");
    js_postback_bodies(e.s, quiet, bodies, sizeof bodies);
    CU_ASSERT_STRING_EQUAL(bodies, "");
    /* Nothing to claim: a cancelled process never runs. */
    jobstore_process p;
    CU_ASSERT_EQUAL(jobstore_claim(e.s, now, 60, &p, &err), KILN_ENOTFOUND);
    /* Again: it has ended, and says how. */
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, queued, 1, &was, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_CANCELLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "CANCELLED"));
    /* Another service's, or none: not found. */
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, queued, 2, &was, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(
        jobstore_cancel(e.s, "AAAAAAAAAAAAAAAAAAAAA", 1, &was, &err),
        KILN_ENOTFOUND);

    /* Running: asked to stop, nothing else changes (no status change). */
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 3, cb, 0, run), KILN_OK);
    int64_t token = js_claim_id(e.s, now, run);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED CANCELLED PROCESSING");
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, run, 2, &was, &err), KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, run, 1, &was, &err), KILN_OK);
    CU_ASSERT_EQUAL(was, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, run, 1, &was, &err), KILN_OK);
    CU_ASSERT_EQUAL(was, JOBSTORE_PROCESSING);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED CANCELLED PROCESSING");
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, run, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_PROCESSING);
    CU_ASSERT_EQUAL(p.cancel_requested, true);
    CU_ASSERT_EQUAL(p.lease_token, token);
    jobstore_process_clear(&p);
    /* The keeper's question: which of these runs must stop? */
    const char *ids[4] = {run, queued, "AAAAAAAAAAAAAAAAAAAAA", run};
    bool stop[4] = {false, true, true, false};
    CU_ASSERT_EQUAL(jobstore_cancel_requested(e.s, ids, 4, stop, &err),
                    KILN_OK);
    CU_ASSERT(stop[0] && !stop[1] && !stop[2] && stop[3]);
    CU_ASSERT_EQUAL(jobstore_cancel_requested(e.s, ids, 0, stop, &err),
                    KILN_OK);
    const char *many[JOBSTORE_MAX_IDS + 1];
    bool many_out[JOBSTORE_MAX_IDS + 1];
    for (int i = 0; i <= JOBSTORE_MAX_IDS; i++) {
        many[i] = run;
    }
    CU_ASSERT_EQUAL(
        jobstore_cancel_requested(e.s, many, JOBSTORE_MAX_IDS, many_out, &err),
        KILN_OK);
    CU_ASSERT(many_out[0] && many_out[JOBSTORE_MAX_IDS - 1]);
    CU_ASSERT_EQUAL(jobstore_cancel_requested(e.s, many, JOBSTORE_MAX_IDS + 1,
                                              many_out, &err),
                    KILN_EINVAL);
    /* Its worker stops and ends it: CANCELLED, with its time, told. */
    CU_ASSERT_EQUAL(jobstore_complete(e.s, run, token, JOBSTORE_CANCELLED, NULL,
                                      NULL, &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, run, token, JOBSTORE_CANCELLED,
                                            "[]", "cancelled", 250.5, &err),
                    KILN_OK);
    CU_ASSERT_STRING_EQUAL(seen.statuses,
                           "CANCELLED CANCELLED PROCESSING CANCELLED");
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, run, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_CANCELLED);
    CU_ASSERT_EQUAL(p.cancel_requested, false);
    CU_ASSERT_EQUAL(p.duration_ms, 250.5);
    CU_ASSERT_EQUAL(p.lease_until, 0);
    CU_ASSERT_STRING_EQUAL(JS_STR(p.error), "cancelled");
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_cancel_requested(e.s, ids, 1, stop, &err),
                    KILN_OK);
    CU_ASSERT(!stop[0]);
    js_postback_bodies(e.s, run, bodies, sizeof bodies);
    CU_ASSERT_STRING_EQUAL(bodies, "{\"status\":\"CANCELLED\"}");

    /* Ended: 409, with the status it has. */
    js_ended(e.s, JOBSTORE_FINISHED, 0, fin, NULL);
    js_ended(e.s, JOBSTORE_FAILED, 0, failed, NULL);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, fin, 1, &was, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_FINISHED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "FINISHED"));
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, failed, 1, &was, &err), KILN_EPERM);
    CU_ASSERT_EQUAL(was, JOBSTORE_FAILED);
    CU_ASSERT_EQUAL(js_status_of(e.s, fin, 1), JOBSTORE_FINISHED);

    jobstore_counts c;
    CU_ASSERT_EQUAL(jobstore_counts_get(e.s, now, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_CANCELLED], 4);
    CU_ASSERT_EQUAL(c.processes[JOBSTORE_FINISHED], 1);

    /* Retry of a cancelled one: back in the queue as attempt 2, with no
     * time and no cancellation left. */
    int attempt = 0;
    CU_ASSERT_EQUAL(jobstore_retry(e.s, run, 2, &attempt, NULL, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_EQUAL(jobstore_retry(e.s, run, 1, &attempt, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL(attempt, 2);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, run, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_QUEUED);
    CU_ASSERT_EQUAL(p.duration_ms, -1);
    CU_ASSERT_EQUAL(p.cancel_requested, false);
    CU_ASSERT_PTR_NULL(p.result);
    CU_ASSERT_PTR_NULL(p.error);
    CU_ASSERT_EQUAL(p.n_jobs, 3);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_retry(e.s, inc, 1, &attempt, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL(attempt, 2);
    js_claim_id(e.s, now, run);
    js_teardown(&e);
}

/* A run asked to stop never runs again: each way it would go back to the
 * queue (requeue, interrupt, a lease taken back, recover) ends it
 * CANCELLED instead, as a status change. */
static void
test_js_cancel_running(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    js_seen seen = {""};
    jobstore_set_notify(e.s, js_hook, &seen);
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    const char *cb = "https://example.com/cb";
    enum { REQUEUE, INTERRUPT, LEASE, RECOVER, N_WAYS };
    char id[N_WAYS][JOBSTORE_ID_LEN + 1], next[JOBSTORE_ID_LEN + 1];
    int64_t token[N_WAYS];
    for (int w = REQUEUE; w <= LEASE; w++) {
        CU_ASSERT_EQUAL_FATAL(
            js_create_full(e.s, 1, JOBSTORE_QUEUED, 1, cb, 0, id[w]), KILN_OK);
        jobstore_process p;
        CU_ASSERT_EQUAL_FATAL(
            jobstore_claim(e.s, now, w == LEASE ? 10 : 3600, &p, &err),
            KILN_OK);
        CU_ASSERT_STRING_EQUAL(p.id, id[w]);
        token[w] = p.lease_token;
        jobstore_process_clear(&p);
        CU_ASSERT_EQUAL(jobstore_cancel(e.s, id[w], 1, NULL, &err), KILN_OK);
    }
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 1, NULL, 0, next), KILN_OK);
    seen.statuses[0] = '\0';

    CU_ASSERT_EQUAL(jobstore_requeue(e.s, id[REQUEUE], token[REQUEUE], 0,
                                     "source not found", &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(jobstore_interrupt(e.s, id[INTERRUPT], token[INTERRUPT],
                                       "shutting down", &err),
                    KILN_OK);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED CANCELLED");
    /* A claim after LEASE's ran out ends it, and goes on to the next
     * (which has no callback: the hook does not see it). */
    js_expect_claim(e.s, now + 20, 60, next, 0);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED CANCELLED CANCELLED");
    /* LEASE's old holder is fenced off like any whose lease was taken. */
    CU_ASSERT_EQUAL(jobstore_complete(e.s, id[LEASE], token[LEASE],
                                      JOBSTORE_FINISHED, "[]", NULL, &err),
                    KILN_EPERM);

    /* RECOVER's host dies while it runs: its lease ran out long ago, on
     * the store's clock too (PostgreSQL recovers only those). */
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 1, cb, 0, id[RECOVER]),
        KILN_OK);
    CU_ASSERT_EQUAL(js_claim_id(e.s, now - 10000, id[RECOVER]) > 0, true);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, id[RECOVER], 1, NULL, &err), KILN_OK);
    jobstore_close(e.s);
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &e.s, &err),
                          KILN_OK);
    seen.statuses[0] = '\0';
    jobstore_set_notify(e.s, js_hook, &seen);
    int n = -1;
    CU_ASSERT_EQUAL(jobstore_recover(e.s, &n, &err), KILN_OK);
    /* SQLite takes back every run: `next` is re-queued, and only it;
     * PostgreSQL leaves its live lease alone. */
    CU_ASSERT_EQUAL(n, js_pg() ? 0 : 1);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED");
    for (int w = 0; w < N_WAYS; w++) {
        jobstore_process p;
        CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, id[w], 1, &p, &err), KILN_OK);
        CU_ASSERT_EQUAL(p.status, JOBSTORE_CANCELLED);
        CU_ASSERT_EQUAL(p.cancel_requested, false);
        CU_ASSERT_EQUAL(p.lease_until, 0);
        CU_ASSERT_STRING_EQUAL(JS_STR(p.error), "cancelled while it ran");
        jobstore_process_clear(&p);
        char bodies[128];
        js_postback_bodies(e.s, id[w], bodies, sizeof bodies);
        CU_ASSERT_STRING_EQUAL(bodies, "{\"status\":\"CANCELLED\"}");
    }
    /* None of them is ever claimed again: only `next` comes back. */
    if (!js_pg()) {
        js_expect_claim(e.s, now + 30, 60, next, 0);
    }
    js_expect_claim(e.s, now + 100000, 60, next, 1);
    js_expect_claim(e.s, now + 100000, 60, NULL, 0);
    /* A lease taken back when nothing else is ready: the claim finds
     * nothing, and the cancellation is kept all the same. */
    char lone[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 1, cb, 0, lone), KILN_OK);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now + 100000, 10, &p, &err),
                          KILN_OK);
    CU_ASSERT_STRING_EQUAL(p.id, lone);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_cancel(e.s, lone, 1, NULL, &err), KILN_OK);
    seen.statuses[0] = '\0';
    js_expect_claim(e.s, now + 100020, 60, NULL, 0);
    CU_ASSERT_STRING_EQUAL(seen.statuses, "CANCELLED");
    CU_ASSERT_EQUAL(js_status_of(e.s, lone, 1), JOBSTORE_CANCELLED);
    char bodies[128];
    js_postback_bodies(e.s, lone, bodies, sizeof bodies);
    CU_ASSERT_STRING_EQUAL(bodies, "{\"status\":\"CANCELLED\"}");
    js_teardown(&e);
}

/* n_jobs from create and append_jobs, duration_ms from complete_timed
 * (-1 before and from complete), through get, claim and list. */
static void
test_js_jobs_duration(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = (int64_t)time(NULL);
    char a[JOBSTORE_ID_LEN + 1], d[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_QUEUED, 7, NULL, 0, a), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(e.s, 1, JOBSTORE_INCOMPLETE, 0, NULL, 0, d), KILN_OK);
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.n_jobs, 7);
    CU_ASSERT_EQUAL(p.duration_ms, -1);
    CU_ASSERT_EQUAL(p.cancel_requested, false);
    jobstore_process_clear(&p);
    /* A negative count is refused. */
    char bad[JOBSTORE_ID_LEN + 1];
    CU_ASSERT_EQUAL(js_create_full(e.s, 1, JOBSTORE_QUEUED, -1, NULL, 0, bad),
                    KILN_EINVAL);
    /* append_jobs keeps the count. */
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, d, 1, "[{}, {}]", 0, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, d, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.n_jobs, 2);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, d, 1, "[{}]", 0, &n, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(n, 3);
    /* Refused (past max_jobs): the count stays. */
    CU_ASSERT_EQUAL(jobstore_append_jobs(e.s, d, 1, "[{}]", 3, &n, &err),
                    KILN_ELIMIT);
    CU_ASSERT_EQUAL(jobstore_set_processing(e.s, d, 1, NULL, &err), KILN_OK);

    /* complete_timed: checked, fenced, stored exactly. */
    jobstore_process c;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c.id, a);
    CU_ASSERT_EQUAL(c.n_jobs, 7);
    CU_ASSERT_EQUAL(c.duration_ms, -1);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, a, c.lease_token,
                                            JOBSTORE_QUEUED, NULL, NULL, 1,
                                            &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, a, c.lease_token,
                                            JOBSTORE_FINISHED, NULL, NULL, -5,
                                            &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, a, c.lease_token,
                                            JOBSTORE_FINISHED, NULL, NULL,
                                            (double)NAN, &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, a, c.lease_token + 1,
                                            JOBSTORE_FINISHED, NULL, NULL, 1,
                                            &err),
                    KILN_EPERM);
    double ms = 0.1 + 0.2; /* 0.30000000000000004: every digit counts */
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, a, c.lease_token,
                                            JOBSTORE_FINISHED, "[]", NULL, ms,
                                            &err),
                    KILN_OK);
    jobstore_process_clear(&c);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, a, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(p.duration_ms, ms);
    jobstore_process_clear(&p);
    /* complete() records none; 0 is a time. */
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c.id, d);
    CU_ASSERT_EQUAL(c.n_jobs, 3);
    CU_ASSERT_EQUAL(jobstore_complete(e.s, d, c.lease_token, JOBSTORE_FAILED,
                                      NULL, "x", &err),
                    KILN_OK);
    jobstore_process_clear(&c);
    CU_ASSERT_EQUAL_FATAL(jobstore_get(e.s, d, 1, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.duration_ms, -1);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(jobstore_retry(e.s, d, 1, NULL, NULL, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(e.s, now, 60, &c, &err), KILN_OK);
    CU_ASSERT_EQUAL(jobstore_complete_timed(e.s, d, c.lease_token,
                                            JOBSTORE_FINISHED, "[]", NULL, 0,
                                            &err),
                    KILN_OK);
    jobstore_process_clear(&c);

    /* list() fills them too, and leaves request and result out. */
    int svc = 1;
    jobstore_query q = {&svc, 1, -1, 0, 0, 0, "", 10};
    jobstore_process *ps = NULL;
    CU_ASSERT_EQUAL(jobstore_list(e.s, &q, &ps, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    for (size_t i = 0; i < n; i++) {
        bool is_a = strcmp(ps[i].id, a) == 0;
        CU_ASSERT_EQUAL(ps[i].n_jobs, is_a ? 7 : 3);
        CU_ASSERT_EQUAL(ps[i].duration_ms, is_a ? ms : 0);
        CU_ASSERT_EQUAL(ps[i].status, JOBSTORE_FINISHED);
        CU_ASSERT_EQUAL(ps[i].attempt, is_a ? 1 : 2);
        CU_ASSERT_PTR_NULL(ps[i].request);
        CU_ASSERT_PTR_NULL(ps[i].result);
    }
    jobstore_processes_free(ps, n);
    jobstore_processes_free(NULL, 0);
    /* list_ended() gives the times. */
    jobstore_ended_process *ended = NULL;
    CU_ASSERT_EQUAL(
        jobstore_list_ended(e.s, &svc, 1, 0, INT64_MAX, &ended, &n, &err),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT((ended[0].duration_ms == ms && ended[1].duration_ms == 0) ||
              (ended[0].duration_ms == 0 && ended[1].duration_ms == ms));
    free(ended);
    js_teardown(&e);
}

/* A process's postbacks, oldest first, with their contents and state;
 * none for a process without any. */
static void
test_js_postbacks_of(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int64_t now = 1700000000;
    char a[JOBSTORE_ID_LEN + 1], b[JOBSTORE_ID_LEN + 1];
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, a);
    js_create(e.s, 1, JOBSTORE_QUEUED, "{}", NULL, NULL, 0, b);
    int64_t ids[4];
    for (int i = 0; i < 4; i++) {
        jobstore_postback pb = {0};
        char url[64], body[64];
        snprintf(url, sizeof url, "https://example.com/cb/%d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        memcpy(pb.process_id, i == 2 ? b : a, JOBSTORE_ID_LEN + 1);
        pb.service_id = 1;
        pb.url = url;
        pb.body = body;
        /* Due in the opposite order: the list is by id, not schedule. */
        pb.next_at = now - i;
        pb.retry = i % 2 == 0;
        CU_ASSERT_EQUAL_FATAL(
            jobstore_postback_enqueue(e.s, &pb, &ids[i], &err), KILN_OK);
    }
    jobstore_postback_state st;
    CU_ASSERT_EQUAL(jobstore_postback_record(e.s, ids[1], true, 204, NULL, now,
                                             true, &st, &err),
                    KILN_OK);
    jobstore_postback *pbs = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(jobstore_postbacks_of(e.s, a, &pbs, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    static const int want[3] = {0, 1, 3};
    for (size_t k = 0; k < n; k++) {
        int i = want[k];
        char url[64], body[64];
        snprintf(url, sizeof url, "https://example.com/cb/%d", i);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        CU_ASSERT_EQUAL(pbs[k].id, ids[i]);
        CU_ASSERT_STRING_EQUAL(pbs[k].process_id, a);
        CU_ASSERT_STRING_EQUAL(JS_STR(pbs[k].url), url);
        CU_ASSERT_STRING_EQUAL(JS_STR(pbs[k].body), body);
        CU_ASSERT_EQUAL(pbs[k].retry, i % 2 == 0);
        CU_ASSERT_EQUAL(pbs[k].state,
                        i == 1 ? JOBSTORE_PB_DELIVERED : JOBSTORE_PB_PENDING);
        CU_ASSERT_EQUAL(pbs[k].last_status, i == 1 ? 204 : 0);
    }
    jobstore_postbacks_free(pbs, n);
    CU_ASSERT_EQUAL(jobstore_postbacks_of(e.s, b, &pbs, &n, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(pbs[0].id, ids[2]);
    jobstore_postbacks_free(pbs, n);
    CU_ASSERT_EQUAL(
        jobstore_postbacks_of(e.s, "AAAAAAAAAAAAAAAAAAAAA", &pbs, &n, &err),
        KILN_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NULL(pbs);
    js_teardown(&e);
}

/* ------------------------------------------- list() against a model */

#define JS_LIST_N 300      /* processes */
#define JS_LIST_SERVICES 3 /* services 1..3 own them; 4 owns none */
#define JS_LIST_QUERIES 200
#define JS_LIST_T0 INT64_C(1700000000)
#define JS_LIST_SPAN 60 /* created_at and updated_at in T0 .. T0 + 59 */

/* splitmix64: a small generator the seed reproduces on any platform. */
static uint64_t
js_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int
js_rand_below(uint64_t *state, int n)
{
    return (int)(js_rand(state) % (uint64_t)n);
}

/* What the test knows of each process it made. */
typedef struct js_model {
    char id[JOBSTORE_ID_LEN + 1];
    int service;
    jobstore_status status;
    int attempt;
    int n_jobs;
    double duration_ms;
    bool cancel_requested;
    int64_t created_at, updated_at;
} js_model;

/* Newest first: created_at, then id (bytes), descending. */
static int
js_cmp_newest(const void *a, const void *b)
{
    const js_model *x = a, *y = b;
    if (x->created_at != y->created_at) {
        return x->created_at < y->created_at ? 1 : -1;
    }
    return -strcmp(x->id, y->id);
}

/* A direct connection to the test's store, for what the API cannot do:
 * set a process's timestamps. */
typedef struct js_raw {
    sqlite3 *db;
    PGconn *pg;
} js_raw;

static bool
js_raw_open(const js_env *e, js_raw *r)
{
    memset(r, 0, sizeof *r);
    if (js_pg()) {
        r->pg = PQconnectdb(e->target);
        return PQstatus(r->pg) == CONNECTION_OK;
    }
    return sqlite3_open(e->path, &r->db) == SQLITE_OK;
}

static void
js_raw_close(js_raw *r)
{
    PQfinish(r->pg);
    sqlite3_close(r->db);
}

static bool
js_set_times(js_raw *r, const char *id, int64_t created, int64_t updated)
{
    char c[24], u[24];
    snprintf(c, sizeof c, "%lld", (long long)created);
    snprintf(u, sizeof u, "%lld", (long long)updated);
    const char *args[] = {id, c, u};
    if (r->pg != NULL) {
        return js_pg_run(r->pg,
                         "UPDATE kiln_process SET created_at = $2, updated_at "
                         "= $3 WHERE id = $1",
                         args, 3);
    }
    return js_sqlite_run(r->db,
                         "UPDATE process SET created_at = CAST(?2 AS "
                         "INTEGER), updated_at = CAST(?3 AS INTEGER) WHERE "
                         "id = ?1",
                         args, 3) == SQLITE_OK;
}

/* Makes process m (its service and n_jobs set) and takes it, through the
 * store's own calls, to one of the ways a process can stand, filling in
 * the model. Every claim must take m: the processes left QUEUED wait
 * until far after `now`. */
static void
js_make_one(jobstore *s, uint64_t *rng, int64_t now, js_model *m)
{
    kiln_error err = {0};
    int way = js_rand_below(rng, 9);
    bool incomplete = way == 0 || (way == 6 && js_rand_below(rng, 2) == 0);
    bool waits = way == 1 || way == 6;
    CU_ASSERT_EQUAL_FATAL(
        js_create_full(s, m->service,
                       incomplete ? JOBSTORE_INCOMPLETE : JOBSTORE_QUEUED,
                       m->n_jobs, NULL, waits ? now + 100000000 : 0, m->id),
        KILN_OK);
    m->status = incomplete ? JOBSTORE_INCOMPLETE : JOBSTORE_QUEUED;
    m->attempt = 1;
    m->duration_ms = -1;
    if (way == 6) { /* cancelled before it started */
        CU_ASSERT_EQUAL(jobstore_cancel(s, m->id, m->service, NULL, &err),
                        KILN_OK);
        m->status = JOBSTORE_CANCELLED;
    }
    if (way <= 1 || way == 6) {
        return;
    }
    int64_t token = js_claim_id(s, now, m->id);
    m->status = JOBSTORE_PROCESSING;
    double ms = js_rand_below(rng, 1 << 20) / 16.0;
    if (way == 3 || way == 7) { /* asked to stop */
        CU_ASSERT_EQUAL(jobstore_cancel(s, m->id, m->service, NULL, &err),
                        KILN_OK);
        m->cancel_requested = way == 3;
    }
    if (way == 4 || way == 7) {
        jobstore_status st = way == 4 ? JOBSTORE_FINISHED : JOBSTORE_CANCELLED;
        CU_ASSERT_EQUAL(
            jobstore_complete_timed(s, m->id, token, st, "[]", NULL, ms, &err),
            KILN_OK);
        m->status = st;
        m->duration_ms = ms;
    }
    if (way == 5 || way == 8) {
        CU_ASSERT_EQUAL(jobstore_complete(s, m->id, token, JOBSTORE_FAILED,
                                          NULL, "x", &err),
                        KILN_OK);
        m->status = JOBSTORE_FAILED;
    }
    if (way == 8) { /* retried, and finished the second time */
        CU_ASSERT_EQUAL(jobstore_retry(s, m->id, m->service, NULL, NULL, &err),
                        KILN_OK);
        token = js_claim_id(s, now, m->id);
        CU_ASSERT_EQUAL(jobstore_complete_timed(s, m->id, token,
                                                JOBSTORE_FINISHED, "[]", NULL,
                                                ms, &err),
                        KILN_OK);
        m->status = JOBSTORE_FINISHED;
        m->attempt = 2;
        m->duration_ms = ms;
    }
}

/* One random query of list() or list_ended(). */
typedef struct js_rquery {
    int services[5];
    size_t n_services;
    int status;
    int64_t since, until;
    int limit;
} js_rquery;

static void
js_random_query(uint64_t *rng, js_rquery *q)
{
    memset(q, 0, sizeof *q);
    int set = 1 + js_rand_below(rng, 15); /* services 1..4, at least one */
    for (int i = 0; i < 4; i++) {
        if (set & (1 << i)) {
            q->services[q->n_services++] = i + 1;
        }
    }
    if (js_rand_below(rng, 8) == 0) { /* one named twice */
        q->services[q->n_services] = q->services[0];
        q->n_services++;
    }
    q->status =
        js_rand_below(rng, 5) < 2 ? -1 : js_rand_below(rng, JOBSTORE_N_STATUS);
    q->since = js_rand_below(rng, 2)
                   ? 0
                   : JS_LIST_T0 - 3 + js_rand_below(rng, JS_LIST_SPAN + 6);
    q->until = js_rand_below(rng, 2)
                   ? 0
                   : JS_LIST_T0 - 3 + js_rand_below(rng, JS_LIST_SPAN + 6);
    int r = js_rand_below(rng, 10);
    q->limit = r < 7   ? 1 + js_rand_below(rng, 12)
               : r < 9 ? 13 + js_rand_below(rng, 120)
                       : 1000;
}

static bool
js_query_has(const js_rquery *q, int service)
{
    for (size_t i = 0; i < q->n_services; i++) {
        if (q->services[i] == service) {
            return true;
        }
    }
    return false;
}

static void
js_print_query(const char *what, uint64_t seed, const js_rquery *q)
{
    fprintf(stderr,
            "\n  %s (seed %llu; KILN_TEST_SEED=%llu repeats it): "
            "services",
            what, (unsigned long long)seed, (unsigned long long)seed);
    for (size_t i = 0; i < q->n_services; i++) {
        fprintf(stderr, " %d", q->services[i]);
    }
    fprintf(stderr, ", status %d, since %lld, until %lld, limit %d\n",
            q->status, (long long)q->since, (long long)q->until, q->limit);
}

/* Whether list() of q selects process m. */
static bool
js_selects(const js_rquery *q, const js_model *m)
{
    return js_query_has(q, m->service) &&
           (q->status < 0 || (int)m->status == q->status) &&
           (q->since == 0 || m->created_at >= q->since) &&
           (q->until == 0 || m->created_at < q->until);
}

/* How many processes of the model q selects. */
static int
js_n_selected(const js_model *model, int n_model, const js_rquery *q)
{
    int n = 0;
    for (int i = 0; i < n_model; i++) {
        n += js_selects(q, &model[i]);
    }
    return n;
}

/* Walks every page of q and compares their concatenation with the
 * model's selection (`sorted` newest first): the same processes, as
 * stored, in that order. With `verbose`, says where they part. */
static bool
js_check_list(jobstore *s, const js_model *sorted, int n_model,
              const js_rquery *rq, bool verbose)
{
    jobstore_query q;
    memset(&q, 0, sizeof q);
    q.service_ids = rq->services;
    q.n_service_ids = rq->n_services;
    q.status = rq->status;
    q.since = rq->since;
    q.until = rq->until;
    q.limit = rq->limit;
    int at = 0; /* the model's next process to look at */
    bool ok = true;
    for (int page = 0; ok && page <= n_model + 1; page++) {
        jobstore_process *ps = NULL;
        size_t n = 0;
        kiln_error err = {0};
        if (jobstore_list(s, &q, &ps, &n, &err) != KILN_OK) {
            if (verbose) {
                fprintf(stderr, "  list: %s\n", err.message);
            }
            return false;
        }
        for (size_t k = 0; ok && k < n; k++) {
            while (at < n_model && !js_selects(rq, &sorted[at])) {
                at++;
            }
            const js_model *m = at < n_model ? &sorted[at++] : NULL;
            ok = m != NULL && strcmp(ps[k].id, m->id) == 0 &&
                 ps[k].service_id == m->service && ps[k].status == m->status &&
                 ps[k].attempt == m->attempt && ps[k].n_jobs == m->n_jobs &&
                 ps[k].duration_ms == m->duration_ms &&
                 ps[k].cancel_requested == m->cancel_requested &&
                 ps[k].created_at == m->created_at &&
                 ps[k].updated_at == m->updated_at && ps[k].request == NULL &&
                 ps[k].result == NULL;
            if (!ok && verbose) {
                fprintf(stderr, "  list: page %d item %zu is %s, expected %s\n",
                        page, k, ps[k].id, m != NULL ? m->id : "nothing");
            }
        }
        bool full = n == (size_t)q.limit;
        if (n > 0) {
            q.after_created = ps[n - 1].created_at;
            memcpy(q.after_id, ps[n - 1].id, sizeof q.after_id);
        }
        jobstore_processes_free(ps, n);
        if (!full) {
            break;
        }
    }
    /* Nothing the model selects was left out. */
    for (; ok && at < n_model; at++) {
        if (js_selects(rq, &sorted[at])) {
            if (verbose) {
                fprintf(stderr, "  list: %s is missing\n", sorted[at].id);
            }
            ok = false;
        }
    }
    return ok;
}

/* Sorts ended rows for comparison: updated_at, status, duration. */
static int
js_cmp_ended(const void *a, const void *b)
{
    const jobstore_ended_process *x = a, *y = b;
    if (x->updated_at != y->updated_at) {
        return x->updated_at < y->updated_at ? -1 : 1;
    }
    if (x->status != y->status) {
        return x->status < y->status ? -1 : 1;
    }
    return x->duration_ms < y->duration_ms   ? -1
           : x->duration_ms > y->duration_ms ? 1
                                             : 0;
}

/* list_ended() of q's services in [since, until) against the model: the same
 * rows, in updated_at order. */
static bool
js_check_ended(jobstore *s, const js_model *model, int n_model,
               const js_rquery *rq)
{
    int64_t since = rq->since, until = rq->until != 0 ? rq->until : INT64_MAX;
    jobstore_ended_process want[JS_LIST_N];
    size_t n_want = 0;
    for (int i = 0; i < n_model; i++) {
        const js_model *m = &model[i];
        if (js_query_has(rq, m->service) && jobstore_status_ended(m->status) &&
            m->updated_at >= since && m->updated_at < until) {
            want[n_want].updated_at = m->updated_at;
            want[n_want].status = m->status;
            want[n_want].duration_ms = m->duration_ms;
            n_want++;
        }
    }
    jobstore_ended_process *got = NULL;
    size_t n_got = 0;
    kiln_error err = {0};
    if (jobstore_list_ended(s, rq->services, rq->n_services, since, until, &got,
                            &n_got, &err) != KILN_OK) {
        fprintf(stderr, "\n  ended: %s\n", err.message);
        return false;
    }
    bool ok = n_got == n_want && (n_got > 0 || got == NULL);
    for (size_t i = 1; ok && i < n_got; i++) {
        ok = got[i - 1].updated_at <= got[i].updated_at;
    }
    if (ok && n_got > 0) {
        qsort(got, n_got, sizeof *got, js_cmp_ended);
        qsort(want, n_want, sizeof *want, js_cmp_ended);
        for (size_t i = 0; ok && i < n_got; i++) {
            ok = js_cmp_ended(&got[i], &want[i]) == 0;
        }
    }
    if (!ok) {
        fprintf(stderr, "\n  ended: %zu rows, expected %zu\n", n_got, n_want);
    }
    free(got);
    return ok;
}

/* list() and list_ended() against a model of a random store: processes of
 * three services in every status (through the store's own calls), with
 * timestamps set directly, many on the same second so that ids break
 * ties; random queries walked page by page with the cursor must give
 * exactly the model's selection, newest first, with no process twice and
 * none left out. A failure prints the seed and the smallest failing
 * query. */
static void
test_js_list_model(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    const char *env = getenv("KILN_TEST_SEED");
    uint64_t seed = env != NULL && env[0] != '\0'
                        ? strtoull(env, NULL, 10)
                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    uint64_t rng = seed;
    int64_t now = (int64_t)time(NULL);
    static js_model model[JS_LIST_N];
    memset(model, 0, sizeof model);
    for (int i = 0; i < JS_LIST_N; i++) {
        model[i].service = 1 + js_rand_below(&rng, JS_LIST_SERVICES);
        model[i].n_jobs = js_rand_below(&rng, 6);
        js_make_one(e.s, &rng, now, &model[i]);
    }
    js_raw raw;
    CU_ASSERT_FATAL(js_raw_open(&e, &raw));
    for (int i = 0; i < JS_LIST_N; i++) {
        model[i].created_at = JS_LIST_T0 + js_rand_below(&rng, JS_LIST_SPAN);
        model[i].updated_at = JS_LIST_T0 + js_rand_below(&rng, JS_LIST_SPAN);
        CU_ASSERT(js_set_times(&raw, model[i].id, model[i].created_at,
                               model[i].updated_at));
    }
    js_raw_close(&raw);
    static js_model sorted[JS_LIST_N];
    memcpy(sorted, model, sizeof sorted);
    qsort(sorted, JS_LIST_N, sizeof *sorted, js_cmp_newest);

    /* The smallest failing query: fewest processes selected, then the
     * largest pages. */
    int n_failed = 0, smallest = -1;
    js_rquery worst;
    for (int k = 0; k < JS_LIST_QUERIES; k++) {
        js_rquery rq;
        js_random_query(&rng, &rq);
        if (!js_check_list(e.s, sorted, JS_LIST_N, &rq, false)) {
            int size =
                js_n_selected(model, JS_LIST_N, &rq) * 1001 + (1000 - rq.limit);
            if (smallest < 0 || size < smallest) {
                smallest = size;
                worst = rq;
            }
            n_failed++;
        }
        if (!js_check_ended(e.s, model, JS_LIST_N, &rq)) {
            js_print_query("list_ended() disagrees with the model", seed, &rq);
            n_failed++;
        }
    }
    if (smallest >= 0) {
        js_print_query("list() disagrees with the model; the smallest query",
                       seed, &worst);
        js_check_list(e.s, sorted, JS_LIST_N, &worst, true);
    }
    CU_ASSERT_EQUAL(n_failed, 0);

    /* Refused queries. */
    kiln_error err = {0};
    jobstore_process *ps = NULL;
    size_t n = 0;
    int svc = 1;
    jobstore_query q = {&svc, 1, -1, 0, 0, 0, "", 0};
    CU_ASSERT_EQUAL(jobstore_list(e.s, &q, &ps, &n, &err), KILN_EINVAL);
    q.limit = 1001;
    CU_ASSERT_EQUAL(jobstore_list(e.s, &q, &ps, &n, &err), KILN_EINVAL);
    q.limit = 10;
    q.n_service_ids = 0;
    CU_ASSERT_EQUAL(jobstore_list(e.s, &q, &ps, &n, &err), KILN_EINVAL);
    q.n_service_ids = 1;
    q.status = JOBSTORE_N_STATUS;
    CU_ASSERT_EQUAL(jobstore_list(e.s, &q, &ps, &n, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NULL(ps);
    jobstore_ended_process *ended = NULL;
    CU_ASSERT_EQUAL(jobstore_list_ended(e.s, &svc, 0, 0, 1, &ended, &n, &err),
                    KILN_EINVAL);
    js_teardown(&e);
}

/* Rate limits counted in the store (jobstore_rate): on PostgreSQL, a
 * bucket per key shared by every handle (host); on SQLite, not counted
 * (KILN_EABI: the host counts in memory). */
static void
test_js_rate(void)
{
    js_env e;
    if (js_setup(&e) != 0) {
        return;
    }
    kiln_error err = {0};
    int wait = -1;
    if (!js_pg()) {
        CU_ASSERT_EQUAL(jobstore_rate(e.s, "tk", 1, 5, 1, &wait, &err),
                        KILN_EABI);
        js_teardown(&e);
        return;
    }
    jobstore *other = NULL; /* a second host */
    CU_ASSERT_EQUAL_FATAL(jobstore_open(js_driver, e.target, &other, &err),
                          KILN_OK);
    /* A slow refill (one token in 1000 s): the burst is what a client
     * gets, counted across both handles, whichever it calls. */
    for (int burst = 1; burst <= 7; burst += 3) {
        char key[16];
        snprintf(key, sizeof key, "tburst%d", burst);
        /* Looking does not spend, and a new bucket is full. */
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(
                jobstore_rate(e.s, key, 0.001, burst, 0, &wait, &err), KILN_OK);
            CU_ASSERT_EQUAL(wait, 0);
        }
        int allowed = 0;
        for (int i = 0; i < burst + 4; i++) {
            jobstore *h = i % 2 ? other : e.s;
            CU_ASSERT_EQUAL_FATAL(
                jobstore_rate(h, key, 0.001, burst, 1, &wait, &err), KILN_OK);
            CU_ASSERT_TRUE(wait >= 0 && wait <= 1000);
            allowed += wait == 0;
        }
        CU_ASSERT_EQUAL(allowed, burst);
        CU_ASSERT_EQUAL(jobstore_rate(other, key, 0.001, burst, 0, &wait, &err),
                        KILN_OK);
        CU_ASSERT_TRUE(wait > 0);
    }
    /* Another key is untouched by those. */
    CU_ASSERT_EQUAL(
        jobstore_rate(other, "tburst-other", 0.001, 1, 1, &wait, &err),
        KILN_OK);
    CU_ASSERT_EQUAL(wait, 0);
    /* A fast refill: 20 per second, burst 1: spent, then 1 s to wait
     * (whole seconds, rounded up), then back within 100 ms. */
    CU_ASSERT_EQUAL(jobstore_rate(e.s, "tfast", 20, 1, 1, &wait, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(wait, 0);
    CU_ASSERT_EQUAL(jobstore_rate(e.s, "tfast", 20, 1, 1, &wait, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(wait, 1);
    usleep(120 * 1000);
    CU_ASSERT_EQUAL(jobstore_rate(other, "tfast", 20, 1, 1, &wait, &err),
                    KILN_OK);
    CU_ASSERT_EQUAL(wait, 0);
    /* Bad arguments are refused before the database is asked. */
    CU_ASSERT_EQUAL(jobstore_rate(e.s, "k", 0, 1, 1, &wait, &err), KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_rate(e.s, "k", 1, 0.5, 1, &wait, &err),
                    KILN_EINVAL);
    CU_ASSERT_EQUAL(jobstore_rate(e.s, "k", 1, 1, 2, &wait, &err), KILN_EINVAL);
    jobstore_close(other);
    js_teardown(&e);
}

static int
js_suite_cleanup(void)
{
    js_rm_rf(js_base);
    js_driver = "sqlite";
    return 0;
}

int
test_jobstore_register(void)
{
    /* The contract, for every driver. */
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"ids, names and the postback schedule", test_js_new_id},
        {"create and get", test_js_create_get},
        {"idempotency keys per service", test_js_idempotency},
        {"claim order and not_before", test_js_claim_order},
        {"complete and requeue", test_js_complete_requeue},
        {"renew extends a lease, refused when not running",
         test_js_lease_renew},
        {"an expired lease is taken back, a live one not",
         test_js_lease_expiry},
        {"a lease taken back fences its old holder", test_js_fencing},
        {"retention prunes ended processes", test_js_prune},
        {"queued work wakes another handle", test_js_wait_work},
        {"recover after a restart", test_js_recover},
        {"retry 200/404/409", test_js_retry},
        {"dynamic processes", test_js_dynamic},
        {"postbacks persist their schedule", test_js_postbacks},
        {"counts for metrics", test_js_counts},
        {"two threads, one handle, claim once", test_js_concurrent_shared},
        {"two connections claim once", test_js_concurrent_connections},
        {"two connections take back expired leases once",
         test_js_concurrent_expired},
        {"SIGKILL loses no created process", test_js_durability},
        {"status changes reach the hook, postbacks stored with them",
         test_js_notify},
        {"notify_status and retry_postback round-trip, reach the hook and "
         "its postbacks",
         test_js_flags},
        {"postbacks keep their retry setting", test_js_postback_retry},
        {"rate limits are shared by the handles on a store", test_js_rate},
        {"cancel: at once, asked of a run, refused when ended, retried",
         test_js_cancel},
        {"a run asked to stop ends CANCELLED, never queued again",
         test_js_cancel_running},
        {"n_jobs and duration_ms round-trip", test_js_jobs_duration},
        {"a process's postbacks, oldest first", test_js_postbacks_of},
        {"list and ended agree with a model, page by page", test_js_list_model},
    };
    CU_pSuite s = CU_add_suite("jobstore", js_suite_init, js_suite_cleanup);
    if (s == NULL ||
        CU_add_test(s, "open, ping and refused files", test_js_open_errors) ==
            NULL ||
        CU_add_test(s, "a store without the postback columns is upgraded",
                    test_js_upgrade_sqlite) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
            return -1;
        }
    }
    js_pg_dsn = getenv("KILN_TEST_PG_DSN");
    if (js_pg_dsn == NULL || js_pg_dsn[0] == '\0') {
        printf(
            "skip jobstore-postgres: KILN_TEST_PG_DSN is not set (tests/run.sh "
            "starts a PostgreSQL server and sets it)\n");
        return 0;
    }
    s = CU_add_suite("jobstore-postgres", js_suite_init_pg, js_suite_cleanup);
    if (s == NULL ||
        CU_add_test(s, "open, ping, refusals and a server restart",
                    test_js_open_errors_pg) == NULL ||
        CU_add_test(s, "a schema version 1 database is upgraded",
                    test_js_upgrade_pg) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) {
            return -1;
        }
    }
    return 0;
}
