/*
 * Optimizer tests: the pass table and its -O levels, and the passes on
 * small hand-built graphs of fake ops (so that what a pass may do is
 * decided by the callbacks these tests give, not by ops-vips): drop-noops,
 * merge-pairs, fuse-luts, fuse-resamples and shrink-on-load's plan.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "../../core/kiln.h"

int test_optimize_register(void);

/* ------------------------------------------------------------ fake ops */

/* "add": adds v; no-op at 0; two runs merge into one (their sum), or into
 * nothing when the sum is 0. */
typedef struct add_params {
    double v;
} add_params;

static int
fake_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    (void)params;
    (void)err;
    *out = *in;
    return KILN_OK;
}

static bool
add_is_noop(const void *params, const kiln_shape *in)
{
    (void)in;
    return ((const add_params *)params)->v == 0;
}

static int
add_compose(const void *first, const void *second, void *merged)
{
    double v = ((const add_params *)first)->v + ((const add_params *)second)->v;
    if (v == 0) {
        return KILN_COMPOSE_IDENTITY;
    }
    ((add_params *)merged)->v = v;
    return KILN_COMPOSE_MERGED;
}

static const reg_op fake_add = {.op = {.name = "add",
                                       .n_inputs = 1,
                                       .params_size = sizeof(add_params),
                                       .infer = fake_infer,
                                       .is_noop = add_is_noop,
                                       .compose = add_compose}};

/* "inv": 255 - v on every colour band, a lookup op. "plus": v + 1,
 * clamped, also a lookup. */
static bool
inv_lut(const void *params, uint8_t table[3][256])
{
    (void)params;
    for (int b = 0; b < 3; b++) {
        for (int v = 0; v < 256; v++) {
            table[b][v] = (uint8_t)(255 - v);
        }
    }
    return true;
}

static bool
plus_lut(const void *params, uint8_t table[3][256])
{
    (void)params;
    for (int b = 0; b < 3; b++) {
        for (int v = 0; v < 256; v++) {
            table[b][v] = (uint8_t)(v < 255 ? v + 1 : 255);
        }
    }
    return true;
}

static const reg_op fake_inv = {
    .op = {.name = "inv", .n_inputs = 1, .infer = fake_infer, .lut = inv_lut}};
static const reg_op fake_plus = {
    .op = {
        .name = "plus", .n_inputs = 1, .infer = fake_infer, .lut = plus_lut}};

/* "scale": a resample to a fraction of its input, which it can run on a
 * reduced input; "dim": a per-pixel op that cannot. */
typedef struct scale_params {
    double f;
} scale_params;

static bool
scale_sample(const void *params, const kiln_shape *in, double *sx, double *sy)
{
    (void)in;
    *sx = *sy = ((const scale_params *)params)->f;
    return true;
}

static const reg_op fake_scale = {.op = {.name = "scale",
                                         .n_inputs = 1,
                                         .params_size = sizeof(scale_params),
                                         .infer = fake_infer,
                                         .sample_scale = scale_sample}};
static const reg_op fake_dim = {
    .op = {.name = "dim", .n_inputs = 1, .infer = fake_infer}};

/* "wscale": scale that honours windows (crop-first); "cut": a crop of a
 * v x v square at the centre of its input. */
static const reg_op fake_wscale = {.op = {.name = "wscale",
                                          .n_inputs = 1,
                                          .flags = KILN_OP_WINDOWED,
                                          .params_size = sizeof(scale_params),
                                          .infer = fake_infer,
                                          .sample_scale = scale_sample}};

static bool
cut_region(const void *params, const kiln_shape *in, kiln_rect *r)
{
    int v = (int)((const add_params *)params)->v;
    if (v > in->width || v > in->height) {
        return false;
    }
    *r = (kiln_rect){(in->width - v) / 2, (in->height - v) / 2, v, v};
    return true;
}

static const reg_op fake_cut = {.op = {.name = "cut",
                                       .n_inputs = 1,
                                       .params_size = sizeof(add_params),
                                       .infer = fake_infer,
                                       .region = cut_region}};

/* ------------------------------------------------------ graph builders */

static graph *
new_graph(arena *a, int w, int h)
{
    graph *g = graph_new(a);
    graph_node *load = graph_add(g, GRAPH_LOAD, -1, -1, "source");
    load->source = "/in/photo.jpg";
    load->shape = (kiln_shape){w, h, 3, false};
    g->bound = w > 0;
    g->source_format = "jpeg";
    g->source_plain = true;
    return g;
}

static int
add_op(graph *g, const reg_op *op, int input, double v, int w, int h)
{
    graph_node *n = graph_add(g, GRAPH_OP, input, 0, "jobs[0]");
    n->op = op;
    n->params = arena_alloc(g->arena, 16);
    ((add_params *)n->params)->v = v;
    n->shape = (kiln_shape){w, h, 3, false};
    return n->id;
}

static void
end_job(graph *g, int input)
{
    graph_node *enc = graph_add(g, GRAPH_ENCODE, input, 0, "jobs[0]");
    enc->shape = g->nodes[input].shape;
    graph_node *st = graph_add(g, GRAPH_STORE, enc->id, 0, "jobs[0]");
    st->shape = enc->shape;
    st->destination = "/out/x.jpg";
}

/* The op node ids a job's chain runs, from its encode back to the load,
 * written first to last into ids; returns how many. */
static int
chain(const graph *g, int encode_id, int *ids, int max)
{
    int n = 0;
    for (int id = g->nodes[encode_id].input;
         g->nodes[id].kind == GRAPH_OP && n < max; id = g->nodes[id].input) {
        ids[n++] = id;
    }
    for (int i = 0; i < n / 2; i++) {
        int t = ids[i];
        ids[i] = ids[n - 1 - i];
        ids[n - 1 - i] = t;
    }
    return n;
}

