/*
 * The status body of a process (api.md, GET /status): built here only,
 * from what the job store keeps, for GET /status, PATCH /request/{id},
 * every postback and `kiln run`'s output. A process not run yet lists its
 * destinations with its own status.
 */
#include "server.h"

#include <time.h>

static void
status_time(cJSON *o, const char *key, int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    cJSON_AddStringToObject(o, key, buf);
}

cJSON *
server_status_json(const jobstore_process *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", jobstore_status_name(p->status));
    status_time(o, "updated_at", p->updated_at);
    cJSON_AddStringToObject(o, "process_id", p->id);
    status_time(o, "created_at", p->created_at);
    cJSON_AddNumberToObject(o, "attempt", p->attempt);
    cJSON *jobs = p->result != NULL ? cJSON_Parse(p->result) : NULL;
    if (jobs == NULL) {
        /* Not run yet (or re-queued): list the destinations with the
         * process's own status. */
        jobs = cJSON_CreateArray();
        cJSON *req = cJSON_Parse(p->request);
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(req, "jobs");
        const cJSON *j;
        cJSON_ArrayForEach(j, rj)
        {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "destination");
            cJSON *jo = cJSON_CreateObject();
            cJSON_AddStringToObject(jo, "destination",
                                    cJSON_IsString(d) ? d->valuestring : "");
            cJSON_AddStringToObject(jo, "status",
                                    jobstore_status_name(p->status));
            cJSON_AddNullToObject(jo, "error");
            cJSON_AddItemToObject(jo, "warnings", cJSON_CreateArray());
            cJSON_AddItemToArray(jobs, jo);
        }
        cJSON_Delete(req);
    }
    cJSON_AddItemToObject(o, "jobs", jobs);
    if (p->error != NULL) {
        cJSON_AddStringToObject(o, "error", p->error);
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    return o;
}
