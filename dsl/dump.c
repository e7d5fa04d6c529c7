/*
 * `kiln compile` output: the IR graph as text (one node per line), JSON
 * (for tools) or Graphviz DOT (to look at). Unbound graphs print lengths
 * symbolically ("50% of in.w"); bound ones print pixels and shapes.
 */
#include "dsl.h"

#include <string.h>

static void
dump_shape(const graph *g, const graph_node *n, char *buf, size_t size)
{
    if (!g->bound) {
        snprintf(buf, size, "?");
        return;
    }
    snprintf(buf, size, "%dx%dx%d", n->shape.width, n->shape.height,
             n->shape.bands);
}

/* True when a reduced node only makes a window (crop-first): it reads the
 * input it was bound to, at scale 1, so "reduced input" would mislead. */
static bool
dump_window_only(const graph *g, const graph_node *n)
{
    return n->reduction.has_window && n->reduction.xscale == 1 &&
           n->reduction.yscale == 1 && n->input >= 0 &&
           graph_same_shape(&n->reduction.bound, &g->nodes[n->input].shape);
}

/* The output a windowed node would make without its window. */
static bool
dump_unwindowed(const graph_node *n, kiln_shape *out)
{
    kiln_error e;
    return n->op->op.infer(n->params, &n->reduction.bound, out, &e) == KILN_OK;
}

/* "width=50% of in.w, height=-": the params that are set. */
static void
dump_params(const graph *g, const graph_node *n, char *buf, size_t size,
            bool json_quotes)
{
    const kiln_op *op = &n->op->op;
    buf[0] = '\0';
    size_t k = 0;
    for (size_t i = 0; i < op->n_params; i++) {
        const kiln_param_spec *s = &op->params[i];
        if (!params_is_set(s, n->params)) {
            continue;
        }
        char v[256];
        params_format_value(s, n->params, g->bound, v, sizeof v);
        size_t l = strlen(buf);
        if (json_quotes) {
            snprintf(buf + l, size - l, "%s%s=%s", k ? ", " : "", s->name, v);
        } else {
            snprintf(buf + l, size - l, "%s%s=%s", k ? " " : "", s->name, v);
        }
        k++;
    }
}

static void
dump_label(const graph *g, const graph_node *n, char *buf, size_t size)
{
    char params[1024];
    switch (n->kind) {
    case GRAPH_LOAD:
        snprintf(buf, size, "load %s", n->source ? n->source : "?");
        if (n->load_shrink > 1 || n->load_scale > 0) {
            size_t l = strlen(buf);
            if (n->load_shrink > 1) {
                snprintf(buf + l, size - l, " shrink=%d", n->load_shrink);
            } else {
                snprintf(buf + l, size - l, " scale=%.6g", n->load_scale);
            }
            l = strlen(buf);
            snprintf(buf + l, size - l, " (of %dx%d)", n->full.width,
                     n->full.height);
        }
        break;
    case GRAPH_OP:
        dump_params(g, n, params, sizeof params, false);
        snprintf(buf, size, "%s %s", n->op->op.name, params);
        if (n->note != NULL) {
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, "%s[%s]", params[0] ? " " : "",
                     n->note);
        }
        if (n->is_reduced && !dump_window_only(g, n)) {
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, " [reduced input, bound to %dx%d]",
                     n->reduction.bound.width, n->reduction.bound.height);
        }
        if (n->is_reduced && n->reduction.has_window) {
            const kiln_rect *w = &n->reduction.window;
            kiln_shape full;
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, " [window %dx%d%+d%+d", w->width,
                     w->height, w->x, w->y);
            l = strlen(buf);
            if (dump_unwindowed(n, &full)) {
                snprintf(buf + l, size - l, " of %dx%d]", full.width,
                         full.height);
            } else {
                snprintf(buf + l, size - l, "]");
            }
        }
        break;
    case GRAPH_ENCODE:
        snprintf(buf, size, "encode %s quality=%d",
                 graph_format_name(n->format), n->quality);
        if (n->background.is_set) {
            size_t l = strlen(buf);
            snprintf(buf + l, size - l, " background=#%02x%02x%02x",
                     n->background.r, n->background.g, n->background.b);
        }
        break;
    case GRAPH_STORE:
        snprintf(buf, size, "store %s", n->destination);
        break;
    }
}

static void
dump_text(const graph *g, FILE *out)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        char label[1400], shape[64], in[16];
        if (n->dead) {
            continue;
        }
        dump_label(g, n, label, sizeof label);
        dump_shape(g, n, shape, sizeof shape);
        if (n->input >= 0) {
            snprintf(in, sizeof in, "%%%d", n->input);
        } else {
            snprintf(in, sizeof in, "-");
        }
        fprintf(out, "%%%-3d = %-4s %-12s %s", n->id, in, shape, label);
        if (n->kind == GRAPH_OP) {
            fprintf(out, "  # %s", n->path);
        }
        fputc('\n', out);
    }
}