static graph_node *
find_encode(graph *g)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].kind == GRAPH_ENCODE) {
            return &g->nodes[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- tests */

static void
test_table(void)
{
    CU_ASSERT(opt_n_passes >= 4);
    for (size_t i = 0; i < opt_n_passes; i++) {
        const opt_pass *p = &opt_passes[i];
        CU_ASSERT_PTR_NOT_NULL(p->fn);
        CU_ASSERT_PTR_NOT_NULL(p->summary);
        /* Exact passes run from -O1, the others only from -O2. */
        CU_ASSERT_EQUAL(p->level, p->exact ? 1 : 2);
        for (size_t k = 0; k < i; k++) {
            CU_ASSERT(strcmp(opt_passes[k].name, p->name) != 0);
        }
    }
    int level = -1;
    CU_ASSERT(opt_parse_level("0", &level) && level == 0);
    CU_ASSERT(opt_parse_level("3", &level) && level == 3);
    CU_ASSERT(!opt_parse_level("4", &level));
    CU_ASSERT(!opt_parse_level("", &level));
    CU_ASSERT(!opt_parse_level("22", &level));
    CU_ASSERT(!opt_parse_level(NULL, &level));
}

typedef struct seen {
    int n;
    int n_skipped;
    char names[8][32];
} seen;

static void
observe(const opt_pass *p, const opt_report *rep, bool skipped, const graph *g,
        void *user)
{
    (void)rep;
    (void)g;
    seen *s = user;
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", p->name);
    }
    s->n++;
    s->n_skipped += skipped;
}

static void
test_levels(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 0, 0);
    int id = add_op(g, &fake_add, 0, 0, 0, 0);
    end_job(g, id);
    kiln_error err;
    seen s = {0};
    /* -O0: nothing runs, the no-op stays. */
    CU_ASSERT_EQUAL(opt_run(g, 0, observe, &s, &err), KILN_OK);
    CU_ASSERT_EQUAL(s.n, 0);
    CU_ASSERT(!g->nodes[id].dead);
    /* -O1 on an unbound graph: the exact passes; those that need sizes
     * (crop-first) are reported skipped. */
    CU_ASSERT_EQUAL(opt_run(g, 1, observe, &s, &err), KILN_OK);
    CU_ASSERT(g->nodes[id].dead);
    CU_ASSERT_STRING_EQUAL(s.names[0], "drop-noops");
    for (int i = 0; i < s.n; i++) {
        CU_ASSERT(strcmp(s.names[i], "shrink-on-load") != 0);
    }
    int n_exact_sized = 0;
    for (size_t i = 0; i < opt_n_passes; i++) {
        n_exact_sized += opt_passes[i].level == 1 && opt_passes[i].needs_shapes;
    }
    CU_ASSERT_EQUAL(s.n_skipped, n_exact_sized);
    /* -O2 unbound: shrink-on-load is reported skipped (needs sizes). */
    seen s2 = {0};
    CU_ASSERT_EQUAL(opt_run(g, 2, observe, &s2, &err), KILN_OK);
    int n_sized = 0;
    for (size_t i = 0; i < opt_n_passes; i++) {
        n_sized += opt_passes[i].needs_shapes;
    }
    CU_ASSERT_EQUAL(s2.n, (int)opt_n_passes);
    CU_ASSERT_EQUAL(s2.n_skipped, n_sized);
    CU_ASSERT(n_sized >= 1);
    arena_free(a);
}

static void
test_drop_noops(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 100, 50);
    int n0 = add_op(g, &fake_add, 0, 0, 100, 50);   /* no-op */
    int n1 = add_op(g, &fake_add, n0, 3, 100, 50);  /* +3 */
    int n2 = add_op(g, &fake_add, n1, -3, 100, 50); /* -3: pair undone */
    int n3 = add_op(g, &fake_dim, n2, 0, 100, 50);
    int n4 = add_op(g, &fake_add, n3, 0, 100, 50); /* no-op */
    end_job(g, n4);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_drop_noops(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 4);
    CU_ASSERT(g->nodes[n0].dead && g->nodes[n1].dead && g->nodes[n2].dead &&
              g->nodes[n4].dead);
    CU_ASSERT(!g->nodes[n3].dead);
    CU_ASSERT_EQUAL(g->nodes[n3].input, 0);
    int ids[8];
    CU_ASSERT_EQUAL(chain(g, find_encode(g)->id, ids, 8), 1);
    CU_ASSERT_EQUAL(ids[0], n3);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "dropped"));
    arena_free(a);
}

static void
test_drop_needs_same_shape(void)
{
    /* A plugin that calls an op a no-op while its bound output differs
     * from its input is not trusted. */
    arena *a = arena_new();
    graph *g = new_graph(a, 100, 50);
    int n0 = add_op(g, &fake_add, 0, 0, 80, 50);
    end_job(g, n0);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_drop_noops(g, &rep, &err), KILN_OK);
    CU_ASSERT(!g->nodes[n0].dead);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    arena_free(a);
}

static void
test_merge_pairs(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 0, 0);
    int n0 = add_op(g, &fake_add, 0, 1, 0, 0);
    int n1 = add_op(g, &fake_add, n0, 2, 0, 0);
    int n2 = add_op(g, &fake_add, n1, 4, 0, 0);
    end_job(g, n2);
    /* A second job reads n0 too: n0 cannot be merged into n1. */
    int other = add_op(g, &fake_dim, n0, 0, 0, 0);
    end_job(g, other);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_merge_pairs(g, &rep, &err), KILN_OK);
    CU_ASSERT(!g->nodes[n0].dead);
    CU_ASSERT(g->nodes[n1].dead);
    CU_ASSERT(!g->nodes[n2].dead);
    CU_ASSERT_EQUAL(g->nodes[n2].input, n0);
    CU_ASSERT_DOUBLE_EQUAL(((add_params *)g->nodes[n2].params)->v, 6, 1e-12);
    CU_ASSERT_PTR_NOT_NULL(g->nodes[n2].note);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 2);
    arena_free(a);
}

