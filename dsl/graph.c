/*
 * The IR: a graph of load, op, encode and store nodes in one array, in
 * topological order (every node's input has a smaller id). One load node
 * feeds every job, so a source is fetched and decoded once however many
 * outputs it has.
 */
#include "dsl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const graph_format_exts[] = {".jpg",  ".jpeg", ".png",  ".webp",
                                         ".gif",  ".tif",  ".tiff", ".avif",
                                         ".heic", NULL};

static const graph_format graph_ext_formats[] = {
    FORMAT_JPEG, FORMAT_JPEG, FORMAT_PNG,  FORMAT_WEBP, FORMAT_GIF,
    FORMAT_TIFF, FORMAT_TIFF, FORMAT_AVIF, FORMAT_HEIC};

graph *
graph_new(arena *a)
{
    graph *g = arena_alloc(a, sizeof *g);
    if (g != NULL) {
        g->arena = a;
    }
    return g;
}

int
graph_reserve(graph *g, size_t cap)
{
    if (cap <= g->cap_nodes) {
        return KILN_OK;
    }
    graph_node *n = arena_alloc(g->arena, cap * sizeof *n);
    if (n == NULL) {
        return KILN_ENOMEM;
    }
    if (g->n_nodes > 0) {
        memcpy(n, g->nodes, g->n_nodes * sizeof *n);
    }
    g->nodes = n;
    g->cap_nodes = cap;
    return KILN_OK;
}

graph_node *
graph_add(graph *g, graph_kind kind, int input, int job, const char *path)
{
    if (g->n_nodes == g->cap_nodes &&
        graph_reserve(g, g->cap_nodes ? g->cap_nodes * 2 : 16) != KILN_OK) {
        return NULL;
    }
    graph_node *node = &g->nodes[g->n_nodes];
    memset(node, 0, sizeof *node);
    node->id = (int)g->n_nodes;
    node->kind = kind;
    node->input = input;
    node->job = job;
    node->path = path;
    g->n_nodes++;
    if (input >= 0) {
        g->nodes[input].n_users++;
    }
    return node;
}

const char *
graph_format_name(graph_format f)
{
    static const char *const names[] = {"jpeg", "png",  "webp", "gif",
                                        "tiff", "avif", "heic"};
    return (unsigned)f < 7 ? names[f] : "?";
}

bool
graph_format_from_path(const char *path, graph_format *out)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot == NULL || (slash != NULL && dot < slash)) {
        return false;
    }
    for (size_t i = 0; graph_format_exts[i] != NULL; i++) {
        if (strcasecmp(dot, graph_format_exts[i]) == 0) {
            *out = graph_ext_formats[i];
            return true;
        }
    }
    return false;
}

bool
graph_format_has_alpha(graph_format f)
{
    return f != FORMAT_JPEG;
}

int
graph_format_max_side(graph_format f)
{
    switch (f) {
    case FORMAT_JPEG:
        return 65500; /* libjpeg's JPEG_MAX_DIMENSION */
    case FORMAT_WEBP:
        return 16383; /* WEBP_MAX_DIMENSION */
    case FORMAT_AVIF:
    case FORMAT_HEIC:
        /* One coded image (no grid): AV1's and HEVC's levels stop near
         * 16384 px a side, and libheif refuses to read a larger one. */
        return 16384;
    default:
        return KILN_MAX_SIZE;
    }
}

int
graph_format_narrow_max(graph_format f)
{
    /* Measured with Debian's libheif 1.15 and x265 3.5: 1x4216 and
     * 31x4216 decode, 1x4217 and 31x4217 come out without an image (the
     * encoder fails and libheif writes the container all the same);
     * 32 px and wider go to the format's largest side. */
    return f == FORMAT_HEIC ? 4216 : 0;
}

size_t
graph_n_consumers(const graph *g, int id)
{
    return (size_t)g->nodes[id].n_users;
}

