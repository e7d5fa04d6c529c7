/*
 * The IR: a graph of load, op, encode and store nodes in one array, in
 * topological order (every node's input has a smaller id). One load node
 * feeds every job, so a source is fetched and decoded once however many
 * outputs it has.
 */
#include "kiln.h"

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

graph_node *
graph_add(graph *g, graph_kind kind, int input, int job, const char *path)
{
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        graph_node *n = arena_alloc(g->arena, cap * sizeof *n);
        if (n == NULL) {
            return NULL;
        }
        if (g->n_nodes > 0) {
            memcpy(n, g->nodes, g->n_nodes * sizeof *n);
        }
        g->nodes = n;
        g->cap_nodes = cap;
    }
    graph_node *node = &g->nodes[g->n_nodes];
    memset(node, 0, sizeof *node);
    node->id = (int)g->n_nodes;
    node->kind = kind;
    node->input = input;
    node->job = job;
    node->path = path;
    g->n_nodes++;
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
