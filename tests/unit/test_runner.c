/*
 * Process runner tests: a real engine (the built plugins, local storage in
 * a temporary root) and a real SQLite job store. Submission validates and
 * stores; claimed processes run and store their outcome; wait_retry_delay
 * re-queues a missing source at most RUNNER_MAX_REQUEUES times;
 * fail_on_conversion_error decides FINISHED or FAILED; interrupted
 * processes are re-queued and finish; worker threads drain a queue.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../server/runner.h"
#include "unit.h"

int test_runner_register(void);

static char tr_dir[] = "/tmp/kiln-runner-XXXXXX";
static char tr_root[600];
static kiln_engine *tr_engine;
static jobstore *tr_store;
static kiln_server *tr_server;

static int
tr_setup(void)
{
    if (mkdtemp(tr_dir) == NULL) {
        return 1;
    }
    snprintf(tr_root, sizeof tr_root, "%s/storage", tr_dir);
    char path[700];
    snprintf(path, sizeof path, "%s/in", tr_root);
    if (mkdir(tr_root, 0755) != 0 || mkdir(path, 0755) != 0) {
        return 1;
    }
    VipsImage *im = NULL;
    snprintf(path, sizeof path, "%s/in/a.png", tr_root);
    if (vips_black(&im, 40, 30, "bands", 3, NULL) != 0 ||
        vips_image_write_to_file(im, path, NULL) != 0) {
        return 1;
    }
    g_object_unref(im);
    kiln_error err;
    err_clear(&err);
    kiln_config *c = unit_config();
    if (c == NULL) {
        return 1;
    }
    /* And the test plugins' "test-sleep" op, for the lease test. */
    const char *tdir = getenv("KILN_TEST_PLUGIN_DIR");
    char **dirs = realloc(c->plugin_dirs, 2 * sizeof *dirs);
    char **en = realloc(c->enable, (c->n_enable + 1) * sizeof *en);
    if (dirs == NULL || en == NULL) {
        return 1;
    }
    c->plugin_dirs = dirs;
    c->plugin_dirs[c->n_plugin_dirs++] =
        strdup(tdir ? tdir : "build/tests/plugins");
    c->enable = en;
    c->enable[c->n_enable++] = strdup("test-stall");
    if (config_set_storage_root(c, tr_root, &err) != KILN_OK ||
        engine_new_take(c, true, &tr_engine, &err) != KILN_OK) {
        fprintf(stderr, "runner setup: %s\n", err.message);
        return 1;
    }
    snprintf(path, sizeof path, "%s/kiln.db", tr_dir);
    if (jobstore_open("sqlite", path, &tr_store, &err) != KILN_OK ||
        server_new(tr_engine, tr_store, &tr_server, &err) != KILN_OK) {
        fprintf(stderr, "runner setup: %s\n", err.message);
        return 1;
    }
    return 0;
}

static int
tr_teardown(void)
{
    server_free(tr_server);
    jobstore_close(tr_store);
    engine_free(tr_engine);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tr_dir);
    return system(cmd) == 0 ? 0 : 1;
}

static bool
tr_exists(const char *rel)
{
    char path[800];
    snprintf(path, sizeof path, "%s%s", tr_root, rel);
    return access(path, F_OK) == 0;
}

/* Submits `body`; returns the id in id (empty on failure). */
static int
tr_submit(const char *body, char id[JOBSTORE_ID_LEN + 1], errlist *errs)
{
    kiln_error err;
    err_clear(&err);
    id[0] = '\0';
    int service = -1;
    return server_admit(tr_server, body, strlen(body), NULL, NULL, NULL,
                        &service, id, errs, &err);
}

/* Claims the next ready process and runs it; false when none was ready. */
static bool
tr_run_next(void)
{
    jobstore_process p;
    memset(&p, 0, sizeof p);
    kiln_error err;
    if (jobstore_claim(tr_store, (int64_t)time(NULL), 60, &p, &err) !=
        KILN_OK) {
        return false;
    }
    runner_run_one(tr_server, &p);
    jobstore_process_clear(&p);
    return true;
}