void
graph_set_input(graph *g, int id, int input)
{
    graph_node *n = &g->nodes[id];
    if (n->input >= 0) {
        g->nodes[n->input].n_users--;
    }
    n->input = input;
    if (input >= 0) {
        g->nodes[input].n_users++;
    }
}

/* Readers come after `from` in the array; the scan stops at the last
 * one, so dropping each op of a long chain stays linear overall. */
void
graph_merge(graph *g, int from, int to)
{
    graph_node *d = &g->nodes[from];
    for (size_t i = (size_t)from + 1; i < g->n_nodes && d->n_users > 0; i++) {
        if (!g->nodes[i].dead && g->nodes[i].input == from) {
            graph_set_input(g, (int)i, to);
        }
    }
    if (d->input >= 0) {
        g->nodes[d->input].n_users--;
    }
    d->dead = true;
}

void
graph_job_path(const graph *g, int job, kiln_error *err)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const graph_node *b = &g->nodes[i];
        if (b->runs_as == 0 || b->job != job) {
            continue;
        }
        const graph_node *a = &g->nodes[b->runs_as - 1];
        size_t l = strlen(a->path);
        char c = err->path[l];
        if (a->job == job || strncmp(err->path, a->path, l) != 0 ||
            (c != '\0' && c != '.' && c != '[')) {
            continue;
        }
        char rest[sizeof err->path];
        snprintf(rest, sizeof rest, "%s", err->path + l);
        snprintf(err->path, sizeof err->path, "%s%s", b->path, rest);
        return;
    }
}

bool
graph_streams(const graph *g)
{
    if (g->n_nodes == 0 || g->nodes[0].kind != GRAPH_LOAD) {
        return false;
    }
    /* One pass along the topological order: a node is fed by the stream
     * when its input is the load or a streamed node with no other reader
     * (a shared node is rendered into memory, which ends the stream). */
    bool *fed = calloc(g->n_nodes, sizeof *fed);
    bool ok = fed != NULL && g->nodes[0].n_users == 1;
    if (ok) {
        fed[0] = true;
    }
    for (size_t i = 1; ok && i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->dead || n->input < 0 || !fed[n->input] ||
            (n->input > 0 && g->nodes[n->input].n_users > 1)) {
            continue;
        }
        fed[i] = true;
        if (n->kind == GRAPH_OP &&
            (n->op->op.flags & KILN_OP_SEQUENTIAL) == 0) {
            ok = false;
        }
    }
    free(fed);
    return ok;
}

bool
graph_same_shape(const kiln_shape *a, const kiln_shape *b)
{
    return a->width == b->width && a->height == b->height &&
           a->bands == b->bands && a->has_alpha == b->has_alpha;
}

void
graph_drop(graph *g, int id)
{
    graph_merge(g, id, g->nodes[id].input);
}

const char *
graph_format_of_loader(const char *loader)
{
    static const char *const names[] = {"jpeg", "webp", "svg",  "pdf",
                                        "png",  "gif",  "tiff", "heif"};
    if (loader == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t l = strlen(names[i]);
        if (strncmp(loader, names[i], l) == 0 &&
            strncmp(loader + l, "load", 4) == 0) {
            return names[i];
        }
    }
    return NULL;
}

const char *
graph_format_of_path(const char *path)
{
    static const char *const exts[] = {
        ".jpg", "jpeg", ".jpeg", "jpeg", ".jpe",  "jpeg", ".webp", "webp",
        ".svg", "svg",  ".svgz", "svg",  ".pdf",  "pdf",  ".png",  "png",
        ".gif", "gif",  ".tif",  "tiff", ".tiff", "tiff", NULL};
    const char *dot = path != NULL ? strrchr(path, '.') : NULL;
    const char *slash = path != NULL ? strrchr(path, '/') : NULL;
    if (dot == NULL || (slash != NULL && dot < slash)) {
        return NULL;
    }
    for (size_t i = 0; exts[i] != NULL; i += 2) {
        if (strcasecmp(dot, exts[i]) == 0) {
            return exts[i + 1];
        }
    }
    return NULL;
}