static void
test_fuse_luts(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 0, 0);
    int n0 = add_op(g, &fake_plus, 0, 0, 0, 0);
    int n1 = add_op(g, &fake_plus, n0, 0, 0, 0);
    int n2 = add_op(g, &fake_dim, n1, 0, 0, 0);
    int n3 = add_op(g, &fake_inv, n2, 0, 0, 0);
    int n4 = add_op(g, &fake_inv, n3, 0, 0, 0); /* inv twice: identity */
    end_job(g, n4);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_fuse_luts(g, &rep, &err), KILN_OK);
    CU_ASSERT(g->nodes[n0].dead);
    CU_ASSERT(!g->nodes[n1].dead);
    CU_ASSERT_STRING_EQUAL(g->nodes[n1].op->op.name, "lut");
    CU_ASSERT_STRING_EQUAL(g->nodes[n1].note, "fused plus + plus");
    /* The fused table is plus twice: 0 -> 2, 254 -> 255. */
    uint8_t t[3][256];
    CU_ASSERT(g->nodes[n1].op->op.lut(g->nodes[n1].params, t));
    CU_ASSERT_EQUAL(t[0][0], 2);
    CU_ASSERT_EQUAL(t[2][254], 255);
    CU_ASSERT(g->nodes[n3].dead && g->nodes[n4].dead);
    int ids[8];
    CU_ASSERT_EQUAL(chain(g, find_encode(g)->id, ids, 8), 2);
    CU_ASSERT_EQUAL(ids[0], n1);
    CU_ASSERT_EQUAL(ids[1], n2);
    arena_free(a);
}

static void
test_jpeg_shrink(void)
{
    CU_ASSERT_EQUAL(pass_jpeg_shrink(2725, 2225, 720, 588), 2);
    CU_ASSERT_EQUAL(pass_jpeg_shrink(2725, 2225, 340, 278), 8);
    CU_ASSERT_EQUAL(pass_jpeg_shrink(2725, 2225, 341, 278), 4);
    CU_ASSERT_EQUAL(pass_jpeg_shrink(1024, 768, 1000, 10), 1);
    /* floor(w / s): 1023 / 2 = 511 does not cover 512. */
    CU_ASSERT_EQUAL(pass_jpeg_shrink(1023, 768, 512, 384), 1);
}

/* A 4000x3000 JPEG read by one "scale" consumer of factor f, bound to an
 * output of out_w x out_h; runs shrink-on-load at `level`. */
static graph *
shrink_graph(arena *a, double f, int out_w, int out_h, int level,
             opt_report *rep)
{
    graph *g = new_graph(a, 4000, 3000);
    int n0 = add_op(g, &fake_scale, 0, f, out_w, out_h);
    end_job(g, n0);
    g->opt_level = level;
    memset(rep, 0, sizeof *rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, rep, &err), KILN_OK);
    return g;
}

static void
test_shrink_plan(void)
{
    arena *a = arena_new();
    opt_report rep;
    /* A tenth: -O2 takes the largest shrink that leaves x3 of Lanczos3
     * after 4 or 8, x1.4 after 2 (the quality rule, docs/optimizer.md):
     * 8 leaves 1.25, 4 leaves 2.5, so 2; -O3 goes down to the need, 8. */
    graph *g = shrink_graph(a, 0.1, 400, 300, 2, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 2);
    CU_ASSERT_EQUAL(g->nodes[0].shape.width, 2000);
    CU_ASSERT_EQUAL(g->nodes[0].shape.height, 1500);
    CU_ASSERT_EQUAL(g->nodes[0].full.width, 4000);
    CU_ASSERT(g->nodes[1].is_reduced);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[1].reduction.xscale, 0.5, 1e-12);
    CU_ASSERT_EQUAL(g->nodes[1].reduction.bound.width, 4000);
    CU_ASSERT_EQUAL(rep.n_changes, 2);
    pass_shrink_undo(g);
    CU_ASSERT_EQUAL(g->nodes[0].shape.width, 4000);
    CU_ASSERT(!g->nodes[1].is_reduced);
    g = shrink_graph(a, 0.1, 400, 300, 3, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 8);
    /* A twentieth: 8 leaves 2.5, 4 leaves 5: shrink 4. A fiftieth: 8. */
    g = shrink_graph(a, 0.05, 200, 150, 2, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 4);
    g = shrink_graph(a, 0.02, 80, 60, 2, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 8);
    /* 0.3: shrink 2 leaves x1.67, enough. 0.45: x1.11, not at -O2 (DCT
     * scaling with so little Lanczos3 after it lost 4 to 20 dB); -O3
     * shrinks 2 either way. */
    g = shrink_graph(a, 0.3, 1200, 900, 2, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 2);
    g = shrink_graph(a, 0.45, 1800, 1350, 2, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "x1.4 Lanczos3 step"));
    g = shrink_graph(a, 0.45, 1800, 1350, 3, &rep);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 2);
    arena_free(a);
}

