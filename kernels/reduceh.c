/*
 * The horizontal half of a Lanczos3 reduction of 8-bit rows (kern.h),
 * kiln's own (issue 13), the companion of reducev.c: libvips 8.14's
 * vips_reduceh() for uchar is a scalar loop over each output pixel's taps
 * with 12-bit weights, about a fifth of the thumbnail batch's CPU.
 *
 * For 3 and 4 bands the taps go in pairs: the two pixels' bytes are
 * shuffled into band pairs (SSSE3 pshufb), widened to 16 bits and
 * multiplied by the pair of weights and summed into 32 bits by one
 * pmaddwd. With AVX2 four rows go at once, two to a 256-bit register, so
 * that each pair of weights is loaded once for four pixels and the loop
 * over columns is not a call per pixel: the one-row SSE4.1 loop cost 9 ns
 * a pixel in the thumbnail batch (16% of its CPU), this one about 40%
 * of that. Chosen at run time: AVX2, else SSE4.1, else the plain loop,
 * which also takes every other case and the pixels near the edges.
 */
#include "kern.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define REDUCEH_SHIFT KERN_LANCZOS3_SHIFT
#define REDUCEH_ONE KERN_LANCZOS3_ONE

enum { REDUCEH_PLAIN, REDUCEH_SSE41, REDUCEH_AVX2 };

void
kern_reduceh_free(kern_reduceh *k)
{
    kern_lanczos3_free(&k->l);
    free(k->wpair);
    k->wpair = NULL;
}

int
kern_reduceh_init(kern_reduceh *k, int in_w, int bands, double hshrink)
{
    memset(k, 0, sizeof *k);
    if (kern_lanczos3_plan(in_w, hshrink, &k->l) != 0) {
        return -1;
    }
    k->bands = bands;
    int n = k->l.n_taps;
    k->n_pairs = (n + 1) / 2;
    k->wpair =
        malloc((size_t)k->l.out_n * (size_t)k->n_pairs * sizeof(int32_t));
    if (k->wpair == NULL) {
        kern_reduceh_free(k);
        return -1;
    }
    for (int x = 0; x < k->l.out_n; x++) {
        const int16_t *w = &k->l.weights[(size_t)x * n];
        int32_t *wp = &k->wpair[(size_t)x * k->n_pairs];
        for (int i = 0; i < k->n_pairs; i++) {
            uint16_t lo = (uint16_t)w[2 * i];
            uint16_t hi = 2 * i + 1 < n ? (uint16_t)w[2 * i + 1] : 0;
            wp[i] = (int32_t)((uint32_t)lo | ((uint32_t)hi << 16));
        }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    /* KILN_REDUCEV_PORTABLE=1 takes the plain loop, =sse4.1 no AVX2: the
     * unit tests compare each path with the definition. */
    const char *portable = getenv("KILN_REDUCEV_PORTABLE");
    bool no_avx2 = portable != NULL && strcmp(portable, "sse4.1") == 0;
    if ((portable == NULL || strcmp(portable, "1") != 0) &&
        (bands == 3 || bands == 4)) {
        k->simd = !no_avx2 && __builtin_cpu_supports("avx2") ? REDUCEH_AVX2
                  : __builtin_cpu_supports("sse4.1")         ? REDUCEH_SSE41
                                                             : REDUCEH_PLAIN;
    }
#endif
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* One output pixel of 3 or 4 bands with SSE4.1, 8 bytes readable from
 * the first pixel of each of its pairs of taps. */
__attribute__((target("sse4.1"))) static void
reduceh_pixel_sse(const uint8_t *row, const kern_reduceh *plan, int x,
                  __m128i shuffle, uint8_t *out)
{
    const int32_t *wp = &plan->wpair[(size_t)x * plan->n_pairs];
    int bands = plan->bands;
    const uint8_t *p = row + (size_t)plan->l.first[x] * bands;
    __m128i acc = _mm_set1_epi32(REDUCEH_ONE / 2);
    for (int k = 0; k < plan->n_pairs; k++, p += 2 * bands) {
        __m128i px = _mm_loadl_epi64((const __m128i *)p);
        __m128i pairs = _mm_cvtepu8_epi16(_mm_shuffle_epi8(px, shuffle));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(pairs, _mm_set1_epi32(wp[k])));
    }
    acc = _mm_srai_epi32(acc, REDUCEH_SHIFT);
    acc = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
    uint32_t v = (uint32_t)_mm_cvtsi128_si32(acc);
    memcpy(out, &v, (size_t)bands);
}

/* Columns xs..xe-1 of four rows with AVX2, every one with 8 bytes
 * readable from the first pixel of each of its pairs of taps; outs[i]
 * is where rows[i]'s column xs goes. Rows 0 and 1 share one register,
 * 2 and 3 the other, so each pair of weights is broadcast once for four
 * pixels. A 3-band pixel is stored as 4 bytes, the fourth being the next
 * pixel's first band, which is written after it, except at x_end - 1,
 * the region's last column. A caller with fewer than four rows repeats
 * the last: the same bytes are then written twice. */
__attribute__((target("avx2"))) static void
reduceh_rows4_avx2(const uint8_t *const rows[4], uint8_t *const outs[4],
                   const kern_reduceh *plan, int xs, int xe, int x_end)
{
    int bands = plan->bands, np = plan->n_pairs;
    /* Within each 128-bit lane: band b of pixel 0 then of pixel 1 as
     * 16-bit words, b < bands; the rest zero (index -1). */
    const __m256i shuffle =
        bands == 4 ? _mm256_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1,
                                      3, -1, 7, -1, 0, -1, 4, -1, 1, -1, 5, -1,
                                      2, -1, 6, -1, 3, -1, 7, -1)
                   : _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1,
                                      -1, -1, -1, -1, 0, -1, 3, -1, 1, -1, 4,
                                      -1, 2, -1, 5, -1, -1, -1, -1, -1);
    const __m256i round = _mm256_set1_epi32(REDUCEH_ONE / 2);
    const __m256i zero = _mm256_setzero_si256();
    for (int x = xs; x < xe; x++) {
        const int32_t *wp = &plan->wpair[(size_t)x * np];
        size_t off = (size_t)plan->l.first[x] * bands;
        const uint8_t *p0 = rows[0] + off, *p1 = rows[1] + off;
        const uint8_t *p2 = rows[2] + off, *p3 = rows[3] + off;
        __m256i a01 = round, a23 = round;
        for (int k = 0; k < np; k++) {
            size_t o = (size_t)k * 2 * bands;
            __m256i w = _mm256_set1_epi32(wp[k]);
            __m256i v01 = _mm256_inserti128_si256(
                _mm256_castsi128_si256(
                    _mm_loadl_epi64((const __m128i *)(p0 + o))),
                _mm_loadl_epi64((const __m128i *)(p1 + o)), 1);
            __m256i v23 = _mm256_inserti128_si256(
                _mm256_castsi128_si256(
                    _mm_loadl_epi64((const __m128i *)(p2 + o))),
                _mm_loadl_epi64((const __m128i *)(p3 + o)), 1);
            a01 = _mm256_add_epi32(
                a01, _mm256_madd_epi16(_mm256_shuffle_epi8(v01, shuffle), w));
            a23 = _mm256_add_epi32(
                a23, _mm256_madd_epi16(_mm256_shuffle_epi8(v23, shuffle), w));
        }
        a01 = _mm256_srai_epi32(a01, REDUCEH_SHIFT);
        a23 = _mm256_srai_epi32(a23, REDUCEH_SHIFT);
        /* Lane 0: row 0's bands, then row 2's; lane 1: rows 1 and 3. */
        __m256i pk = _mm256_packus_epi16(_mm256_packs_epi32(a01, a23), zero);
        __m128i l0 = _mm256_castsi256_si128(pk);
        __m128i l1 = _mm256_extracti128_si256(pk, 1);
        uint32_t v[4] = {(uint32_t)_mm_cvtsi128_si32(l0),
                         (uint32_t)_mm_cvtsi128_si32(l1),
                         (uint32_t)_mm_extract_epi32(l0, 1),
                         (uint32_t)_mm_extract_epi32(l1, 1)};
        size_t at = (size_t)(x - xs) * bands;
        size_t len = bands == 4 || x + 1 < x_end ? 4 : 3;
        for (int i = 0; i < 4; i++) {
            memcpy(outs[i] + at, &v[i], len);
        }
    }
}
#endif