static jobstore_process
tr_get(const char *id)
{
    jobstore_process p;
    memset(&p, 0, sizeof p);
    kiln_error err;
    CU_ASSERT_EQUAL(jobstore_get(tr_store, id, 1, &p, &err), KILN_OK);
    return p;
}

static void
test_submit_validates(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    int rc = tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", "
                       "\"jobs\": [{\"destination\": \"/o.bmp\"}]}",
                       id, &errs);
    CU_ASSERT_EQUAL(rc, KILN_EINVAL);
    CU_ASSERT_EQUAL_FATAL(errs.n, 1);
    CU_ASSERT_STRING_EQUAL(errs.items[0].e.path, "jobs[0].destination");
    errlist_free(&errs);
    rc = tr_submit("{\"service_id\": 9, \"source\": \"/in/a.png\", "
                   "\"jobs\": [{\"destination\": \"/o.png\"}]}",
                   id, &errs);
    CU_ASSERT_EQUAL(rc, KILN_EINVAL);
    CU_ASSERT_EQUAL_FATAL(errs.n, 1);
    CU_ASSERT_STRING_EQUAL(errs.items[0].e.message,
                           "no service 9 in this deployment");
    errlist_free(&errs);
}

/* The one rule for a service id (dsl_service_id_json): a whole
 * number, or a string of its digits, from 0 to INT_MAX. */
static void
test_service_id_forms(void)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"1", 1},
        {"1.0", 1},
        {"0", 0},
        {"\"1\"", 1},
        {"\"01\"", 1},
        {"\"2147483647\"", 2147483647},
        {"2147483647", 2147483647},
        {"\"2147483648\"", -1},
        {"2147483648", -1},
        {"\"4294967297\"", -1},
        {"1e300", -1},
        {"1.5", -1},
        {"-1", -1},
        {"\"1.0\"", -1},
        {"\"-0\"", -1},
        {"\" 1\"", -1},
        {"\"+1\"", -1},
        {"\"1e0\"", -1},
        {"\"\"", -1},
        {"true", -1},
        {"null", -1},
        {"[1]", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        int got = dsl_service_id_json(v);
        if (got != cases[i].want) {
            fprintf(stderr, "service id %s: got %d, want %d\n", cases[i].json,
                    got, cases[i].want);
        }
        CU_ASSERT_EQUAL(got, cases[i].want);
        cJSON_Delete(v);
    }
    CU_ASSERT_EQUAL(dsl_service_id_json(NULL), -1);
    CU_ASSERT_EQUAL(dsl_service_id_text("7"), 7);
    CU_ASSERT_EQUAL(dsl_service_id_text("7 "), -1);
}

/* What admission's gate was asked (the API's token check). */
typedef struct tr_gate {
    int asked[4];
    int n_asked;
    int allow; /* the one service it lets through (and -1: none read) */
} tr_gate;

static bool
tr_gate_fn(void *user, int service_id)
{
    tr_gate *g = user;
    if (g->n_asked < 4) {
        g->asked[g->n_asked] = service_id;
    }
    g->n_asked++;
    /* As the API's gate: no id read, the compiler says what is wrong. */
    return service_id < 0 || service_id == g->allow;
}

static int
tr_admit(const char *service_json, tr_gate *g, errlist *errs)
{
    char body[300], id[JOBSTORE_ID_LEN + 1];
    snprintf(body, sizeof body,
             "{\"service_id\": %s, \"source\": \"/in/a.png\", \"jobs\": "
             "[{\"destination\": \"/out/gate.png\"}]}",
             service_json);
    kiln_error err;
    err_clear(&err);
    int service = -1;
    return server_admit(tr_server, body, strlen(body), NULL, tr_gate_fn, g,
                        &service, id, errs, &err);
}

/* A token of another service could store a process for service 1 by
 * writing its id "1.0" or "-0": the compiler read those, the gate saw
 * no id, and nothing else asked. Every form the compiler reads is now
 * either the rule's (and the gate is asked) or a 400 at service_id. */