static void
test_shrink_refusals(void)
{
    arena *a = arena_new();
    kiln_error err;
    opt_report rep;
    /* A consumer that cannot run on a reduced input. */
    graph *g = new_graph(a, 4000, 3000);
    end_job(g, add_op(g, &fake_scale, 0, 0.1, 400, 300));
    end_job(g, add_op(g, &fake_dim, 0, 0, 4000, 3000));
    g->opt_level = 2;
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "dim cannot run"));
    /* A job that encodes the source as it is. */
    g = new_graph(a, 4000, 3000);
    end_job(g, add_op(g, &fake_scale, 0, 0.1, 400, 300));
    end_job(g, 0);
    g->opt_level = 2;
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 0);
    /* PNG, and a JPEG decoded through a colour transform. */
    g = new_graph(a, 4000, 3000);
    end_job(g, add_op(g, &fake_scale, 0, 0.1, 400, 300));
    g->opt_level = 2;
    g->source_format = "png";
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 0);
    g->source_format = "jpeg";
    g->source_plain = false;
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 0);
    /* WebP: a scale, twice the need at -O2. */
    g->source_plain = true;
    g->source_format = "webp";
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[0].load_scale, 0.2, 1e-12);
    CU_ASSERT_EQUAL(g->nodes[0].shape.width, 800);
    arena_free(a);
}

/* "rs": a resample that says so (resample_to), to round(f x size). */
static bool
rs_to(const void *params, const kiln_shape *in, int *w, int *h)
{
    double f = ((const scale_params *)params)->f;
    *w = (int)(in->width * f + 0.5);
    *h = (int)(in->height * f + 0.5);
    return true;
}

static const reg_op fake_rs = {.op = {.name = "rs",
                                      .n_inputs = 1,
                                      .params_size = sizeof(scale_params),
                                      .infer = fake_infer,
                                      .sample_scale = scale_sample,
                                      .resample_to = rs_to}};

/* One job: a w x h JPEG through `op` by f to a JPEG, shrink-on-load run
 * first as opt_run would; returns the op's id. */
static int
fuse_graph(arena *a, graph **out, const reg_op *op, int w, int h, double f)
{
    graph *g = new_graph(a, w, h);
    int id = add_op(g, op, 0, f, (int)(w * f + 0.5), (int)(h * f + 0.5));
    end_job(g, id);
    g->n_jobs = 1;
    g->job_store = arena_alloc(a, sizeof(int));
    g->job_store[0] = (int)g->n_nodes - 1;
    g->opt_level = 2;
    opt_report rep;
    kiln_error err;
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    *out = g;
    return id;
}

/* fuse-jpeg marks the thumbnail and refuses everything else, saying why. */
static void
test_fuse_jpeg(void)
{
    arena *a = arena_new();
    kiln_error err;
    opt_report rep;
    graph *g = NULL;
    int id = fuse_graph(a, &g, &fake_rs, 2725, 2225, 0.2642);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 2);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_fuse_jpeg(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->fused_op, id);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "in one loop"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g->nodes[id].note, "fused"));
    /* Each refusal, by what it changes in that graph. */
    static const char *const whys[] = {"several jobs",
                                       "not a JPEG",
                                       "not a JPEG",
                                       "turned",
                                       "colour transform",
                                       "the output is not a JPEG",
                                       "resample of the whole",
                                       "resample of the whole",
                                       "resample of the whole",
                                       "1 to 20",
                                       "reduced scale"};
    for (int k = 0; k < 11; k++) {
        id = fuse_graph(a, &g, k == 8 ? &fake_scale : &fake_rs,
                        k == 9 ? 20000 : 2725, k == 9 ? 14000 : 2225,
                        k == 9    ? 0.0025
                        : k == 10 ? 0.9
                                  : 0.2642);
        graph_node *op = &g->nodes[id];
        switch (k) {
        case 0:
            g->n_jobs = 2;
            break;
        case 1:
            g->source_format = "png";
            break;
        case 2:
            g->source_format = NULL;
            break;
        case 3:
            g->source_oriented = true;
            break;
        case 4:
            g->source_plain = false;
            break;
        case 5:
            g->nodes[op->id + 1].format = FORMAT_PNG;
            break;
        case 6:
            op->shape.has_alpha = true;
            break;
        case 7:
            op->reduction.has_window = true;
            break;
        default:
            break;
        }
        memset(&rep, 0, sizeof rep);
        CU_ASSERT_EQUAL(pass_fuse_jpeg(g, &rep, &err), KILN_OK);
        CU_ASSERT_EQUAL(g->fused_op, 0);
        if (strstr(rep.note, whys[k]) == NULL) {
            fprintf(stderr, "fuse-jpeg refusal %d: note \"%s\"\n", k, rep.note);
            CU_FAIL("fuse-jpeg's note does not say why");
        }
    }
    arena_free(a);
}