/* One output pixel by the plain loop, its taps clamped to lo..hi, which
 * is the image's edge or beyond the taps. */
static void
reduceh_pixel_plain(const uint8_t *row, const kern_reduceh *plan, int lo,
                    int hi, int x, uint8_t *out)
{
    int bands = plan->bands, first = plan->l.first[x];
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

void
kern_reduceh_rows(const kern_reduceh *k, const uint8_t *const *rows,
                  uint8_t *const *outs, int n_rows, int lo, int hi, int left,
                  int right)
{
    int bands = k->bands;
    /* Columns xs..xe-1 go through a SIMD path: their taps start inside
     * lo..hi and 8 bytes are readable from each pair's first pixel. An
     * interval, as first[] never decreases. */
    int xs = right, xe = right;
    if (k->simd != REDUCEH_PLAIN) {
        xs = left;
        while (xs < right && k->l.first[xs] < lo) {
            xs++;
        }
        xe = xs;
        while (xe < right &&
               (k->l.first[xe] + 2 * k->n_pairs - 2) * bands + 8 <=
                   (hi + 1) * bands) {
            xe++;
        }
    }
    size_t at = (size_t)(xs - left) * bands;
    for (int y = 0; y < n_rows;) {
        int n = 1;
#if defined(__x86_64__) && defined(__GNUC__)
        if (k->simd == REDUCEH_AVX2 && xs < xe) {
            n = n_rows - y < 4 ? n_rows - y : 4;
            const uint8_t *r4[4];
            uint8_t *o4[4];
            for (int i = 0; i < 4; i++) {
                int yy = y + (i < n ? i : n - 1);
                r4[i] = rows[yy];
                o4[i] = outs[yy] + at;
            }
            reduceh_rows4_avx2(r4, o4, k, xs, xe, right);
        } else if (k->simd == REDUCEH_SSE41) {
            __m128i shuffle = bands == 4
                                  ? _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, -1,
                                                  -1, -1, -1, -1, -1, -1, -1)
                                  : _mm_setr_epi8(0, 3, 1, 4, 2, 5, -1, -1, -1,
                                                  -1, -1, -1, -1, -1, -1, -1);
            for (int x = xs; x < xe; x++) {
                reduceh_pixel_sse(rows[y], k, x, shuffle,
                                  outs[y] + (size_t)(x - left) * bands);
            }
        }
#endif
        /* The edges after the middle: a 4-byte store there wrote into
         * the first of them. */
        for (int i = 0; i < n; i++, y++) {
            for (int x = left; x < xs; x++) {
                reduceh_pixel_plain(rows[y], k, lo, hi, x,
                                    outs[y] + (size_t)(x - left) * bands);
            }
            for (int x = xe; x < right; x++) {
                reduceh_pixel_plain(rows[y], k, lo, hi, x,
                                    outs[y] + (size_t)(x - left) * bands);
            }
        }
    }
}