static void
test_admit_gate_sees_every_form(void)
{
    static const char *const refused[] = {"\"1.0\"", "\"-0\"", "\"1.00\""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        tr_gate g = {.allow = 2};
        errlist errs = {0};
        CU_ASSERT_EQUAL(tr_admit(refused[i], &g, &errs), KILN_EINVAL);
        CU_ASSERT_EQUAL_FATAL(errs.n, 1);
        CU_ASSERT_STRING_EQUAL(errs.items[0].e.path, "service_id");
        CU_ASSERT_PTR_NOT_NULL(
            strstr(errs.items[0].e.message, DSL_SERVICE_ID_EXPECTED));
        errlist_free(&errs);
    }
    /* Forms of the rule: the gate is asked about service 1, and says no. */
    static const char *const forms[] = {"1", "\"1\"", "\"0000000001\"", "1.0"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        tr_gate g = {.allow = 2};
        errlist errs = {0};
        CU_ASSERT_EQUAL(tr_admit(forms[i], &g, &errs), KILN_EPERM);
        CU_ASSERT_TRUE(g.n_asked >= 1);
        CU_ASSERT_EQUAL(g.asked[g.n_asked - 1], 1);
        CU_ASSERT_EQUAL(errs.n, 0);
        errlist_free(&errs);
    }
    /* The compiler's own complaint is not repeated. */
    tr_gate g = {.allow = 1};
    errlist errs = {0};
    CU_ASSERT_EQUAL(tr_admit("\"1.5\"", &g, &errs), KILN_EINVAL);
    CU_ASSERT_EQUAL(errs.n, 1);
    errlist_free(&errs);
}

static void
test_submit_and_run(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", \"jobs\": "
                  "[{\"destination\": \"/out/r1.png\", \"transformations\": "
                  "[{\"type\": \"resize\", \"width\": 20}]}]}",
                  id, &errs),
        KILN_OK);
    CU_ASSERT_EQUAL(strlen(id), JOBSTORE_ID_LEN);
    jobstore_process p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_QUEUED);
    cJSON *s = server_status_json(&p);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s, "status")->valuestring,
                           "QUEUED");
    cJSON *j0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "jobs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j0, "destination")->valuestring,
                           "/out/r1.png");
    cJSON_Delete(s);
    jobstore_process_clear(&p);

    CU_ASSERT_TRUE(tr_run_next());
    p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_PTR_NULL(p.error);
    s = server_status_json(&p);
    j0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "jobs"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s, "status")->valuestring,
                           "FINISHED");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j0, "width")->valueint, 20);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j0, "height")->valueint, 15);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s, "process_id")->valuestring,
                           id);
    CU_ASSERT_EQUAL(strlen(cJSON_GetObjectItem(s, "updated_at")->valuestring),
                    19);
    cJSON_Delete(s);
    jobstore_process_clear(&p);
    CU_ASSERT_TRUE(tr_exists("/out/r1.png"));
}

/* POST /retry {"service_id": 1, "process_ids": [id]} through the API;
 * the one entry's description into desc. */
static int
tr_retry_entry(const char *id, char *desc, size_t size)
{
    char auth[300], body[200];
    snprintf(auth, sizeof auth, "Bearer %s",
             tr_engine->config->services[0].tokens[0]);
    snprintf(body, sizeof body,
             "{\"service_id\": 1, \"process_ids\": [\"%s\"]}", id);
    kiln_call call = {.method = "POST",
                      .path = "/retry",
                      .authorization = auth,
                      .body = body,
                      .body_len = strlen(body)};
    kiln_reply reply;
    server_call(tr_server, &call, NULL, &reply);
    cJSON *o = cJSON_Parse(reply.body != NULL ? reply.body : "");
    cJSON *e = cJSON_GetArrayItem(o, 0);
    const cJSON *d = cJSON_GetObjectItem(e, "description");
    snprintf(desc, size, "%s", cJSON_IsString(d) ? d->valuestring : "");
    const cJSON *st = cJSON_GetObjectItem(e, "status");
    int status = reply.status != 200  ? reply.status
                 : cJSON_IsNumber(st) ? st->valueint
                                      : -1;
    cJSON_Delete(o);
    cJSON_free(reply.body);
    return status;
}