static void
test_share_chains(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 100, 50);
    /* Two jobs: scale 0.5 then add 1, and scale 0.5 then add 2. */
    int a0 = add_op(g, &fake_scale, 0, 0.5, 50, 25);
    int a1 = add_op(g, &fake_add, a0, 1, 50, 25);
    end_job(g, a1);
    int b0 = add_op(g, &fake_scale, 0, 0.5, 50, 25);
    int b1 = add_op(g, &fake_add, b0, 2, 50, 25);
    end_job(g, b1);
    /* A third job scales by another factor: not shared. */
    int c0 = add_op(g, &fake_scale, 0, 0.25, 25, 12);
    end_job(g, c0);
    /* fake_scale is not KILN_OP_PURE: nothing may be shared. */
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_share_chains(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    reg_op pure = fake_scale;
    pure.op.flags = KILN_OP_PURE;
    g->nodes[a0].op = g->nodes[b0].op = g->nodes[c0].op = &pure;
    CU_ASSERT_EQUAL(pass_share_chains(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT(g->nodes[b0].dead);
    CU_ASSERT(!g->nodes[c0].dead);
    CU_ASSERT_EQUAL(g->nodes[b1].input, a0);
    CU_ASSERT_EQUAL(graph_n_consumers(g, a0), 2);
    arena_free(a);
}

/* graph_streams: the source is decoded sequentially only when it has one
 * consumer and every op its pixels flow through, up to a node several
 * jobs share (rendered into memory), reads its input top to bottom. */
static void
test_streams(void)
{
    arena *a = arena_new();
    reg_op seq = fake_scale, rnd = fake_scale;
    seq.op.flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL;
    rnd.op.flags = KILN_OP_PURE;

    graph *g = new_graph(a, 100, 50);
    int s0 = add_op(g, &seq, 0, 0.5, 50, 25);
    int s1 = add_op(g, &seq, s0, 1, 50, 25);
    end_job(g, s1);
    CU_ASSERT(graph_streams(g));
    g->nodes[s1].op = &rnd; /* a random reader anywhere on the stream */
    CU_ASSERT(!graph_streams(g));

    /* Two jobs from the load: two consumers, random access. */
    g = new_graph(a, 100, 50);
    end_job(g, add_op(g, &seq, 0, 0.5, 50, 25));
    end_job(g, add_op(g, &seq, 0, 0.25, 25, 12));
    CU_ASSERT(!graph_streams(g));

    /* Two jobs sharing a sequential prefix: the shared node is rendered
     * into memory, so what follows it may read at random. */
    g = new_graph(a, 100, 50);
    int p = add_op(g, &seq, 0, 0.5, 50, 25);
    end_job(g, add_op(g, &rnd, p, 1, 50, 25));
    end_job(g, add_op(g, &rnd, p, 2, 50, 25));
    CU_ASSERT(graph_streams(g));
    g->nodes[p].op = &rnd;
    CU_ASSERT(!graph_streams(g));

    /* A dead op does not count. */
    g = new_graph(a, 100, 50);
    int d = add_op(g, &rnd, 0, 1, 100, 50);
    graph_drop(g, d);
    end_job(g, add_op(g, &seq, 0, 0.5, 50, 25));
    CU_ASSERT(graph_streams(g));
    arena_free(a);
}

static void
test_reuse_reductions(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    /* Widths 2000, 1000, 900, 400: 1000 and 400 may read 2000, 900 too
     * (2000 >= 1800); 400 prefers the smallest such, still 2000 since
     * 1000 and 900 now read a reduction themselves. */
    int n0 = add_op(g, &fake_scale, 0, 0.5, 2000, 1500);
    end_job(g, n0);
    int n1 = add_op(g, &fake_scale, 0, 0.25, 1000, 750);
    end_job(g, n1);
    int n2 = add_op(g, &fake_scale, 0, 0.225, 900, 675);
    end_job(g, n2);
    int n3 = add_op(g, &fake_scale, 0, 0.1, 400, 300);
    end_job(g, n3);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_reuse_reductions(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 3);
    CU_ASSERT_EQUAL(g->nodes[n0].input, 0);
    CU_ASSERT_EQUAL(g->nodes[n1].input, n0);
    CU_ASSERT_EQUAL(g->nodes[n2].input, n0);
    CU_ASSERT_EQUAL(g->nodes[n3].input, n0);
    CU_ASSERT(g->nodes[n1].is_reduced);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.xscale, 0.5, 1e-12);
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.width, 4000);
    /* A 1500-wide job needs 1500: 2000 is not twice that. */
    g = new_graph(a, 4000, 3000);
    n0 = add_op(g, &fake_scale, 0, 0.5, 2000, 1500);
    end_job(g, n0);
    n1 = add_op(g, &fake_scale, 0, 0.375, 1500, 1125);
    end_job(g, n1);
    CU_ASSERT_EQUAL(pass_reuse_reductions(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT_EQUAL(g->nodes[n1].input, 0);
    arena_free(a);
}

/* fuse-resamples on one job's chain: runs the pass, returns its report. */
static opt_report
fuse(graph *g)
{
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_fuse_resamples(g, &rep, &err), KILN_OK);
    return rep;
}

static void
test_fuse_pair(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    int n0 = add_op(g, &fake_scale, 0, 0.5, 2000, 1500);
    int n1 = add_op(g, &fake_scale, n0, 0.25, 500, 375);
    end_job(g, n1);
    opt_report rep = fuse(g);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "fused 1 resample"));
    CU_ASSERT(g->nodes[n0].dead);
    CU_ASSERT_EQUAL(g->nodes[n1].input, 0);
    /* n1 plans from the 2000x1500 it was bound to and resamples from the
     * 4000x3000 source: 2 source pixels per bound pixel. */
    CU_ASSERT(g->nodes[n1].is_reduced);
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.width, 2000);
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.height, 1500);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.xscale, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.yscale, 2.0, 1e-12);
    CU_ASSERT_EQUAL(g->nodes[n1].shape.width, 500);
    /* Reader counts: the load has n1, n0 has none, n1 its encode. */
    CU_ASSERT_EQUAL(graph_n_consumers(g, 0), 1);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 0);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n1), 1);
    int ids[8];
    CU_ASSERT_EQUAL(chain(g, find_encode(g)->id, ids, 8), 1);
    CU_ASSERT_EQUAL(ids[0], n1);
    arena_free(a);
}