static cJSON *
dump_json_node(const graph *g, const graph_node *n)
{
    static const char *const kinds[] = {"load", "op", "encode", "store"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", n->id);
    cJSON_AddStringToObject(o, "kind", kinds[n->kind]);
    if (n->input >= 0) {
        cJSON_AddNumberToObject(o, "input", n->input);
    }
    if (n->job >= 0) {
        cJSON_AddNumberToObject(o, "job", n->job);
    }
    cJSON_AddStringToObject(o, "path", n->path ? n->path : "");
    switch (n->kind) {
    case GRAPH_LOAD:
        cJSON_AddStringToObject(o, "source", n->source ? n->source : "");
        if (n->load_shrink > 1) {
            cJSON_AddNumberToObject(o, "shrink", n->load_shrink);
        } else if (n->load_scale > 0) {
            cJSON_AddNumberToObject(o, "scale", n->load_scale);
        }
        break;
    case GRAPH_OP: {
        cJSON_AddStringToObject(o, "op", n->op->op.name);
        if (n->note != NULL) {
            cJSON_AddStringToObject(o, "note", n->note);
        }
        if (n->is_reduced) {
            cJSON *r = cJSON_AddObjectToObject(o, "reduced");
            cJSON_AddNumberToObject(r, "bound_width", n->reduction.bound.width);
            cJSON_AddNumberToObject(r, "bound_height",
                                    n->reduction.bound.height);
            cJSON_AddNumberToObject(r, "xscale", n->reduction.xscale);
            cJSON_AddNumberToObject(r, "yscale", n->reduction.yscale);
            if (n->reduction.has_window) {
                const kiln_rect *w = &n->reduction.window;
                cJSON *wo = cJSON_AddObjectToObject(r, "window");
                cJSON_AddNumberToObject(wo, "x", w->x);
                cJSON_AddNumberToObject(wo, "y", w->y);
                cJSON_AddNumberToObject(wo, "width", w->width);
                cJSON_AddNumberToObject(wo, "height", w->height);
            }
        }
        cJSON *p = cJSON_AddObjectToObject(o, "params");
        const kiln_op *op = &n->op->op;
        for (size_t i = 0; i < op->n_params; i++) {
            const kiln_param_spec *s = &op->params[i];
            if (!params_is_set(s, n->params)) {
                continue;
            }
            const void *f = (const char *)n->params + s->offset;
            if (s->kind == KILN_PARAM_NUMBER) {
                cJSON_AddNumberToObject(p, s->name, *(const double *)f);
            } else if (s->kind == KILN_PARAM_BOOL) {
                cJSON_AddBoolToObject(p, s->name, *(const bool *)f);
            } else if (s->kind == KILN_PARAM_LENGTH) {
                const kiln_length *l = f;
                cJSON *lo = cJSON_AddObjectToObject(p, s->name);
                cJSON_AddStringToObject(lo, "text", l->text ? l->text : "");
                cJSON_AddStringToObject(lo, "unit", geom_unit_name(l->unit));
                cJSON_AddNumberToObject(lo, "value", l->value);
                if (g->bound || l->unit == KILN_UNIT_PX) {
                    cJSON_AddNumberToObject(lo, "px", l->px);
                }
            } else {
                char v[256];
                params_format_value(s, n->params, g->bound, v, sizeof v);
                size_t len = strlen(v);
                if (s->kind == KILN_PARAM_STRING && len >= 2) {
                    v[len - 1] = '\0';
                    cJSON_AddStringToObject(p, s->name, v + 1);
                } else {
                    cJSON_AddStringToObject(p, s->name, v);
                }
            }
        }
        break;
    }
    case GRAPH_ENCODE:
        cJSON_AddStringToObject(o, "format", graph_format_name(n->format));
        cJSON_AddNumberToObject(o, "quality", n->quality);
        break;
    case GRAPH_STORE:
        cJSON_AddStringToObject(o, "destination", n->destination);
        break;
    }
    if (g->bound) {
        cJSON *s = cJSON_AddObjectToObject(o, "shape");
        cJSON_AddNumberToObject(s, "width", n->shape.width);
        cJSON_AddNumberToObject(s, "height", n->shape.height);
        cJSON_AddNumberToObject(s, "bands", n->shape.bands);
    }
    return o;
}

static void
dump_json(const graph *g, FILE *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "bound", g->bound);
    cJSON_AddNumberToObject(root, "jobs", (double)g->n_jobs);
    cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (!g->nodes[i].dead) {
            cJSON_AddItemToArray(nodes, dump_json_node(g, &g->nodes[i]));
        }
    }
    char *s = cJSON_Print(root);
    if (s != NULL) {
        fprintf(out, "%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(root);
}

/* DOT strings: escape quotes and backslashes. */
static void
dump_dot_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
}

static void
dump_dot(const graph *g, FILE *out)
{
    static const char *const shapes[] = {"invhouse", "box", "box", "house"};
    static const char *const fills[] = {"#cfe2f3", "#ffffff", "#fce5cd",
                                        "#d9ead3"};
    fprintf(out, "digraph kiln {\n  rankdir=TB;\n"
                 "  node [fontname=\"Helvetica\", fontsize=10, "
                 "style=filled];\n"
                 "  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for (size_t i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        char label[1400], shape[64];
        if (n->dead) {
            continue;
        }
        dump_label(g, n, label, sizeof label);
        dump_shape(g, n, shape, sizeof shape);
        fprintf(out, "  n%d [shape=%s, fillcolor=\"%s\", label=\"", n->id,
                shapes[n->kind], fills[n->kind]);
        dump_dot_escape(out, label);
        if (g->bound) {
            fprintf(out, "\\n%s", shape);
        }
        fprintf(out, "\"];\n");
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->input >= 0 && !n->dead) {
            fprintf(out, "  n%d -> n%d", n->input, n->id);
            if (g->nodes[n->input].kind == GRAPH_LOAD) {
                fprintf(out, " [label=\"job %d\"]", n->job);
            }
            fprintf(out, ";\n");
        }
    }
    fprintf(out, "}\n");
}

void
dump_graph(const graph *g, dump_format f, FILE *out)
{
    switch (f) {
    case DUMP_TEXT:
        dump_text(g, out);
        break;
    case DUMP_JSON:
        dump_json(g, out);
        break;
    case DUMP_DOT:
        dump_dot(g, out);
        break;
    }
}
