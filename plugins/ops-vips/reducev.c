/*
 * The vertical half of a Lanczos3 reduction for 8-bit images, kiln's own
 * (issue 13). libvips 8.14's vips_reducev() for uchar runs a scalar loop
 * down each column with 12-bit coefficients: a fifth of the CPU of the
 * thumbnail batch. This one works a row at a time, so the inner loop is a
 * contiguous multiply-add along the row (AVX2 when the CPU has it, chosen
 * at run time; a loop the compiler vectorises otherwise), with 14-bit
 * coefficients in 32-bit sums: no rounding
 * between taps, and (ops-vips runs libvips' horizontal pass after it) the
 * thumbnails of docs/optimizer.md's table score 0.02 to 3.9 dB better
 * than with libvips' own pass.
 *
 * Geometry is libvips' (8.13 and later): output row y is centred on input
 * row (y + 0.5) x vshrink - 0.5, the kernel is Lanczos3 stretched by
 * vshrink, weights are normalised to sum to one, and rows past the edges
 * repeat the edge row (libvips embeds with extend-copy). The output has
 * round(height / vshrink) rows.
 *
 * Not a VipsOperation: a plugin may be unloaded, and a GType it registered
 * would outlive it. The image is made with vips_image_generate() and owns
 * its plan through g_object_set_data_full().
 */
#include "ops.h"

#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* Taps of the largest reduction: ceil(6 x OPS_REDUCE_MAX) + 1. */
#define REDUCE_MAX_TAPS 128
#define REDUCEV_SHIFT OPS_LANCZOS3_SHIFT
#define REDUCEV_ONE OPS_LANCZOS3_ONE

/* Makes one output row from n_taps input rows (below). */
typedef void (*reducev_row_fn)(const uint8_t *const *rows, const int16_t *w,
                               int n_taps, size_t ne, int32_t *restrict acc,
                               uint8_t *restrict out);
static reducev_row_fn reducev_pick(void);

/* The plan: for each output row, its first input row (may be negative or
 * past the end: clamped when read) and n_taps weights. */
typedef struct reducev_plan {
    VipsImage *in;      /* held while the output may read it */
    ops_lanczos3 l;     /* rows: in_n, out_n, n_taps, first, weights */
    reducev_row_fn row; /* the row function for this CPU */
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
        ops_lanczos3_free(&plan->l);
        free(plan);
    }
}

/* The plan for in_h rows reduced by vshrink; NULL when out of memory. */
static reducev_plan *
reducev_plan_new(int in_h, double vshrink)
{
    reducev_plan *plan = calloc(1, sizeof *plan);
    if (plan == NULL || ops_lanczos3_plan(in_h, vshrink, &plan->l) != 0) {
        free(plan);
        return NULL;
    }
    plan->row = reducev_pick();
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

/* One output row, portable: acc[x] = the sum over taps of w[t] x
 * rows[t][x], then rounded and clamped into out; the compiler vectorises
 * each tap's pass along the row (O3). */
__attribute__((optimize("O3"))) static void
reducev_row_c(const uint8_t *const *rows, const int16_t *w, int n_taps,
              size_t ne, int32_t *restrict acc, uint8_t *restrict out)
{
    for (size_t x = 0; x < ne; x++) {
        acc[x] = REDUCEV_ONE / 2;
    }
    for (int t = 0; t < n_taps; t++) {
        const uint8_t *restrict p = rows[t];
        int32_t wt = w[t];
        if (wt == 0) {
            continue; /* the kernel's zeros, at whole-number offsets */
        }
        for (size_t x = 0; x < ne; x++) {
            acc[x] += wt * (int32_t)p[x];
        }
    }
    for (size_t x = 0; x < ne; x++) {
        int32_t v = acc[x] >> REDUCEV_SHIFT;
        out[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with AVX2, 16 pixels at a time with their sums in two
 * registers across all the taps: pixels of two taps interleaved as 16-bit
 * pairs, multiplied by the pair of weights and summed into 32 bits by one
 * vpmaddwd. Chosen at run time when the CPU has AVX2. */
__attribute__((target("avx2"))) static void
reducev_row_avx2(const uint8_t *const *rows, const int16_t *w, int n_taps,
                 size_t ne, int32_t *restrict acc, uint8_t *restrict out)
{
    const __m256i round = _mm256_set1_epi32(REDUCEV_ONE / 2);
    const __m128i zero = _mm_setzero_si128();
    size_t x = 0;
    for (; x + 16 <= ne; x += 16) {
        __m256i a0 = round, a1 = round;
        int t = 0;
        for (; t + 1 < n_taps; t += 2) {
            __m128i p0 = _mm_loadu_si128((const __m128i *)(rows[t] + x));
            __m128i p1 = _mm_loadu_si128((const __m128i *)(rows[t + 1] + x));
            __m256i wp = _mm256_set1_epi32(
                (int32_t)((uint32_t)(uint16_t)w[t] |
                          ((uint32_t)(uint16_t)w[t + 1] << 16)));
            __m256i lo = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(p0, p1));
            __m256i hi = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(p0, p1));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(lo, wp));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(hi, wp));
        }
        if (t < n_taps) {
            __m128i p0 = _mm_loadu_si128((const __m128i *)(rows[t] + x));
            __m256i wp = _mm256_set1_epi32((int32_t)(uint16_t)w[t]);
            __m256i lo = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(p0, zero));
            __m256i hi = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(p0, zero));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(lo, wp));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(hi, wp));
        }
        a0 = _mm256_srai_epi32(a0, REDUCEV_SHIFT);
        a1 = _mm256_srai_epi32(a1, REDUCEV_SHIFT);
        /* packs works within 128-bit lanes: put x0..15 back in order. */
        __m256i s16 =
            _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
        __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(s16),
                                         _mm256_extracti128_si256(s16, 1));
        _mm_storeu_si128((__m128i *)(out + x), bytes);
    }
    if (x < ne) {
        const uint8_t *tail[REDUCE_MAX_TAPS];
        for (int t = 0; t < n_taps; t++) {
            tail[t] = rows[t] + x;
        }
        reducev_row_c(tail, w, n_taps, ne - x, acc, out + x);
    }
}
#endif

/* The row function for this CPU. */
static reducev_row_fn
reducev_pick(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    /* KILN_REDUCEV_PORTABLE=1: the portable loop on any CPU (its tests). */
    const char *portable = getenv("KILN_REDUCEV_PORTABLE");
    if ((portable == NULL || strcmp(portable, "1") != 0) &&
        __builtin_cpu_supports("avx2")) {
        return reducev_row_avx2;
    }
#endif
    return reducev_row_c;
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
    const uint8_t *rows[REDUCE_MAX_TAPS];
    int n_taps = plan->l.n_taps;
    if (n_taps > REDUCE_MAX_TAPS) {
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
        vshrink > OPS_REDUCE_MAX) {
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