static void
test_fuse_chain(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    int n0 = add_op(g, &fake_scale, 0, 0.6, 2400, 1800);
    int n1 = add_op(g, &fake_scale, n0, 0.5, 1200, 900);
    int n2 = add_op(g, &fake_scale, n1, 0.5, 600, 450);
    int n3 = add_op(g, &fake_dim, n2, 0, 600, 450);
    end_job(g, n3);
    opt_report rep = fuse(g);
    CU_ASSERT_EQUAL(rep.n_changes, 2);
    CU_ASSERT(g->nodes[n0].dead && g->nodes[n1].dead);
    CU_ASSERT(!g->nodes[n2].dead && !g->nodes[n3].dead);
    CU_ASSERT_EQUAL(g->nodes[n2].input, 0);
    /* Composed: bound to n1's 1200x900, reading the 4000x3000 source. */
    CU_ASSERT(g->nodes[n2].is_reduced);
    CU_ASSERT_EQUAL(g->nodes[n2].reduction.bound.width, 1200);
    CU_ASSERT_EQUAL(g->nodes[n2].reduction.bound.height, 900);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n2].reduction.xscale, 4000.0 / 1200, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n2].reduction.yscale, 3000.0 / 900, 1e-12);
    CU_ASSERT_PTR_NOT_NULL(g->nodes[n2].note);
    CU_ASSERT_PTR_NOT_NULL(strstr(g->nodes[n2].note, "%1, %2"));
    /* dim cannot run reduced: it still reads n2. */
    CU_ASSERT_EQUAL(g->nodes[n3].input, n2);
    CU_ASSERT(!g->nodes[n3].is_reduced);
    CU_ASSERT_EQUAL(graph_n_consumers(g, 0), 1);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 0);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n1), 0);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n2), 1);
    int ids[8];
    CU_ASSERT_EQUAL(chain(g, find_encode(g)->id, ids, 8), 2);
    CU_ASSERT_EQUAL(ids[0], n2);
    CU_ASSERT_EQUAL(ids[1], n3);
    arena_free(a);
}

/* A first op that is not the whole input resampled: its output is not
 * its input scaled by its own factors (a cropbox cut, a letterbox
 * padded), or it adds a band. */
static void
test_fuse_refuses_crop_pad(void)
{
    arena *a = arena_new();
    const struct {
        double f;
        kiln_shape out;
    } firsts[] = {
        {0.5, {1500, 1500, 3, false}},  /* cropped */
        {0.25, {1200, 1200, 3, false}}, /* padded */
        {0.5, {2000, 1500, 4, true}},   /* alpha added */
    };
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        graph *g = new_graph(a, 4000, 3000);
        int n0 = add_op(g, &fake_scale, 0, firsts[i].f, 0, 0);
        g->nodes[n0].shape = firsts[i].out;
        int n1 = add_op(g, &fake_scale, n0, 0.25, firsts[i].out.width / 4,
                        firsts[i].out.height / 4);
        g->nodes[n1].shape.bands = firsts[i].out.bands;
        g->nodes[n1].shape.has_alpha = firsts[i].out.has_alpha;
        end_job(g, n1);
        opt_report rep = fuse(g);
        CU_ASSERT_EQUAL(rep.n_changes, 0);
        CU_ASSERT(!g->nodes[n0].dead);
        CU_ASSERT_EQUAL(g->nodes[n1].input, n0);
        CU_ASSERT(!g->nodes[n1].is_reduced);
        CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 1);
    }
    /* A first op that cannot run reduced (no sample_scale). */
    graph *g = new_graph(a, 4000, 3000);
    int d = add_op(g, &fake_dim, 0, 0, 4000, 3000);
    int n1 = add_op(g, &fake_scale, d, 0.25, 1000, 750);
    end_job(g, n1);
    CU_ASSERT_EQUAL(fuse(g).n_changes, 0);
    CU_ASSERT_EQUAL(g->nodes[n1].input, d);
    arena_free(a);
}

static void
test_fuse_refuses_shared(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    /* Two jobs read n0 (share-chains made it one node). */
    int n0 = add_op(g, &fake_scale, 0, 0.5, 2000, 1500);
    int n1 = add_op(g, &fake_scale, n0, 0.25, 500, 375);
    end_job(g, n1);
    int n2 = add_op(g, &fake_scale, n0, 0.5, 1000, 750);
    end_job(g, n2);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 2);
    opt_report rep = fuse(g);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[n0].dead);
    CU_ASSERT_EQUAL(g->nodes[n1].input, n0);
    CU_ASSERT_EQUAL(g->nodes[n2].input, n0);
    CU_ASSERT(!g->nodes[n1].is_reduced && !g->nodes[n2].is_reduced);
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 2);
    CU_ASSERT_EQUAL(graph_n_consumers(g, 0), 1);
    arena_free(a);
}

/* Only reductions after reductions fuse (docs/optimizer.md measures the
 * rest below 40 dB): down then up, up then down, and one axis down then
 * up stay two resamples. */
