/*
 * ops_reduceh(): the horizontal half of a Lanczos3 reduction of an 8-bit
 * image as a libvips image, each region's rows made by the kernel of
 * kernels/reduceh.c (kiln's own, vectorised; geometry and arithmetic in
 * kernels/kern.h), the companion of reducev.c.
 */
#include "ops.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct reduceh_plan {
    VipsImage *in; /* held while the output may read it */
    kern_reduceh k;
} reduceh_plan;

static void
reduceh_plan_free(void *p)
{
    reduceh_plan *plan = p;
    if (plan != NULL) {
        if (plan->in != NULL) {
            g_object_unref(plan->in);
        }
        kern_reduceh_free(&plan->k);
        free(plan);
    }
}

static void *
reduceh_start(VipsImage *out, void *a, void *b)
{
    (void)out;
    (void)b;
    return vips_region_new((VipsImage *)a);
}

static int
reduceh_stop(void *seq, void *a, void *b)
{
    (void)a;
    (void)b;
    if (seq != NULL) {
        g_object_unref(seq);
    }
    return 0;
}

/* Rows go to the kernel in batches (it takes four at a time). */
#define REDUCEH_BATCH 64

static int
reduceh_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
    VipsRegion *ir = seq;
    const kern_reduceh *k = &((const reduceh_plan *)b)->k;
    const VipsRect *r = &out_region->valid;
    (void)a;
    (void)stop;
    int lo = k->l.first[r->left];
    int hi = k->l.first[r->left + r->width - 1] + k->l.n_taps - 1;
    lo = lo < 0 ? 0 : lo;
    hi = hi > k->l.in_n - 1 ? k->l.in_n - 1 : hi;
    VipsRect need = {lo, r->top, hi - lo + 1, r->height};
    if (vips_region_prepare(ir, &need)) {
        return -1;
    }
    const uint8_t *rows[REDUCEH_BATCH];
    uint8_t *outs[REDUCEH_BATCH];
    for (int y0 = r->top; y0 < r->top + r->height; y0 += REDUCEH_BATCH) {
        int n = r->top + r->height - y0;
        n = n > REDUCEH_BATCH ? REDUCEH_BATCH : n;
        for (int i = 0; i < n; i++) {
            /* The row as if it started at column 0 (only lo..hi is
             * there). */
            rows[i] = (const uint8_t *)VIPS_REGION_ADDR(ir, lo, y0 + i) -
                      (size_t)lo * k->bands;
            outs[i] = (uint8_t *)VIPS_REGION_ADDR(out_region, r->left, y0 + i);
        }
        kern_reduceh_rows(k, rows, outs, n, lo, hi, r->left,
                          r->left + r->width);
    }
    return 0;
}

int
ops_reduceh(VipsImage *in, double hshrink, VipsImage **out)
{
    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
        vips_image_get_coding(in) != VIPS_CODING_NONE || hshrink < 1.0 ||
        hshrink > KERN_REDUCE_MAX) {
        vips_error("resize", "ops_reduceh: uchar, uncoded, 1 to 20 only");
        return -1;
    }
    reduceh_plan *plan = calloc(1, sizeof *plan);
    if (plan == NULL ||
        kern_reduceh_init(&plan->k, vips_image_get_width(in),
                          vips_image_get_bands(in), hshrink) != 0) {
        free(plan);
        vips_error("resize", "out of memory");
        return -1;
    }
    VipsImage *o = vips_image_new();
    if (vips_image_pipelinev(o, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL)) {
        g_object_unref(o);
        reduceh_plan_free(plan);
        return -1;
    }
    o->Xsize = plan->k.l.out_n;
    plan->in = in;
    g_object_ref(in);
    g_object_set_data_full(G_OBJECT(o), "kiln-reduceh-plan", plan,
                           reduceh_plan_free);
    if (vips_image_generate(o, reduceh_start, reduceh_gen, reduceh_stop, in,
                            plan)) {
        g_object_unref(o);
        return -1;
    }
    *out = o;
    return 0;
}