/* POST /retry of a process that has not ended says why: queued (it has
 * not run), INCOMPLETE, or running. It said "still running" for all. */
static void
test_retry_says_why_not(void)
{
    char id[JOBSTORE_ID_LEN + 1], inc[JOBSTORE_ID_LEN + 1], desc[200];
    errlist errs = {0};
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", \"jobs\": "
                  "[{\"destination\": \"/out/why.png\"}]}",
                  id, &errs),
        KILN_OK);
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", "
                  "\"process\": false}",
                  inc, &errs),
        KILN_OK);
    CU_ASSERT_EQUAL(tr_retry_entry(id, desc, sizeof desc), 409);
    CU_ASSERT_STRING_EQUAL(desc, "Process is queued: it has not run yet");
    CU_ASSERT_EQUAL(tr_retry_entry(inc, desc, sizeof desc), 409);
    CU_ASSERT_STRING_EQUAL(desc,
                           "Process is INCOMPLETE: it has not been queued yet");
    jobstore_process p;
    memset(&p, 0, sizeof p);
    kiln_error err;
    CU_ASSERT_EQUAL_FATAL(
        jobstore_claim(tr_store, (int64_t)time(NULL), 60, &p, &err), KILN_OK);
    CU_ASSERT_STRING_EQUAL(p.id, id);
    CU_ASSERT_EQUAL(tr_retry_entry(id, desc, sizeof desc), 409);
    CU_ASSERT_STRING_EQUAL(desc, "Process is still running");
    runner_run_one(tr_server, &p);
    jobstore_process_clear(&p);
    CU_ASSERT_EQUAL(tr_retry_entry(id, desc, sizeof desc), 200);
    CU_ASSERT_STRING_EQUAL(desc, "Reprocessing process, attempt: 2");
    CU_ASSERT_TRUE(tr_run_next());
    errlist_free(&errs);
}

static void
test_incomplete_not_run(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    CU_ASSERT_EQUAL_FATAL(tr_submit("{\"service_id\": 1, \"source\": "
                                    "\"/in/a.png\", \"process\": false}",
                                    id, &errs),
                          KILN_OK);
    jobstore_process p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_INCOMPLETE);
    jobstore_process_clear(&p);
    CU_ASSERT_FALSE(tr_run_next());
}

static void
test_wait_retry_delay(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    /* Delay 0: re-queued at once, RUNNER_MAX_REQUEUES times, then FAILED. */
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/late.png\", "
                  "\"wait_retry_delay\": 0, \"jobs\": [{\"destination\": "
                  "\"/out/late.png\"}]}",
                  id, &errs),
        KILN_OK);
    for (int i = 0; i < RUNNER_MAX_REQUEUES; i++) {
        CU_ASSERT_TRUE(tr_run_next());
        jobstore_process p = tr_get(id);
        CU_ASSERT_EQUAL(p.status, JOBSTORE_QUEUED);
        CU_ASSERT_EQUAL(p.n_requeues, i + 1);
        CU_ASSERT_PTR_NOT_NULL(p.error);
        if (p.error != NULL) {
            CU_ASSERT_PTR_NOT_NULL(strstr(p.error, "not found"));
        }
        jobstore_process_clear(&p);
    }
    CU_ASSERT_TRUE(tr_run_next());
    jobstore_process p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FAILED);
    jobstore_process_clear(&p);

    /* Delay 1: not claimable at once; the source appears, it finishes. */
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/later.png\", "
                  "\"wait_retry_delay\": 1, \"jobs\": [{\"destination\": "
                  "\"/out/later.png\"}]}",
                  id, &errs),
        KILN_OK);
    CU_ASSERT_TRUE(tr_run_next());
    CU_ASSERT_FALSE(tr_run_next()); /* not before a second from now */
    char src[800], dst[800];
    snprintf(src, sizeof src, "%s/in/a.png", tr_root);
    snprintf(dst, sizeof dst, "%s/in/later.png", tr_root);
    CU_ASSERT_EQUAL(link(src, dst), 0);
    sleep(2);
    CU_ASSERT_TRUE(tr_run_next());
    p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(p.attempt, 1);
    CU_ASSERT_EQUAL(p.n_requeues, 1);
    jobstore_process_clear(&p);
    CU_ASSERT_TRUE(tr_exists("/out/later.png"));
}