static void
test_fuse_refuses_enlarging(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    int n0 = add_op(g, &fake_scale, 0, 0.025, 100, 75);
    int n1 = add_op(g, &fake_scale, n0, 10, 1000, 750);
    end_job(g, n1);
    opt_report rep = fuse(g);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT_EQUAL(g->nodes[n1].input, n0);
    CU_ASSERT(!g->nodes[n0].dead);
    CU_ASSERT(!g->nodes[n1].is_reduced);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "not applied"));
    CU_ASSERT_EQUAL(graph_n_consumers(g, n0), 1);

    g = new_graph(a, 1000, 750);
    n0 = add_op(g, &fake_scale, 0, 2, 2000, 1500);
    n1 = add_op(g, &fake_scale, n0, 0.25, 500, 375);
    end_job(g, n1);
    CU_ASSERT_EQUAL(fuse(g).n_changes, 0);
    CU_ASSERT_EQUAL(g->nodes[n1].input, n0);

    /* In a chain, the fused op's scale is the whole way from the source:
     * 4000 to 2000 to 1200 fuses, then 1200 to 3600 (up from a
     * reduction) does not. */
    g = new_graph(a, 4000, 3000);
    n0 = add_op(g, &fake_scale, 0, 0.5, 2000, 1500);
    n1 = add_op(g, &fake_scale, n0, 0.6, 1200, 900);
    int n2 = add_op(g, &fake_scale, n1, 3, 3600, 2700);
    end_job(g, n2);
    rep = fuse(g);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT_EQUAL(g->nodes[n1].input, 0);
    CU_ASSERT_EQUAL(g->nodes[n2].input, n1);
    CU_ASSERT(!g->nodes[n2].is_reduced);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "kept %3 after %2"));

    /* A second reduction milder than 4/3 (0.9), and a fused scale of
     * 1/4 (0.5 then 0.5) or just under it: white noise measured below
     * 40 dB there. 0.5 then 0.4 (1/5) fuses. */
    const double seconds[][2] = {
        {0.5, 0.9}, {0.5, 0.5}, {0.6, 0.4}, {0.9, 0.25}, {0.5, 0.4}};
    for (size_t i = 0; i < sizeof seconds / sizeof seconds[0]; i++) {
        double f0 = seconds[i][0], f1 = seconds[i][1];
        g = new_graph(a, 4000, 3000);
        n0 = add_op(g, &fake_scale, 0, f0, (int)(4000 * f0 + 0.5),
                    (int)(3000 * f0 + 0.5));
        n1 = add_op(g, &fake_scale, n0, f1, (int)(4000 * f0 * f1 + 0.5),
                    (int)(3000 * f0 * f1 + 0.5));
        end_job(g, n1);
        rep = fuse(g);
        bool fuses = i == 4;
        CU_ASSERT_EQUAL(rep.n_changes, fuses ? 1 : 0);
        CU_ASSERT_EQUAL(g->nodes[n1].input, fuses ? 0 : n0);
        CU_ASSERT_EQUAL(graph_n_consumers(g, n0), fuses ? 0 : 1);
    }
    arena_free(a);
}

/* shrink-on-load after fusion: the fused op is the source's consumer,
 * planned for as the first resample it replaced (so 4000 to 1000 to 400
 * decodes at shrink 2, as 4000 to 1000 alone would, not at the shrink 4
 * the fused 0.1 alone allows); the reductions compose, and undoing the
 * plan gives the fusion's back. */
static void
test_fuse_then_shrink(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    int n0 = add_op(g, &fake_scale, 0, 0.25, 1000, 750);
    int n1 = add_op(g, &fake_scale, n0, 0.4, 400, 300);
    end_job(g, n1);
    CU_ASSERT_EQUAL(fuse(g).n_changes, 1);
    g->opt_level = 2;
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_shrink_on_load(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(g->nodes[0].load_shrink, 2);
    CU_ASSERT_EQUAL(g->nodes[0].shape.width, 2000);
    CU_ASSERT(g->nodes[n1].is_reduced);
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.width, 1000);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.xscale, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.yscale, 2.0, 1e-12);
    pass_shrink_undo(g);
    CU_ASSERT_EQUAL(g->nodes[0].shape.width, 4000);
    CU_ASSERT(g->nodes[n1].is_reduced);
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.width, 1000);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.xscale, 4.0, 1e-12);
    arena_free(a);
}

/* reuse-reductions after fusion: a fused job's op keeps planning from
 * its own bound shape when it moves to another job's reduction, and its
 * need is its own size, not its params applied to the full source. */
static void
test_fuse_then_reuse(void)
{
    arena *a = arena_new();
    graph *g = new_graph(a, 4000, 3000);
    int m = add_op(g, &fake_scale, 0, 0.8, 3200, 2400);
    end_job(g, m);
    int n0 = add_op(g, &fake_scale, 0, 0.6, 2400, 1800);
    int n1 = add_op(g, &fake_scale, n0, 0.5, 1200, 900);
    end_job(g, n1);
    CU_ASSERT_EQUAL(fuse(g).n_changes, 1);
    CU_ASSERT_EQUAL(g->nodes[n1].input, 0);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_reuse_reductions(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT_EQUAL(g->nodes[n1].input, m);
    CU_ASSERT(g->nodes[n1].is_reduced);
    /* It needs 1200 (its params on its 2400 bound), and 3200 is more
     * than twice that; it reads 3200 pixels per 2400 bound ones. */
    CU_ASSERT_EQUAL(g->nodes[n1].reduction.bound.width, 2400);
    CU_ASSERT_DOUBLE_EQUAL(g->nodes[n1].reduction.xscale, 3200.0 / 2400, 1e-12);
    CU_ASSERT_EQUAL(graph_n_consumers(g, 0), 1);
    CU_ASSERT_EQUAL(graph_n_consumers(g, m), 2);
    /* A reuse-reductions reader is not the load's: undoing a shrink plan
     * leaves it reduced. */
    g->nodes[0].load_shrink = 2;
    g->nodes[0].full = g->nodes[0].shape;
    pass_shrink_undo(g);
    CU_ASSERT(g->nodes[n1].is_reduced);
    CU_ASSERT_EQUAL(g->nodes[n1].input, m);
    arena_free(a);
}

/* For crop-first: a load of w x h, a resample by f to rw x rh and a cut of
 * v x v, one job: returns the graph; *r_id, *c_id the two nodes. */
static graph *
crop_first_graph(arena *a, const reg_op *op, int w, int h, double f, int rw,
                 int rh, int v, int *r_id, int *c_id)
{
    graph *g = new_graph(a, w, h);
    *r_id = add_op(g, op, 0, f, rw, rh);
    *c_id = add_op(g, &fake_cut, *r_id, v, v, v);
    end_job(g, *c_id);
    return g;
}

static void
test_crop_first_applies(void)
{
    arena *a = arena_new();
    int r, c;
    graph *g = crop_first_graph(a, &fake_wscale, 4000, 3000, 0.5, 2000, 1500,
                                300, &r, &c);
    opt_report rep;
    memset(&rep, 0, sizeof rep);
    kiln_error err;
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "moved 1 crop"));
    const graph_node *rn = &g->nodes[r];
    CU_ASSERT(g->nodes[c].dead);
    CU_ASSERT(rn->is_reduced && rn->reduction.has_window);
    CU_ASSERT_EQUAL(rn->reduction.window.x, 850);
    CU_ASSERT_EQUAL(rn->reduction.window.y, 600);
    CU_ASSERT_EQUAL(rn->reduction.window.width, 300);
    CU_ASSERT_EQUAL(rn->reduction.window.height, 300);
    CU_ASSERT_EQUAL(rn->reduction.bound.width, 4000);
    CU_ASSERT_EQUAL(rn->reduction.bound.height, 3000);
    CU_ASSERT_DOUBLE_EQUAL(rn->reduction.xscale, 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(rn->reduction.yscale, 1, 0);
    CU_ASSERT_EQUAL(rn->shape.width, 300);
    CU_ASSERT_EQUAL(rn->shape.height, 300);
    /* The encoder reads the resample; reader counts follow. */
    CU_ASSERT_EQUAL(find_encode(g)->input, r);
    CU_ASSERT_EQUAL(graph_n_consumers(g, r), 1);
    CU_ASSERT_EQUAL(graph_n_consumers(g, 0), 1);
    CU_ASSERT_EQUAL(graph_n_consumers(g, c), 0);
    /* Run again: a windowed resample is reduced and takes no second. */
    int c2 = add_op(g, &fake_cut, r, 100, 100, 100);
    graph_set_input(g, find_encode(g)->id, c2);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[c2].dead);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "reduced"));
    arena_free(a);
}

