/*
 * The vertical half of a Lanczos3 reduction of 8-bit rows (kern.h), kiln's
 * own (issue 13). libvips 8.14's vips_reducev() for uchar runs a scalar
 * loop down each column with 12-bit coefficients: a fifth of the CPU of
 * the thumbnail batch. This one works a row at a time, so the inner loop
 * is a contiguous multiply-add along the row (AVX2 when the CPU has it,
 * chosen at run time; a loop the compiler vectorises otherwise), with
 * 14-bit coefficients in 32-bit sums: no rounding between taps. The
 * thumbnails of docs/optimizer.md's table score 0.02 to 3.9 dB better
 * than with libvips' own pass.
 */
#include "kern.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* One output row, portable: acc[x] = the sum over taps of w[t] x
 * rows[t][x], then rounded and clamped into out; the compiler vectorises
 * each tap's pass along the row (O3). */
__attribute__((optimize("O3"))) static void
reducev_row_c(const uint8_t *const *rows, const int16_t *w, int n_taps,
              size_t ne, int32_t *restrict acc, uint8_t *restrict out)
{
    for (size_t x = 0; x < ne; x++) {
        acc[x] = KERN_LANCZOS3_ONE / 2;
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
        int32_t v = acc[x] >> KERN_LANCZOS3_SHIFT;
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
    const __m256i round = _mm256_set1_epi32(KERN_LANCZOS3_ONE / 2);
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
        a0 = _mm256_srai_epi32(a0, KERN_LANCZOS3_SHIFT);
        a1 = _mm256_srai_epi32(a1, KERN_LANCZOS3_SHIFT);
        /* packs works within 128-bit lanes: put x0..15 back in order. */
        __m256i s16 =
            _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
        __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(s16),
                                         _mm256_extracti128_si256(s16, 1));
        _mm_storeu_si128((__m128i *)(out + x), bytes);
    }
    if (x < ne) {
        const uint8_t *tail[KERN_MAX_TAPS];
        for (int t = 0; t < n_taps; t++) {
            tail[t] = rows[t] + x;
        }
        reducev_row_c(tail, w, n_taps, ne - x, acc, out + x);
    }
}
#endif

kern_reducev_fn
kern_reducev_pick(void)
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