static void
test_fail_on_conversion_error(void)
{
    static const char *const fmt =
        "{\"service_id\": 1, \"source\": \"/in/a.png\", "
        "\"fail_on_conversion_error\": %s, \"jobs\": ["
        "{\"destination\": \"/out/%s-good.png\"},"
        "{\"destination\": \"/out/%s-bad.png\", \"transformations\": "
        "[{\"type\": \"watermark\", \"source\": \"/none.png\", "
        "\"gravity\": \"center\", \"width\": 5}]}]}";
    char body[600], id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    snprintf(body, sizeof body, fmt, "true", "t", "t");
    CU_ASSERT_EQUAL_FATAL(tr_submit(body, id, &errs), KILN_OK);
    CU_ASSERT_TRUE(tr_run_next());
    jobstore_process p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FAILED);
    jobstore_process_clear(&p);
    CU_ASSERT_FALSE(tr_exists("/out/t-good.png"));

    snprintf(body, sizeof body, fmt, "false", "f", "f");
    CU_ASSERT_EQUAL_FATAL(tr_submit(body, id, &errs), KILN_OK);
    CU_ASSERT_TRUE(tr_run_next());
    p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    cJSON *s = server_status_json(&p);
    cJSON *jobs = cJSON_GetObjectItem(s, "jobs");
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "status")->valuestring,
        "FINISHED");
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 1), "status")->valuestring,
        "FAILED");
    cJSON_Delete(s);
    jobstore_process_clear(&p);
    CU_ASSERT_TRUE(tr_exists("/out/f-good.png"));
    CU_ASSERT_FALSE(tr_exists("/out/f-bad.png"));
}

static void
test_recover_and_workers(void)
{
    char ids[8][JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    for (int i = 0; i < 8; i++) {
        char body[300];
        snprintf(body, sizeof body,
                 "{\"service_id\": 1, \"source\": \"/in/a.png\", \"jobs\": "
                 "[{\"destination\": \"/out/w%d.jpg\"}]}",
                 i);
        CU_ASSERT_EQUAL_FATAL(tr_submit(body, ids[i], &errs), KILN_OK);
    }
    /* An interrupted run: claimed (PROCESSING) but never finished. */
    jobstore_process p;
    memset(&p, 0, sizeof p);
    kiln_error err;
    CU_ASSERT_EQUAL_FATAL(
        jobstore_claim(tr_store, (int64_t)time(NULL), 60, &p, &err), KILN_OK);
    jobstore_process_clear(&p);
    runner *r = NULL;
    CU_ASSERT_EQUAL_FATAL(runner_start(tr_server, 2, 0, &r, &err), KILN_OK);
    runner_wake(r);
    int done = 0;
    for (int t = 0; t < 300 && done < 8; t++) {
        usleep(100 * 1000);
        done = 0;
        for (int i = 0; i < 8; i++) {
            jobstore_process q = tr_get(ids[i]);
            done += q.status == JOBSTORE_FINISHED;
            jobstore_process_clear(&q);
        }
    }
    runner_stop(r);
    CU_ASSERT_EQUAL(done, 8);
    for (int i = 0; i < 8; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "/out/w%d.jpg", i);
        CU_ASSERT_TRUE(tr_exists(rel));
    }
}

/* A run longer than its lease keeps it: the keeper renews it, so the
 * second worker never takes the process back (which would count a
 * re-queue and run it twice). The chain's "test-sleep" op (a test plugin)
 * takes 3 s on any machine, three times the 1 s lease. */