static void
test_crop_first_refusals(void)
{
    arena *a = arena_new();
    int r, c;
    opt_report rep;
    kiln_error err;

    /* 1601 to 801 and 1201 to 601: no factor shared, nothing to cut. */
    graph *g = crop_first_graph(a, &fake_wscale, 1601, 1201, 0.5, 801, 601, 100,
                                &r, &c);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[c].dead && !g->nodes[r].is_reduced);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "no aligned cut"));

    /* A resample two jobs read. */
    g = crop_first_graph(a, &fake_wscale, 4000, 3000, 0.5, 2000, 1500, 300, &r,
                         &c);
    end_job(g, r);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[c].dead && !g->nodes[r].is_reduced);
    CU_ASSERT_EQUAL(graph_n_consumers(g, r), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "read by other jobs"));

    /* A resample without KILN_OP_WINDOWED. */
    g = crop_first_graph(a, &fake_scale, 4000, 3000, 0.5, 2000, 1500, 300, &r,
                         &c);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[c].dead && !g->nodes[r].is_reduced);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.note, "does not take windows"));

    /* A resample that pads (its output larger than the scaled input). */
    g = crop_first_graph(a, &fake_wscale, 4000, 3000, 0.5, 2000, 2000, 300, &r,
                         &c);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT(!g->nodes[c].dead);

    /* Not a crop after a resample at all: nothing reported. */
    g = crop_first_graph(a, &fake_dim, 4000, 3000, 0.5, 4000, 3000, 300, &r,
                         &c);
    memset(&rep, 0, sizeof rep);
    CU_ASSERT_EQUAL(pass_crop_first(g, &rep, &err), KILN_OK);
    CU_ASSERT_EQUAL(rep.n_changes, 0);
    CU_ASSERT_STRING_EQUAL(rep.note, "");
    arena_free(a);
}

int
test_optimize_register(void)
{
    CU_pSuite s = CU_add_suite("optimize", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "pass table and levels", test_table);
    CU_add_test(s, "opt_run by level", test_levels);
    CU_add_test(s, "drop-noops: singles and pairs", test_drop_noops);
    CU_add_test(s, "drop-noops: shape must agree", test_drop_needs_same_shape);
    CU_add_test(s, "merge-pairs", test_merge_pairs);
    CU_add_test(s, "fuse-luts", test_fuse_luts);
    CU_add_test(s, "jpeg shrink factor", test_jpeg_shrink);
    CU_add_test(s, "shrink-on-load plan", test_shrink_plan);
    CU_add_test(s, "shrink-on-load refusals", test_shrink_refusals);
    CU_add_test(s, "fuse-jpeg plan and refusals", test_fuse_jpeg);
    CU_add_test(s, "share-chains", test_share_chains);
    CU_add_test(s, "reuse-reductions", test_reuse_reductions);
    CU_add_test(s, "graph_streams", test_streams);
    CU_add_test(s, "fuse-resamples: a pair", test_fuse_pair);
    CU_add_test(s, "fuse-resamples: a chain of 3", test_fuse_chain);
    CU_add_test(s, "fuse-resamples: not after a crop or pad",
                test_fuse_refuses_crop_pad);
    CU_add_test(s, "fuse-resamples: not a shared node",
                test_fuse_refuses_shared);
    CU_add_test(s, "fuse-resamples: not with an enlargement",
                test_fuse_refuses_enlarging);
    CU_add_test(s, "fuse-resamples then shrink-on-load", test_fuse_then_shrink);
    CU_add_test(s, "fuse-resamples then reuse-reductions",
                test_fuse_then_reuse);
    CU_add_test(s, "crop-first: applies", test_crop_first_applies);
    CU_add_test(s, "crop-first: refusals", test_crop_first_refusals);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
