/*
 * The compiler's stages in order, one function for every caller: `kiln
 * compile`, the API's submission and the engine's execution all go
 * through dsl_run(), so what one of them checks or rewrites, the others
 * do too.
 *
 *   parse -> compile (the request alone: it is validated at submission)
 *         -> bind (once the source's size is known: every length resolved,
 *            every op's infer, the limits)
 *         -> optimize (the passes of the level, with what the source's
 *            header says about it).
 *
 * Each stage runs when its input is there: a graph already compiled
 * starts at bind; without a size, bind is skipped (the passes that need
 * sizes then say so); without a level, it stops before the passes.
 */
#include "dsl.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int
dsl_request_service(const dsl_node *root)
{
    return dsl_service_id_json(
        root != NULL && cJSON_IsObject(root->json)
            ? cJSON_GetObjectItemCaseSensitive(root->json, "service_id")
            : NULL);
}

/* Every op of the graph must have an implementation for the service's
 * pixel backend: a job that could not run is refused when submitted, at
 * the op's path, saying which backends have one. */
static int
dsl_check_backend(const registry *reg, const graph *g, const char *backend,
                  errlist *errs)
{
    int rc = KILN_OK;
    const reg_backend *be = registry_find_backend(reg, backend);
    for (size_t j = 0; be != NULL && j < g->n_jobs; j++) {
        /* An output format the backend does not write. */
        const graph_node *store = &g->nodes[g->job_store[j]];
        const graph_node *n = &g->nodes[store->input];
        const char *f = graph_format_name(n->format);
        bool writes = false;
        for (const char *const *w = be->be.write_formats; *w && !writes; w++) {
            writes = strcmp(*w, f) == 0;
        }
        if (!writes) {
            char have[160] = "";
            for (const char *const *w = be->be.write_formats; *w; w++) {
                size_t l = strlen(have);
                snprintf(have + l, sizeof have - l, "%s%s", l > 0 ? ", " : "",
                         *w);
            }
            kiln_error e;
            err_set_path(&e, KILN_EINVAL, n->path,
                         "\"%s\" is %s, which this service's pixel backend "
                         "\"%s\" does not write (it writes %s)",
                         store->destination, f, backend, have);
            errlist_add(errs, &e, NULL);
            rc = KILN_EINVAL;
        }
    }
    for (size_t i = 0; backend != NULL && i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->kind != GRAPH_OP || n->dead ||
            registry_impl_for(reg, n->op, backend) != NULL) {
            continue;
        }
        char have[256] = "";
        for (size_t k = 0; k < n->op->n_impls; k++) {
            size_t l = strlen(have);
            snprintf(have + l, sizeof have - l, "%s\"%s\"", k ? ", " : "",
                     n->op->impls[k].impl.backend);
        }
        kiln_error e;
        err_set_path(&e, KILN_EINVAL, n->path,
                     "op \"%s\" has no implementation for this service's "
                     "pixel backend \"%s\" (%s%s)",
                     n->op->op.name, backend,
                     have[0] ? "implemented for "
                             : "no loaded plugin "
                               "implements it",
                     have);
        errlist_add(errs, &e, NULL);
        rc = KILN_EINVAL;
    }
    return rc;
}

/* parse -> compile into a new arena (*a, which the caller frees even on
 * failure). */
static int
dsl_run_front(const dsl_stages *st, arena **a, graph **g, errlist *errs)
{
    *a = arena_new();
    if (*a == NULL) {
        return KILN_ENOMEM;
    }
    dsl_node *root = NULL;
    kiln_error err;
    err_clear(&err);
    int rc = dsl_parse(*a, st->text, st->len, &root, &err);
    if (rc != KILN_OK) {
        errlist_add(errs, &err, NULL);
        return rc;
    }
    if (st->admit != NULL &&
        !st->admit(st->admit_user, dsl_request_service(root))) {
        dsl_release(root);
        return KILN_EPERM;
    }
    /* A request may lower its service's limits, never raise them: it is
     * compiled against the limits of the service it names, so one above
     * them is refused at submission with its path. */
    kiln_limits lim = *st->limits;
    if (st->limits_for != NULL) {
        lim = st->limits_for(st->user, dsl_request_service(root));
    }
    rc = dsl_compile(st->reg, &lim, *a, root, g, errs);
    dsl_release(root);
    if (rc == KILN_OK && st->backend_for != NULL) {
        rc = dsl_check_backend(
            st->reg, *g, st->backend_for(st->user, (*g)->req.service_id), errs);
    }
    return rc;
}

int
dsl_run(const dsl_stages *st, arena **a, graph **g, errlist *errs)
{
    int rc = KILN_OK;
    if (*g == NULL) {
        rc = dsl_run_front(st, a, g, errs);
        if (rc != KILN_OK) {
            return rc;
        }
    }
    if (st->shape != NULL) {
        rc = bind_graph(*g, st->shape,
                        st->bind_limits != NULL ? st->bind_limits : st->limits,
                        errs);
        if (rc != KILN_OK) {
            return rc;
        }
    }
    if (st->level < 0) {
        return KILN_OK;
    }
    graph *gr = *g;
    /* On a backend that does not run whole graphs itself (one run
     * through the SDK), only the passes whose result any backend runs
     * (optimize.c). Without a backend or a registry to ask: all. */
    const char *backend = st->backend;
    if (backend == NULL && st->backend_for != NULL) {
        backend = st->backend_for(st->user, gr->req.service_id);
    }
    const reg_backend *be = backend != NULL && st->reg != NULL
                                ? registry_find_backend(st->reg, backend)
                                : NULL;
    gr->native = be != NULL && !be->runs_graphs;
    if (st->facts != NULL) {
        gr->source_format = st->facts->format;
        gr->format_guessed = st->facts->format_guessed;
        gr->source_plain = st->facts->plain;
        gr->source_oriented = st->facts->oriented;
    }
    if (st->before_passes != NULL) {
        st->before_passes(gr, st->level, st->user);
    }
    kiln_error err;
    err_clear(&err);
    rc = opt_run(gr, st->level, st->observe, st->user, &err);
    if (rc != KILN_OK) {
        errlist_add(errs, &err, NULL);
    }
    return rc;
}
