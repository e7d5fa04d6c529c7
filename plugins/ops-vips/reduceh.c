/*
 * The horizontal half of a Lanczos3 reduction for 8-bit images, kiln's
 * own (issue 13), the companion of reducev.c: libvips 8.14's vips_reduceh()
 * for uchar is a scalar loop over each output pixel's taps with 12-bit
 * weights, about a fifth of the thumbnail batch's CPU.
 *
 * Same geometry and arithmetic as reducev.c, across a row: output column
 * x is centred on input column (x + 0.5) x hshrink - 0.5, Lanczos3
 * stretched by hshrink, 14-bit weights summing to one, 32-bit sums, edge
 * columns repeated; round(width / hshrink) columns out. For 3 and 4 bands
 * the taps go in pairs: the two pixels' bytes are shuffled into band
 * pairs (SSSE3 pshufb), widened to 16 bits and multiplied by the pair of
 * weights and summed into 32 bits by one pmaddwd, when the CPU has SSE4.1
 * (chosen at run time); every other case, and the pixels near the edges,
 * take the plain loop.
 */
#include "ops.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define REDUCEH_SHIFT OPS_LANCZOS3_SHIFT
#define REDUCEH_ONE OPS_LANCZOS3_ONE

typedef struct reduceh_plan {
    VipsImage *in;  /* held while the output may read it */
    ops_lanczos3 l; /* columns: in_n, out_n, n_taps, first, weights */
    int bands;
    bool simd; /* the CPU has SSE4.1 and bands is 3 or 4 */
} reduceh_plan;

static void
reduceh_plan_free(void *p)
{
    reduceh_plan *plan = p;
    if (plan != NULL) {
        if (plan->in != NULL) {
            g_object_unref(plan->in);
        }
        ops_lanczos3_free(&plan->l);
        free(plan);
    }
}

static reduceh_plan *
reduceh_plan_new(int in_w, int bands, double hshrink)
{
    reduceh_plan *plan = calloc(1, sizeof *plan);
    if (plan == NULL || ops_lanczos3_plan(in_w, hshrink, &plan->l) != 0) {
        free(plan);
        return NULL;
    }
    plan->bands = bands;
#if defined(__x86_64__) && defined(__GNUC__)
    const char *portable = getenv("KILN_REDUCEV_PORTABLE");
    plan->simd = (portable == NULL || strcmp(portable, "1") != 0) &&
                 (bands == 3 || bands == 4) && __builtin_cpu_supports("sse4.1");
#endif
    return plan;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* One output pixel of 3 or 4 bands with SSE4.1, its taps all inside the
 * row and 8 bytes readable from each pair's first pixel. */
__attribute__((target("sse4.1"))) static void
reduceh_pixel_sse(const uint8_t *row, const reduceh_plan *plan, int x,
                  __m128i shuffle, uint8_t *out)
{
    const int16_t *w = &plan->l.weights[(size_t)x * plan->l.n_taps];
    const uint8_t *p = row + (size_t)plan->l.first[x] * plan->bands;
    int n = plan->l.n_taps, bands = plan->bands;
    __m128i acc = _mm_set1_epi32(REDUCEH_ONE / 2);
    int t = 0;
    for (; t + 1 < n; t += 2) {
        __m128i px = _mm_loadl_epi64((const __m128i *)(p + t * bands));
        __m128i pairs = _mm_cvtepu8_epi16(_mm_shuffle_epi8(px, shuffle));
        __m128i wp =
            _mm_set1_epi32((int32_t)((uint32_t)(uint16_t)w[t] |
                                     ((uint32_t)(uint16_t)w[t + 1] << 16)));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(pairs, wp));
    }
    int32_t sums[4];
    _mm_storeu_si128((__m128i *)sums, acc);
    for (int b = 0; b < bands; b++) {
        int32_t s = sums[b];
        if (t < n) {
            s += w[t] * (int32_t)p[t * bands + b];
        }
        int32_t v = s >> REDUCEH_SHIFT;
        out[b] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
#endif

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

static int
reduceh_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
    VipsRegion *ir = seq;
    const reduceh_plan *plan = b;
    const VipsRect *r = &out_region->valid;
    (void)a;
    (void)stop;
    int lo = plan->l.first[r->left];
    int hi = plan->l.first[r->left + r->width - 1] + plan->l.n_taps - 1;
    lo = lo < 0 ? 0 : lo;
    hi = hi > plan->l.in_n - 1 ? plan->l.in_n - 1 : hi;
    VipsRect need = {lo, r->top, hi - lo + 1, r->height};
    if (vips_region_prepare(ir, &need)) {
        return -1;
    }
    int bands = plan->bands;
#if defined(__x86_64__) && defined(__GNUC__)
    /* Band pairs of two neighbouring pixels: b of the first, b of the
     * second, for b < bands; the rest zero (index -1). */
    __m128i shuffle = bands == 4 ? _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, -1, -1,
                                                 -1, -1, -1, -1, -1, -1)
                                 : _mm_setr_epi8(0, 3, 1, 4, 2, 5, -1, -1, -1,
                                                 -1, -1, -1, -1, -1, -1, -1);
#endif
    for (int y = r->top; y < r->top + r->height; y++) {
        /* The row as if it started at column 0 (only lo..hi is there). */
        const uint8_t *row =
            (const uint8_t *)VIPS_REGION_ADDR(ir, lo, y) - (size_t)lo * bands;
        uint8_t *out = (uint8_t *)VIPS_REGION_ADDR(out_region, r->left, y);
        for (int x = r->left; x < r->left + r->width; x++, out += bands) {
            int first = plan->l.first[x];
#if defined(__x86_64__) && defined(__GNUC__)
            /* Inside lo..hi, and 8 bytes readable from the last pair. */
            if (plan->simd && first >= lo &&
                (first + plan->l.n_taps) * bands + 8 <= (hi + 1) * bands) {
                reduceh_pixel_sse(row, plan, x, shuffle, out);
                continue;
            }
#endif
            /* Clamped to lo..hi, which is the image's edge or beyond the
             * taps. */
            const int16_t *w = &plan->l.weights[(size_t)x * plan->l.n_taps];
            for (int bnd = 0; bnd < bands; bnd++) {
                int32_t acc = REDUCEH_ONE / 2;
                for (int t = 0; t < plan->l.n_taps; t++) {
                    int c = first + t;
                    c = c < lo ? lo : c > hi ? hi : c;
                    acc += w[t] * (int32_t)row[(size_t)c * bands + bnd];
                }
                int32_t v = acc >> REDUCEH_SHIFT;
                out[bnd] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    return 0;
}

int
ops_reduceh(VipsImage *in, double hshrink, VipsImage **out)
{
    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
        vips_image_get_coding(in) != VIPS_CODING_NONE || hshrink < 1.0 ||
        hshrink > OPS_REDUCE_MAX) {
        vips_error("resize", "ops_reduceh: uchar, uncoded, 1 to 20 only");
        return -1;
    }
    reduceh_plan *plan = reduceh_plan_new(vips_image_get_width(in),
                                          vips_image_get_bands(in), hshrink);
    if (plan == NULL) {
        vips_error("resize", "out of memory");
        return -1;
    }
    VipsImage *o = vips_image_new();
    if (vips_image_pipelinev(o, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL)) {
        g_object_unref(o);
        reduceh_plan_free(plan);
        return -1;
    }
    o->Xsize = plan->l.out_n;
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