static void
test_lease_renewed(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", "
                  "\"jobs\": [{\"destination\": \"/out/long.jpg\", "
                  "\"transformations\": [{\"type\": \"test-sleep\"}]}]}",
                  id, &errs),
        KILN_OK);
    errlist_free(&errs);
    runner *r = NULL;
    kiln_error err;
    CU_ASSERT_EQUAL_FATAL(runner_start(tr_server, 2, 1, &r, &err), KILN_OK);
    runner_wake(r);
    jobstore_process p;
    memset(&p, 0, sizeof p);
    for (int t = 0; t < 600; t++) {
        usleep(100 * 1000);
        p = tr_get(id);
        if (p.status == JOBSTORE_FINISHED || p.status == JOBSTORE_FAILED) {
            break;
        }
        jobstore_process_clear(&p);
    }
    runner_stop(r);
    if (p.status != JOBSTORE_FINISHED) {
        fprintf(stderr, "lease test: status %s, error %s\n",
                jobstore_status_name(p.status), p.error ? p.error : "none");
    }
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(p.n_requeues, 0);
    CU_ASSERT_EQUAL(p.n_interrupts, 0);
    jobstore_process_clear(&p);
    CU_ASSERT_TRUE(tr_exists("/out/long.jpg"));
}

/* A process whose runs keep ending with no outcome (the server stopped,
 * crashed, or lost the lease while running it) is FAILED once it has been
 * interrupted max_interruptions times, with a message saying so, and is
 * not run; each kind of interruption counts; POST /retry starts the
 * count again. */
static void
test_interrupted_too_often(void)
{
    char id[JOBSTORE_ID_LEN + 1];
    errlist errs = {0};
    CU_ASSERT_EQUAL_FATAL(
        tr_submit("{\"service_id\": 1, \"source\": \"/in/a.png\", "
                  "\"jobs\": [{\"destination\": \"/out/pill.png\"}]}",
                  id, &errs),
        KILN_OK);
    errlist_free(&errs);
    int max = tr_engine->config->max_interruptions;
    CU_ASSERT_EQUAL_FATAL(max, 3);
    kiln_error err;
    int64_t now = (int64_t)time(NULL);
    for (int k = 0; k < max; k++) {
        jobstore_process p;
        CU_ASSERT_EQUAL_FATAL(jobstore_claim(tr_store, now, 60, &p, &err),
                              KILN_OK);
        CU_ASSERT_STRING_EQUAL(p.id, id);
        CU_ASSERT_EQUAL(p.n_interrupts, k);
        jobstore_process_clear(&p);
        if (k == 0) { /* a shutdown that interrupted the run */
            CU_ASSERT_EQUAL(
                jobstore_interrupt(tr_store, id, 0, "shutdown", &err), KILN_OK);
        } else if (k == 1) { /* the host crashed: the next start recovers */
            int n = 0;
            CU_ASSERT_EQUAL(jobstore_recover(tr_store, &n, &err), KILN_OK);
            CU_ASSERT_EQUAL(n, 1);
        } else { /* the host died and another took the lease back */
            now += 120;
        }
    }
    jobstore_process p;
    CU_ASSERT_EQUAL_FATAL(jobstore_claim(tr_store, now, 60, &p, &err), KILN_OK);
    CU_ASSERT_EQUAL(p.n_interrupts, max);
    runner_run_one(tr_server, &p);
    jobstore_process_clear(&p);
    p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.error);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.error, "interrupted 3 times"));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.error, "not run again"));
    jobstore_process_clear(&p);
    CU_ASSERT_FALSE(tr_exists("/out/pill.png"));
    int attempt = 0;
    CU_ASSERT_EQUAL(jobstore_retry(tr_store, id, 1, &attempt, NULL, &err),
                    KILN_OK);
    CU_ASSERT_TRUE(tr_run_next());
    p = tr_get(id);
    CU_ASSERT_EQUAL(p.status, JOBSTORE_FINISHED);
    CU_ASSERT_EQUAL(p.n_interrupts, 0);
    jobstore_process_clear(&p);
    CU_ASSERT_TRUE(tr_exists("/out/pill.png"));
}

