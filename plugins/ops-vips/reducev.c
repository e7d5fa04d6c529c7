/*
 * ops_reducev(): the vertical half of a Lanczos3 reduction of an 8-bit
 * image as a libvips image, each region's rows made by the row kernel of
 * kernels/reducev.c (kiln's own, vectorised; geometry and arithmetic in
 * kernels/kern.h). libvips 8.14's vips_reducev() for uchar is a scalar
 * loop with 12-bit coefficients.
 *
 * Not a VipsOperation: a plugin may be unloaded, and a GType it registered
 * would outlive it. The image is made with vips_image_generate() and owns
 * its plan through g_object_set_data_full().
 */
#include "ops.h"

#include <stdint.h>
#include <stdlib.h>

/* The plan: for each output row, its first input row (may be negative or
 * past the end: clamped when read) and n_taps weights. */
typedef struct reducev_plan {
    VipsImage *in;       /* held while the output may read it */
    kern_lanczos3 l;     /* rows: in_n, out_n, n_taps, first, weights */
    kern_reducev_fn row; /* the row function for this CPU */
} reducev_plan;

/* One thread's state: its input region and a row of sums. */
typedef struct reducev_seq {
    VipsRegion *ir;
    int32_t *acc;
    size_t acc_n;
} reducev_seq;

static void
reducev_plan_free(void *p)
{
    reducev_plan *plan = p;
    if (plan != NULL) {
        if (plan->in != NULL) {
            g_object_unref(plan->in);
        }
        kern_lanczos3_free(&plan->l);
        free(plan);
    }
}

/* The plan for in_h rows reduced by vshrink; NULL when out of memory. */
static reducev_plan *
reducev_plan_new(int in_h, double vshrink)
{
    reducev_plan *plan = calloc(1, sizeof *plan);
    if (plan == NULL || kern_lanczos3_plan(in_h, vshrink, &plan->l) != 0) {
        free(plan);
        return NULL;
    }
    plan->row = kern_reducev_pick();
    return plan;
}

static void *
reducev_start(VipsImage *out, void *a, void *b)
{
    VipsImage *in = a;
    (void)out;
    (void)b;
    reducev_seq *seq = calloc(1, sizeof *seq);
    if (seq == NULL) {
        return NULL;
    }
    seq->ir = vips_region_new(in);
    if (seq->ir == NULL) {
        free(seq);
        return NULL;
    }
    return seq;
}

static int
reducev_stop(void *s, void *a, void *b)
{
    reducev_seq *seq = s;
    (void)a;
    (void)b;
    if (seq != NULL) {
        g_object_unref(seq->ir);
        free(seq->acc);
        free(seq);
    }
    return 0;
}

static int
reducev_gen(VipsRegion *out_region, void *s, void *a, void *b, gboolean *stop)
{
    reducev_seq *seq = s;
    const reducev_plan *plan = b;
    const VipsRect *r = &out_region->valid;
    (void)a;
    (void)stop;
    int lo = plan->l.first[r->top];
    int hi = plan->l.first[r->top + r->height - 1] + plan->l.n_taps - 1;
    lo = lo < 0 ? 0 : lo;
    hi = hi > plan->l.in_n - 1 ? plan->l.in_n - 1 : hi;
    VipsRect need = {r->left, lo, r->width, hi - lo + 1};
    if (vips_region_prepare(seq->ir, &need)) {
        return -1;
    }
    size_t ne = (size_t)r->width * (size_t)out_region->im->Bands;
    if (seq->acc_n < ne) {
        free(seq->acc);
        seq->acc = malloc(ne * sizeof *seq->acc);
        seq->acc_n = seq->acc != NULL ? ne : 0;
        if (seq->acc == NULL) {
            return -1;
        }
    }
    const uint8_t *rows[KERN_MAX_TAPS];
    int n_taps = plan->l.n_taps;
    if (n_taps > KERN_MAX_TAPS) {
        vips_error("resize", "reduction too large for one pass");
        return -1;
    }
    for (int y = r->top; y < r->top + r->height; y++) {
        int first = plan->l.first[y];
        for (int t = 0; t < n_taps; t++) {
            int row = first + t;
            row = row < lo ? lo : row > hi ? hi : row;
            rows[t] = (const uint8_t *)VIPS_REGION_ADDR(seq->ir, r->left, row);
        }
        plan->row(rows, &plan->l.weights[(size_t)y * n_taps], n_taps, ne,
                  seq->acc,
                  (uint8_t *)VIPS_REGION_ADDR(out_region, r->left, y));
    }
    return 0;
}

int
ops_reducev(VipsImage *in, double vshrink, VipsImage **out)
{
    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
        vips_image_get_coding(in) != VIPS_CODING_NONE || vshrink < 1.0 ||
        vshrink > KERN_REDUCE_MAX) {
        vips_error("resize", "ops_reducev: uchar, uncoded, 1 to 20 only");
        return -1;
    }
    reducev_plan *plan = reducev_plan_new(vips_image_get_height(in), vshrink);
    if (plan == NULL) {
        vips_error("resize", "out of memory");
        return -1;
    }
    VipsImage *o = vips_image_new();
    if (vips_image_pipelinev(o, VIPS_DEMAND_STYLE_FATSTRIP, in, NULL)) {
        g_object_unref(o);
        reducev_plan_free(plan);
        return -1;
    }
    o->Ysize = plan->l.out_n;
    plan->in = in;
    g_object_ref(in);
    /* The plan (and its reference to `in`) lives as long as the image
     * that reads it. */
    g_object_set_data_full(G_OBJECT(o), "kiln-reducev-plan", plan,
                           reducev_plan_free);
    if (vips_image_generate(o, reducev_start, reducev_gen, reducev_stop, in,
                            plan)) {
        g_object_unref(o);
        return -1;
    }
    *out = o;
    return 0;
}
