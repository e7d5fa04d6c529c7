/*
 * Stage 4: the optimizer. A table of named passes, each a function that
 * rewrites the IR graph in place after bind (or before it, for passes that
 * need no sizes: `kiln compile` without a source). -O0 runs none, -O1 the
 * exact ones, -O2 all; `kiln compile --passes` prints the graph after each.
 * The passes themselves live in pass_*.c; docs/optimizer.md describes them.
 */
#include "dsl.h"

#include <stdlib.h>
#include <string.h>

const opt_pass opt_passes[] = {
    {"drop-noops",
     "drop ops that change nothing (rotate 0, brightness 0, a crop or resize "
     "to the input's size) and pairs that undo each other (two flips of one "
     "axis)",
     1, true, false, false, pass_drop_noops},
    {"merge-pairs",
     "merge two consecutive runs of one op into one when the op says they "
     "compose exactly (rotate 90 then 90: rotate 180)",
     1, true, false, false, pass_merge_pairs},
    {"fuse-luts",
     "fuse runs of per-channel lookup ops (brightness, contrast, colorize, "
     "negate) into one 8-bit lookup",
     1, true, false, true, pass_fuse_luts},
    {"share-chains",
     "run the identical leading ops of several jobs once, for all of them", 1,
     true, false, false, pass_share_chains},
    {"fuse-resamples",
     "resample once from the larger image where a reduction reads a whole "
     "resize or fit that reduced (the rule in docs/optimizer.md)",
     2, false, true, true, pass_fuse_resamples},
    {"shrink-on-load",
     "decode the source at a reduced scale (JPEG shrink 2/4/8, WebP, SVG "
     "and PDF scale) when every consumer reduces it",
     2, false, true, true, pass_shrink_on_load},
    {"reuse-reductions",
     "resample a reduction of the source from another job's reduction at "
     "least twice as large, rather than from the source",
     2, false, true, true, pass_reuse_reductions},
    {"crop-first",
     "make a resample produce only the region a crop after it keeps, "
     "resampling only the part of its input that region needs",
     1, true, true, true, pass_crop_first},
    {"fuse-jpeg",
     "run a one-job JPEG thumbnail (a reduced decode, one resample, a JPEG "
     "encode) as one loop of libjpeg and kiln's Lanczos3 kernels instead of "
     "a libvips pipeline; same bytes (it follows shrink-on-load, so it "
     "applies from -O2)",
     1, true, true, true, pass_fuse_jpeg},
};

const size_t opt_n_passes = sizeof opt_passes / sizeof opt_passes[0];

void
opt_list_add(char *buf, size_t size, int x, const char *word, int y)
{
    size_t l = strlen(buf);
    snprintf(buf + l, size - l, "%s%%%d %s %%%d", l ? ", " : "", x, word, y);
}

bool
opt_parse_level(const char *s, int *level)
{
    if (s == NULL || s[0] < '0' || s[0] > '0' + OPT_LEVEL_MAX || s[1] != '\0') {
        return false;
    }
    *level = s[0] - '0';
    return true;
}

/* True when KILN_DISABLE_PASSES (a comma-separated list of pass names)
 * names `name`: a pass left out whatever the level, to compare outputs
 * with and without it or to work around one. */
static bool
opt_disabled(const char *name)
{
    const char *list = getenv("KILN_DISABLE_PASSES");
    size_t n = strlen(name);
    while (list != NULL && *list != '\0') {
        const char *end = strchr(list, ',');
        size_t l = end != NULL ? (size_t)(end - list) : strlen(list);
        if (l == n && strncmp(list, name, n) == 0) {
            return true;
        }
        list = end != NULL ? end + 1 : NULL;
    }
    return false;
}

int
opt_run(graph *g, int level, opt_observe_fn observe, void *user,
        kiln_error *err)
{
    g->opt_level = level;
    g->fused_op = 0;
    for (size_t i = 0; i < opt_n_passes; i++) {
        const opt_pass *p = &opt_passes[i];
        if (p->level > level || opt_disabled(p->name) ||
            (p->vips_only && g->native)) {
            continue;
        }
        opt_report rep;
        memset(&rep, 0, sizeof rep);
        bool skip = p->needs_shapes && !g->bound;
        if (!skip) {
            int rc = p->fn(g, &rep, err);
            if (rc != KILN_OK) {
                return rc;
            }
        }
        if (observe != NULL) {
            observe(p, &rep, skip, g, user);
        }
    }
    return KILN_OK;
}