/* A job store whose every read and write fails, as a database on a
 * dying disk does: the API must say 503 and name the store, never 404
 * (a store that fails is not a process that is missing). */
static int
tr_broken_open(const char *target, jobstore **out, kiln_error *err)
{
    (void)target;
    (void)err;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? KILN_OK : KILN_ENOMEM;
}

static void
tr_broken_close(jobstore *s)
{
    free(s);
}

static int
tr_broken_ping(jobstore *s, kiln_error *err)
{
    (void)s;
    return err_set(err, KILN_EIO, "job store: health check: disk I/O error");
}

static int
tr_broken_get(jobstore *s, const char *id, int service_id,
              jobstore_process *out, kiln_error *err)
{
    (void)s;
    (void)id;
    (void)service_id;
    (void)out;
    return err_set(err, KILN_EIO, "job store: read process: disk I/O error");
}

static void
test_store_failure_is_503(void)
{
    static const jobstore_driver broken = {
        .name = "broken",
        .open = tr_broken_open,
        .close = tr_broken_close,
        .ping = tr_broken_ping,
        .get = tr_broken_get,
    };
    jobstore *js = NULL;
    kiln_error err;
    CU_ASSERT_EQUAL_FATAL(jobstore_open_driver(&broken, "x", &js, &err),
                          KILN_OK);
    /* A second server on the same engine, over the broken store: the
     * engine's hook is put back afterwards. */
    engine_serve_fn hook = tr_engine->serve;
    void *hook_user = tr_engine->serve_user;
    kiln_server *srv = NULL;
    CU_ASSERT_EQUAL_FATAL(server_new(tr_engine, js, &srv, &err), KILN_OK);
    char auth[300];
    snprintf(auth, sizeof auth, "Bearer %s",
             tr_engine->config->services[0].tokens[0]);
    const char *paths[] = {"/status/AAAAAAAAAAAAAAAAAAAAA", "/health"};
    for (int i = 0; i < 2; i++) {
        kiln_call call = {
            .method = "GET", .path = paths[i], .authorization = auth};
        kiln_reply reply;
        server_call(srv, &call, NULL, &reply);
        CU_ASSERT_EQUAL(reply.status, 503);
        CU_ASSERT_PTR_NOT_NULL(reply.body);
        if (reply.body != NULL) {
            CU_ASSERT_PTR_NOT_NULL(strstr(reply.body, "disk I/O error"));
            CU_ASSERT_PTR_NOT_NULL(strstr(reply.body, "job store"));
        }
        cJSON_free(reply.body);
    }
    server_free(srv);
    tr_engine->serve = hook;
    tr_engine->serve_user = hook_user;
    jobstore_close(js);
}

int
test_runner_register(void)
{
    CU_pSuite s = CU_add_suite("runner", tr_setup, tr_teardown);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "submit validates", test_submit_validates);
    CU_add_test(s, "service id forms", test_service_id_forms);
    CU_add_test(s, "admission gate sees every service id form",
                test_admit_gate_sees_every_form);
    CU_add_test(s, "submit and run", test_submit_and_run);
    CU_add_test(s, "POST /retry says why a process cannot run again",
                test_retry_says_why_not);
    CU_add_test(s, "INCOMPLETE is not run", test_incomplete_not_run);
    CU_add_test(s, "wait_retry_delay", test_wait_retry_delay);
    CU_add_test(s, "fail_on_conversion_error", test_fail_on_conversion_error);
    CU_add_test(s, "recover, worker threads", test_recover_and_workers);
    CU_add_test(s, "a long run keeps its lease", test_lease_renewed);
    CU_add_test(s, "interrupted too often: FAILED", test_interrupted_too_often);
    CU_add_test(s, "a failing job store is 503", test_store_failure_is_503);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
