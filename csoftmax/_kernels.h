/* Chunk kernels of csoftmax: the innermost, vectorised loops.
 *
 * Included by the dense Cython module, which setup.py compiles once per
 * instruction-set level (baseline, AVX2+FMA, AVX-512).  The vector width is
 * chosen here from the compiler's target macros, so the same source yields
 * 2-, 4- or 8-lane kernels.  With GCC and Clang the kernels use generic vector
 * extensions (portable C, no intrinsics); other compilers get the same code
 * with one-lane "vectors", i.e. plain scalar loops.
 *
 * Why hand-written: the compiler will not vectorise a dot product or a row
 * sum without -ffast-math (it may not reassociate), and -ffast-math is ruled
 * out because it breaks inf/NaN handling.  Here the summation order is fixed
 * explicitly (lane-wise partial sums, then a fixed tree), so results are
 * deterministic for a given build and CPU.  exp and log are evaluated with
 * branch-free polynomials that vectorise (libm calls do not).
 *
 * Layout conventions: a chunk holds at most CSM_CHUNK rows; its logits live in
 * a row-major buffer Z with leading dimension ldz = csm_padded(K), and the
 * padding columns hold -inf so that they contribute exp(-inf) = 0.
 */
#ifndef CSOFTMAX_KERNELS_H
#define CSOFTMAX_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CSM_RESTRICT __restrict__
#else
#define CSM_RESTRICT __restrict
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CSM_VECTOR_EXT 1
#define CSM_INLINE static inline __attribute__((always_inline))
#else
#define CSM_VECTOR_EXT 0
#define CSM_INLINE static __forceinline
#endif

/* Lanes of float64 per vector, and register-block sizes that fit the register
 * file (32 vector registers with AVX-512, 16 otherwise). */
#if CSM_VECTOR_EXT && defined(__AVX512F__)
#define CSM_VL 8
#define CSM_KB 8
#elif CSM_VECTOR_EXT && defined(__AVX2__)
#define CSM_VL 4
#define CSM_KB 4
#elif CSM_VECTOR_EXT && (defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__) || defined(__VSX__))
#define CSM_VL 2
#define CSM_KB 4
#else
#undef CSM_VECTOR_EXT
#define CSM_VECTOR_EXT 0
#define CSM_VL 1
#define CSM_KB 4
#endif

#define CSM_CHUNK 64
/* Long rows (the blocked path of the logits, _kernels_logits.h) are also
 * prefetched in bulk at the start of each tile: into L2 this many bytes
 * ahead of the rows in use, and into L1 the rows CSM_PREFETCH_L1_BYTES on
 * (measured on MNIST-like rows, D = 784: without them the logits take 15%
 * longer; on short rows they cost more than they bring, see there). */
#ifndef CSM_PREFETCH_BYTES
#define CSM_PREFETCH_BYTES 32768
#endif
#ifndef CSM_PREFETCH_L1_BYTES
#define CSM_PREFETCH_L1_BYTES 4096
#endif
/* The logits of a chunk (_kernels_logits.h). */
/* Long rows are cut into blocks of this many bytes: the CSM_VL rows of a
 * tile then stay in L1 while every class pair of a group is done, instead
 * of being read again from L2 for each pair (measured on MNIST-like rows,
 * D = 784: the logits had taken twice the time of the gradient's rank update
 * for the same arithmetic). */
#define CSM_LOGITS_BLOCK_BYTES 2048
/* Class pairs whose accumulators are kept, in memory, across the blocks. */
#define CSM_LOGITS_GROUP 8
/* Tiles ahead whose rows the first class block of a tile prefetches, a
 * cache line at a time as it goes, and the fewest classes for which short
 * rows are prefetched that way (_kernels_logits.h). */
#define CSM_LOGITS_AHEAD 2
#define CSM_LOGITS_STREAM_CLASSES 8
/* float64 rows of at most this many features with fewer than CSM_VL classes
 * take the row tile (csm_logits_few_tile_d), longer ones the pair tile.
 * Measured, 200000 rows from memory, 1 thread, pair tile / row tile (ms):
 * D = 13, K = 3: 3.8 / 0.8; D = 64, K = 3: 4.7 / 4.3; D = 128, K = 7: 19.2 /
 * 17.1; D = 160, K = 5: 21.2 / 18.3; D = 192, K = 3: 15.4 / 20.0; D = 256,
 * K = 3: 19.1 / 26.4 (the pair tile's bulk prefetches win on long rows). */
#define CSM_FEW_FEATURES 128

/* Software prefetch into L2 (locality 1), into L1, and into L2 for writing. */
#if defined(__GNUC__) || defined(__clang__)
#define CSM_PREFETCH(p) __builtin_prefetch((p), 0, 1)
#define CSM_PREFETCH_L1(p) __builtin_prefetch((p), 0, 3)
#define CSM_PREFETCH_WRITE(p) __builtin_prefetch((p), 1, 1)
#else
#define CSM_PREFETCH(p) ((void)(p))
#define CSM_PREFETCH_L1(p) ((void)(p))
#define CSM_PREFETCH_WRITE(p) ((void)(p))
#endif

#if CSM_VECTOR_EXT
/* Vectors keep their natural alignment: they are read and written through
 * memcpy (csm_load_d, csm_store_d), never through cast pointers, so data need
 * not be aligned.  Declared with aligned(8), GCC kept the 32-byte vectors of
 * the AVX2 build in memory, storing and reloading every value through the
 * stack (measured on the digits-like case: logits 82 ms instead of 7.7). */
typedef double csm_vd __attribute__((vector_size(CSM_VL * 8)));
typedef int64_t csm_vi __attribute__((vector_size(CSM_VL * 8)));
typedef float csm_vf __attribute__((vector_size(CSM_VL * 4)));
typedef uint8_t csm_vb __attribute__((vector_size(CSM_VL)));
/* Broadcasts.  x - 0 is x for every double (-0 included), so the compiler
 * drops the subtraction and emits a plain broadcast, which folds into an FMA
 * as a memory operand; 0 + x would turn -0 into +0 and costs a scalar add
 * and a separate broadcast per use. */
#define CSM_SET1(x) ((double)(x) - (csm_vd){0})
#define CSM_SET1I(x) ((csm_vi){0} + (int64_t)(x))
#define CSM_BITS(v) ((csm_vi)(v))
#define CSM_FROM_BITS(v) ((csm_vd)(v))
#define CSM_LANE(v, l) ((v)[l])
CSM_INLINE csm_vd csm_load_d(const double* p) { csm_vd v; memcpy(&v, p, sizeof v); return v; }
/* float lanes widened to float64.  GCC splits the generic conversion into
 * halves and reassembles them (four instructions instead of one). */
CSM_INLINE csm_vd csm_widen_f(csm_vf v) {
#if defined(__AVX512F__) && CSM_VL == 8
    return (csm_vd)_mm512_cvtps_pd((__m256)v);
#elif defined(__AVX__) && CSM_VL == 4
    return (csm_vd)_mm256_cvtps_pd((__m128)v);
#else
    return __builtin_convertvector(v, csm_vd);
#endif
}
CSM_INLINE csm_vd csm_load_f(const float* p) {
    csm_vf v; memcpy(&v, p, sizeof v);
    return csm_widen_f(v);
}
/* uint8 lanes widened to float64.  GCC lowers a vector conversion from
 * uint8 to double to one scalar conversion per lane (uint8 X then ran at
 * half the speed of float64 X); zero-extending to int32 first maps to
 * vpmovzxbd + vcvtdq2pd. */
#if defined(__AVX512F__) && CSM_VL == 8
CSM_INLINE csm_vd csm_load_u8(const uint8_t* p) {
    return (csm_vd)_mm512_cvtepi32_pd(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}
#elif defined(__AVX2__) && CSM_VL == 4
CSM_INLINE csm_vd csm_load_u8(const uint8_t* p) {
    int32_t four; memcpy(&four, p, sizeof four);
    return (csm_vd)_mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
}
#else
CSM_INLINE csm_vd csm_load_u8(const uint8_t* p) {
    csm_vd v;
    for (int l = 0; l < CSM_VL; l++) v[l] = (double)p[l];
    return v;
}
#endif
CSM_INLINE void csm_store_d(double* p, csm_vd v) { memcpy(p, &v, sizeof v); }
/* mask ? a : b, lane-wise, for masks made by vector comparisons (all ones/zeros). */
CSM_INLINE csm_vd csm_select(csm_vi mask, csm_vd a, csm_vd b) {
    return CSM_FROM_BITS((CSM_BITS(a) & mask) | (CSM_BITS(b) & ~mask));
}
#else
typedef double csm_vd;
typedef int64_t csm_vi;
#define CSM_SET1(x) ((double)(x))
#define CSM_SET1I(x) ((int64_t)(x))
#define CSM_LANE(v, l) (v)
CSM_INLINE csm_vi csm_bits_of(double v) { csm_vi i; memcpy(&i, &v, 8); return i; }
CSM_INLINE double csm_double_of(csm_vi i) { double v; memcpy(&v, &i, 8); return v; }
#define CSM_BITS(v) csm_bits_of(v)
#define CSM_FROM_BITS(v) csm_double_of(v)
CSM_INLINE csm_vd csm_load_d(const double* p) { return *p; }
CSM_INLINE csm_vd csm_load_f(const float* p) { return (double)*p; }
CSM_INLINE csm_vd csm_load_u8(const uint8_t* p) { return (double)*p; }
CSM_INLINE void csm_store_d(double* p, csm_vd v) { *p = v; }
CSM_INLINE csm_vd csm_select(csm_vi mask, csm_vd a, csm_vd b) { return mask ? a : b; }
#endif

/* Comparisons giving all-ones / all-zeros masks in both modes. */
#if CSM_VECTOR_EXT
#define CSM_LT(a, b) ((csm_vi)((a) < (b)))
#define CSM_EQ(a, b) ((csm_vi)((a) == (b)))
#else
#define CSM_LT(a, b) ((csm_vi)(((a) < (b)) ? -1 : 0))
#define CSM_EQ(a, b) ((csm_vi)(((a) == (b)) ? -1 : 0))
#endif

static inline ptrdiff_t csm_prefetch_rows(ptrdiff_t row_bytes) {
    const ptrdiff_t rows = CSM_PREFETCH_BYTES / (row_bytes > 0 ? row_bytes : 1);
    return rows > 4 ? rows : 4;
}

/* Prefetches for the logits tile of CSM_VL rows that starts at row r of X
 * (row stride and row length in bytes): the rows l2_ahead further on into L2
 * and, when l1_ahead > 0, the rows l1_ahead further on into L1.  Integer
 * arithmetic: the addresses may lie past either end of X, which is harmless
 * (prefetches never fault). */
CSM_INLINE void csm_prefetch_tile(const void* X, ptrdiff_t r, ptrdiff_t stride, ptrdiff_t row_bytes,
                                  ptrdiff_t l2_ahead, ptrdiff_t l1_ahead)
{
    for (int j = 0; j < CSM_VL; j++) {
        const uintptr_t far = (uintptr_t)X + (uintptr_t)((r + j + l2_ahead) * stride);
        for (ptrdiff_t off = 0; off < row_bytes; off += 64) CSM_PREFETCH((const void*)(far + (uintptr_t)off));
        if (l1_ahead > 0) {
            const uintptr_t near = (uintptr_t)X + (uintptr_t)((r + j + l1_ahead) * stride);
            for (ptrdiff_t off = 0; off < row_bytes; off += 64) CSM_PREFETCH_L1((const void*)(near + (uintptr_t)off));
        }
    }
}

/* Ask for the n_bytes at p (any address: prefetches never fault).  The empty
 * asm marks the function as having an effect: prefetches alone do not count
 * as one, and a caller that only prefetches would otherwise be removed as
 * dead code.  Used for the per-row inputs read a chunk at a time beside X
 * (labels, weights): with bit-packed X they are as many bytes as X, and
 * loading them waited on memory (measured: the chunk loop's own share of the
 * digits-like PackedBits gradient at 1 thread 4.4% -> 3.3%). */
static void csm_prefetch_span(const void* p, ptrdiff_t n_bytes)
{
    for (ptrdiff_t off = 0; off < n_bytes; off += 64) CSM_PREFETCH((const char*)p + off);
#if defined(__GNUC__) || defined(__clang__)
    __asm__ __volatile__("" : : : "memory");
#endif
}

/* label[r] = labels[r] as a double where it is in [0, K), else -1 (a row the
 * loss skips); returns how many were outside.  Integer masks, no branch or
 * select of doubles, so that GCC vectorises it (written with either, in the
 * chunk loop, it ran one label at a time: ~2.5% of the digits-like bit-packed
 * gradient). */
static ptrdiff_t csm_label_doubles(const int64_t* labels, ptrdiff_t n, ptrdiff_t K, double* label)
{
    int64_t n_bad = 0;
    for (ptrdiff_t r = 0; r < n; r++) {
        const int64_t l = labels[r];
        const int64_t outside = -(int64_t)((uint64_t)l >= (uint64_t)K);   /* all ones where outside */
        label[r] = (double)((l & ~outside) | outside);                  /* l, or -1 */
        n_bad -= outside;
    }
    return (ptrdiff_t)n_bad;
}

/* Ask for the row_bytes of each row data + order[j] * row_stride (bytes) for
 * j < n_rows. */
static void csm_prefetch_gather(const char* data, const int64_t* order, ptrdiff_t n_rows,
                                ptrdiff_t row_stride, ptrdiff_t row_bytes)
{
    for (ptrdiff_t j = 0; j < n_rows; j++) csm_prefetch_span(data + order[j] * row_stride, row_bytes);
}

/* Fisher-Yates shuffle of a[0:n] in place, driven by splitmix64 from seed
 * (SGD's row order for an epoch).  The index below i + 1 is a 32 x 32-bit
 * multiply-shift of the random bits (no division) while i + 1 fits 32 bits. */
static void csm_shuffle(int64_t* a, ptrdiff_t n, uint64_t seed)
{
    uint64_t state = seed;
    for (ptrdiff_t i = n - 1; i > 0; i--) {
        uint64_t x = (state += 0x9E3779B97F4A7C15ULL);
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        x ^= x >> 31;
        const uint64_t bound = (uint64_t)i + 1;
        const ptrdiff_t j = (ptrdiff_t)(bound <= 0xFFFFFFFFULL ? ((x >> 32) * bound) >> 32 : x % bound);
        const int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static inline ptrdiff_t csm_padded(ptrdiff_t K) { return (K + CSM_VL - 1) / CSM_VL * CSM_VL; }

/* n items in blocks of at most `most`: the size of the blocks, as even as the
 * fewest blocks allow (the last may be smaller), e.g. 10 -> 5 + 5 rather
 * than 8 + 2 for at most 8, so every block's register tile stays full. */
static inline ptrdiff_t csm_even_block(ptrdiff_t n, ptrdiff_t most) {
    const ptrdiff_t blocks = (n + most - 1) / most;
    return blocks > 0 ? (n + blocks - 1) / blocks : 1;
}

/* Sum of the lanes in a fixed tree order. */
CSM_INLINE double csm_hsum(csm_vd v) {
#if CSM_VL == 8
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
#elif CSM_VL == 4
    return (v[0] + v[2]) + (v[1] + v[3]);
#elif CSM_VL == 2
    return v[0] + v[1];
#else
    return v;
#endif
}

/* Keep a loaded vector in a register.  A tile that multiplies one vector of
 * X by two vectors of W is written with one load, but GCC folds the load into
 * both FMAs as a memory operand; loads then outnumber FMAs, and on cores that
 * load one 512-bit vector per cycle the tile runs at the speed of its loads
 * (measured: logits of the digits-like case 11.4 ms instead of 8).  The empty
 * asm makes the value opaque, so it is loaded once. */
#if CSM_VECTOR_EXT && (defined(__x86_64__) || defined(__i386__))
#define CSM_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif CSM_VECTOR_EXT && defined(__aarch64__)
#define CSM_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define CSM_IN_REGISTER(v) ((void)0)
#endif

/* Shuffles of two vectors (lane indices into the concatenation of a and b);
 * older GCC takes the indices as a vector of mask_type, integers as wide as
 * the lanes. */
#if CSM_VECTOR_EXT
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define CSM_SHUFFLE_AS(mask_type, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define CSM_SHUFFLE_AS(mask_type, a, b, ...) __builtin_shuffle(a, b, (mask_type){__VA_ARGS__})
#endif
#define CSM_SHUFFLE(a, b, ...) CSM_SHUFFLE_AS(csm_vi, a, b, __VA_ARGS__)
#endif

#if CSM_VECTOR_EXT && CSM_VL >= 2
/* Two vectors' lanes in pairs, the first stage of csm_transpose: pair i of
 * even is (a[2i], b[2i]), pair i of odd (a[2i + 1], b[2i + 1]).  For two
 * classes of CSM_VL rows, each pair is one row's two values. */
CSM_INLINE void csm_pair_lanes(csm_vd a, csm_vd b, csm_vd* even, csm_vd* odd) {
#if CSM_VL == 8
    *even = CSM_SHUFFLE(a, b, 0, 8, 2, 10, 4, 12, 6, 14);
    *odd = CSM_SHUFFLE(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
#elif CSM_VL == 4
    *even = CSM_SHUFFLE(a, b, 0, 4, 2, 6);
    *odd = CSM_SHUFFLE(a, b, 1, 5, 3, 7);
#else
    *even = CSM_SHUFFLE(a, b, 0, 2);
    *odd = CSM_SHUFFLE(a, b, 1, 3);
#endif
}
#endif

/* m[i][j] -> m[j][i] for a CSM_VL x CSM_VL block held in registers
 * (log2(CSM_VL) stages of shuffles pairing lanes, then pairs, then quads). */
CSM_INLINE void csm_transpose(csm_vd* m) {
#if CSM_VL == 8
    csm_vd t[8], u[8];
    for (int p = 0; p < 4; p++) csm_pair_lanes(m[2 * p], m[2 * p + 1], &t[2 * p], &t[2 * p + 1]);
    for (int q = 0; q < 2; q++)
        for (int e = 0; e < 2; e++) {
            u[4 * q + e] = CSM_SHUFFLE(t[4 * q + e], t[4 * q + 2 + e], 0, 1, 8, 9, 4, 5, 12, 13);
            u[4 * q + 2 + e] = CSM_SHUFFLE(t[4 * q + e], t[4 * q + 2 + e], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int f = 0; f < 4; f++) {
        m[f] = CSM_SHUFFLE(u[f], u[4 + f], 0, 1, 2, 3, 8, 9, 10, 11);
        m[4 + f] = CSM_SHUFFLE(u[f], u[4 + f], 4, 5, 6, 7, 12, 13, 14, 15);
    }
#elif CSM_VL == 4
    csm_vd t[4];
    for (int p = 0; p < 2; p++) csm_pair_lanes(m[2 * p], m[2 * p + 1], &t[2 * p], &t[2 * p + 1]);
    for (int e = 0; e < 2; e++) {
        m[e] = CSM_SHUFFLE(t[e], t[2 + e], 0, 1, 4, 5);
        m[2 + e] = CSM_SHUFFLE(t[e], t[2 + e], 2, 3, 6, 7);
    }
#elif CSM_VL == 2
    csm_pair_lanes(m[0], m[1], &m[0], &m[1]);
#else
    (void)m;
#endif
}

/* Sums of CSM_VL vectors at once: lane j of the result is the sum of the lanes
 * of a[j], in a fixed tree (the same tree as csm_hsum).  Transposing while
 * adding costs about 3 instructions per sum instead of CSM_VL. */
CSM_INLINE csm_vd csm_hsum_many(const csm_vd* a) {
#if CSM_VL == 8
    csm_vd h[4], q[2];
    for (int j = 0; j < 4; j++) {
        /* lanes: a[2j] (0+4, 1+5, 2+6, 3+7) interleaved with a[2j+1] */
        csm_vd lo = CSM_SHUFFLE(a[2 * j], a[2 * j + 1], 0, 1, 2, 3, 8, 9, 10, 11);
        csm_vd hi = CSM_SHUFFLE(a[2 * j], a[2 * j + 1], 4, 5, 6, 7, 12, 13, 14, 15);
        h[j] = lo + hi; /* [x0+x4, x1+x5, x2+x6, x3+x7, y0+y4, ...] */
    }
    for (int j = 0; j < 2; j++) {
        csm_vd lo = CSM_SHUFFLE(h[2 * j], h[2 * j + 1], 0, 1, 4, 5, 8, 9, 12, 13);
        csm_vd hi = CSM_SHUFFLE(h[2 * j], h[2 * j + 1], 2, 3, 6, 7, 10, 11, 14, 15);
        q[j] = lo + hi; /* [(x0+x4)+(x2+x6), (x1+x5)+(x3+x7), same for y, z, w] */
    }
    csm_vd lo = CSM_SHUFFLE(q[0], q[1], 0, 2, 4, 6, 8, 10, 12, 14);
    csm_vd hi = CSM_SHUFFLE(q[0], q[1], 1, 3, 5, 7, 9, 11, 13, 15);
    return lo + hi;
#elif CSM_VL == 4
    csm_vd h[2];
    for (int j = 0; j < 2; j++) {
        csm_vd lo = CSM_SHUFFLE(a[2 * j], a[2 * j + 1], 0, 1, 4, 5);
        csm_vd hi = CSM_SHUFFLE(a[2 * j], a[2 * j + 1], 2, 3, 6, 7);
        h[j] = lo + hi; /* [x0+x2, x1+x3, y0+y2, y1+y3] */
    }
    csm_vd lo = CSM_SHUFFLE(h[0], h[1], 0, 2, 4, 6);
    csm_vd hi = CSM_SHUFFLE(h[0], h[1], 1, 3, 5, 7);
    return lo + hi;
#elif CSM_VL == 2
    csm_vd lo = CSM_SHUFFLE(a[0], a[1], 0, 2);
    csm_vd hi = CSM_SHUFFLE(a[0], a[1], 1, 3);
    return lo + hi;
#else
    return a[0];
#endif
}

/* m < v ? v : m, lane-wise: the larger value, and m where either is NaN.
 * The x86 max instructions compute exactly this (their second operand is
 * returned for NaN), in one instruction instead of a compare and a blend;
 * the class-major maximum and the clamp in exp use it for every logit. */
CSM_INLINE csm_vd csm_max_keep(csm_vd m, csm_vd v) {
#if defined(__AVX512F__) && CSM_VL == 8
    return (csm_vd)_mm512_max_pd((__m512d)v, (__m512d)m);
#elif defined(__AVX__) && CSM_VL == 4
    return (csm_vd)_mm256_max_pd((__m256d)v, (__m256d)m);
#elif defined(__SSE2__) && CSM_VECTOR_EXT && CSM_VL == 2
    return (csm_vd)_mm_max_pd((__m128d)v, (__m128d)m);
#else
    return csm_select(CSM_LT(m, v), v, m);
#endif
}

/* ------------------------------------------------------------------------- */
/* exp and log                                                               */
/* ------------------------------------------------------------------------- */

#if defined(__AVX512F__) && CSM_VL == 8
/* 2^(n / 16) (1 + q) for q = exp(r) - 1, the common end of the two exps
 * below: t holds n mod 16 in its low bits (the index into the table of
 * 2^(j / 16), two registers, one permute), n16 = n / 16 (scalef floors it). */
CSM_INLINE csm_vd csm_exp_sixteenths(csm_vd t, csm_vd n16, csm_vd q) {
    const __m512d pow_lo = _mm512_setr_pd(
        1.0, 1.0442737824274138, 1.0905077326652577, 1.1387886347566916,
        1.189207115002721, 1.241857812073484, 1.2968395546510096, 1.3542555469368927);
    const __m512d pow_hi = _mm512_setr_pd(
        1.4142135623730951, 1.4768261459394993, 1.5422108254079407, 1.6104903319492543,
        1.681792830507429, 1.7562521603732995, 1.8340080864093424, 1.9152065613971474);
    const csm_vd pow_j = (csm_vd)_mm512_permutex2var_pd(pow_lo, (__m512i)t, pow_hi);
    return (csm_vd)_mm512_scalef_pd((__m512d)(pow_j * q + pow_j), (__m512d)n16);
}

/* exp(x) for x <= 0 (and -inf, NaN), within 1.13 ulp (measured against
 * expl on 40 million points over [-746, 0]).
 * x = (n / 16) ln2 + r with |r| <= ln2 / 32 (ln2 in two parts: n / 16 times
 * the high part is exact for any n this range gives, |n| < 2^15), and
 * exp(x) = 2^floor(n / 16) * 2^((n mod 16) / 16) * exp(r).  Adding 1.5 * 2^48
 * rounds x / ln2 to sixteenths, so t - 1.5 * 2^48 is n / 16 itself, ready for
 * scalef (which floors it): one multiply fewer per vector than rounding to
 * whole n and scaling by 1/16 (the same values bit for bit; 12.4 -> 11.9
 * cycles per vector in a C harness).  The sixteen values 2^(j / 16) are a
 * two-register table, looked up by one permute; the index is the low bits of
 * t, which hold n mod 16 (the permute reads only those).  exp(r) = 1 + r g(r)
 * with g of degree 5 fitted to (exp(r) - 1) / r on the small interval
 * (Chebyshev fit).  Against the table-free form below
 * (degree 10 on |r| <= ln2 / 2, 0.9 ulp), five fewer multiply-adds per vector
 * for the permute: 15.5 -> 12.3 cycles per vector in a C harness, softmax
 * of a (200000, 10) array 2.8 -> 2.5 ms at one thread.  The table's own
 * rounding is what takes the bound past 1 ulp; looking up its remainder as
 * well (a second permute) gave 0.81 ulp but kept only half the gain.
 * scalef applies 2^floor(n / 16) with one rounding, into the subnormals too.
 * x < -746 gives +0, NaN stays NaN; exp(0) is exactly 1. */
CSM_INLINE csm_vd csm_exp_nonpositive(csm_vd x) {
    const csm_vd shifter = CSM_SET1(422212465065984.0); /* 1.5 * 2^48 */
    x = csm_max_keep(x, CSM_SET1(-746.0));
    const csm_vd t = x * CSM_SET1(1.4426950408889634) + shifter;  /* 1 / ln2 */
    const csm_vd n16 = t - shifter;                                /* n / 16 */
    csm_vd r = x - n16 * CSM_SET1(0.6931471805582987);            /* ln2, high part */
    r = r - n16 * CSM_SET1(1.6465949582897082e-12);                /* low part */
    csm_vd g = CSM_SET1(0.0013889064139564714);
    g = g * r + CSM_SET1(0.008333473534080383);
    g = g * r + CSM_SET1(0.04166666666357083);
    g = g * r + CSM_SET1(0.1666666666418999);
    g = g * r + CSM_SET1(0.5000000000000001);
    g = g * r + CSM_SET1(1.0000000000000007);
    return csm_exp_sixteenths(t, n16, g * r);
}

/* exp(x) for x <= 0 as a term of a sum of exponentials shifted by their
 * maximum (logsumexp, log_softmax), reduced in base 2: y = x / ln2 is rounded
 * once, y - n / 16 is exact, and g is the polynomial above with its
 * coefficients scaled for 2^y (ln2^(j+1) times its j-th).  The reduction takes
 * one multiply and three additions, which run beside the polynomial's
 * multiply-adds, instead of three multiply-adds (measured, logsumexp of a
 * (200000, 10) array at one thread: ~4% faster; the same reduction followed by
 * a multiply by ln2 and the polynomial above kept only half of that).  The
 * rounding of y puts an error of up to |x| 2^-53 on exp(x): within a sum
 * whose largest term is 1, at most max(-x exp(x)) 2^-53 = 0.37 * 2^-53 of the
 * sum per term. */
CSM_INLINE csm_vd csm_exp_nonpositive_term(csm_vd x) {
    const csm_vd shifter = CSM_SET1(422212465065984.0); /* 1.5 * 2^48 */
    const csm_vd y = csm_max_keep(x, CSM_SET1(-746.0)) * CSM_SET1(1.4426950408889634);
    const csm_vd t = y + shifter;
    const csm_vd n16 = t - shifter;
    const csm_vd r = y - n16;
    csm_vd g = CSM_SET1(0.00015403724755877636);
    g = g * r + CSM_SET1(0.0013333782471405997);
    g = g * r + CSM_SET1(0.009618129106913849);
    g = g * r + CSM_SET1(0.05550410865657363);
    g = g * r + CSM_SET1(0.24022650695910075);
    g = g * r + CSM_SET1(0.6931471805599457);
    return csm_exp_sixteenths(t, n16, g * r);
}
#else
/* Without AVX-512 (no two-register permute for the table): exp(x) for
 * x <= 0 (and -inf, NaN), within 0.85 ulp with FMA (AVX2), 1.14 ulp
 * without it (baseline x86-64 rounds each step of the polynomial).
 * x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, so r is exact enough),
 * exp(r) = 1 + r g(r) with g of degree 10 fitted to (exp(r) - 1) / r on that
 * interval (Chebyshev fit; 0.09 ulp with these double coefficients, against
 * 1e-18 for the degree-13 Taylor series it replaces, which cost three more
 * multiply-adds per vector: exp is most of the softmax arithmetic).  2^n is
 * applied in two halves so subnormal results (x < -708) stay right.  x < -746
 * gives +0, NaN stays NaN; exp(0) is exactly 1. */
CSM_INLINE csm_vd csm_exp_nonpositive(csm_vd x) {
    const csm_vd shifter = CSM_SET1(6755399441055744.0); /* 1.5 * 2^52 */
    x = csm_max_keep(x, CSM_SET1(-746.0));
    csm_vd t = x * CSM_SET1(1.4426950408889634) + shifter;
    csm_vd n = t - shifter;
    csm_vi ni = CSM_BITS(t) - CSM_BITS(shifter);
    csm_vd r = x - n * CSM_SET1(0.693147180559890330187);   /* ln2 high part */
    r = r - n * CSM_SET1(5.49792301870850242169e-14);       /* ln2 low part */
    csm_vd g = CSM_SET1(2.510520637395701e-08);
    g = g * r + CSM_SET1(2.7626357241447223e-07);
    g = g * r + CSM_SET1(2.7557255425746435e-06);
    g = g * r + CSM_SET1(2.4801504346997686e-05);
    g = g * r + CSM_SET1(0.00019841269874800493);
    g = g * r + CSM_SET1(0.0013888888932488599);
    g = g * r + CSM_SET1(0.008333333333326141);
    g = g * r + CSM_SET1(0.04166666666657314);
    g = g * r + CSM_SET1(0.1666666666666667);
    g = g * r + CSM_SET1(0.5000000000000006);
    g = g * r + CSM_SET1(1.0);
    const csm_vd p = g * r + CSM_SET1(1.0);
    csm_vi n1 = ni >> 1;
    csm_vi n2 = ni - n1;
    csm_vd s1 = CSM_FROM_BITS((n1 + CSM_SET1I(1023)) << 52);
    csm_vd s2 = CSM_FROM_BITS((n2 + CSM_SET1I(1023)) << 52);
    return (p * s1) * s2;
}
/* Without scalef the base-2 reduction saves nothing: the same exp. */
#define csm_exp_nonpositive_term csm_exp_nonpositive
#endif

#if defined(__AVX512F__) && CSM_VL == 8
/* log(x) for positive x (subnormals too); +inf and NaN are passed through.
 * Every caller takes the log of a sum of exponentials whose largest term is
 * 1, or of a product of such sums, so x >= 1: there the result is within
 * 1.2 ulp (measured against logl on 10 million points each of [1, 16],
 * [1, 1.0001] and [1, 2^1000]); below 1 the error is absolute, ~2^-53.
 * x = 2^e m with m in [1, 2) (getexp, getmant); with c_j = 1 + j / 16 for
 * the top four bits j of m, log(x) = e ln2 + t_j + log1p(r), where
 * t_j = -log(round(1 / c_j)) and r = m round(1 / c_j) - 1, in [0, 1/16),
 * rounded once (an FMA).  round(1 / c_j) and t_j (in two parts) are
 * two-register tables, each looked up by one permute, whose index is the top
 * of the mantissa (the permute reads the low four bits of the bits shifted).
 * log1p(r) = r + r^2 P(r), P of degree 7 fitted to (log1p(r) - r) / r^2
 * (least squares reweighted to minimax; relative error 2^-56).  The high
 * parts of e ln2 and t_j are multiples of 2^-42, so their sum is exact and
 * is added last to the small rest.  Against the table-free form below (a
 * division and a chain of multiply-adds, then three longer): 8.1 -> 5.2 ns
 * per vector in a C harness, logsumexp of a (200000, 10) array at one thread
 * 1.58 -> 1.47 ms.  log(1) is exactly 0 (j = 0: c_0 = 1, r = 0). */
CSM_INLINE csm_vd csm_log_positive(csm_vd x) {
    /* round(1 / c_j) for j < 8 and j >= 8 */
    const __m512d inv_lo = _mm512_setr_pd(
        1.0, 0.9411764705882353, 0.8888888888888888, 0.8421052631578947,
        0.8, 0.7619047619047619, 0.7272727272727273, 0.6956521739130435);
    const __m512d inv_hi = _mm512_setr_pd(
        0.6666666666666666, 0.64, 0.6153846153846154, 0.5925925925925926,
        0.5714285714285714, 0.5517241379310345, 0.5333333333333333, 0.5161290322580645);
    /* t_j, rounded to a multiple of 2^-42, for j < 8 and j >= 8 */
    const __m512d t_lo = _mm512_setr_pd(
        0.0, 0.06062462181648698, 0.11778303565643, 0.17185025692674571,
        0.22314355131425145, 0.2719337154835557, 0.31845373111855224, 0.3629054936893681);
    const __m512d t_hi = _mm512_setr_pd(
        0.40546510810827385, 0.4462871026285029, 0.4855078157816024, 0.5232481437644765,
        0.5596157879353996, 0.5947071077466717, 0.6286086594222979, 0.6613984822454313);
    /* t_j minus the above */
    const __m512d t_rest_lo = _mm512_setr_pd(
        0.0, -5.2122328603557226e-14, -4.649178632475319e-14, -8.643688492088945e-14,
        -4.175347699650321e-14, 8.609857887931859e-14, -1.765318688778829e-14, 3.9484127277912274e-16);
    const __m512d t_rest_hi = _mm512_setr_pd(
        -1.0941536021483514e-13, -8.341674837225563e-14, 9.834914163109501e-14, 7.141101775241247e-14,
        2.3175004989236635e-14, 2.1121866945650113e-14, 7.621871601970152e-14, -6.626016232829185e-14);
    const __m512i j = _mm512_srli_epi64(_mm512_castpd_si512((__m512d)x), 48);
    const csm_vd m = (csm_vd)_mm512_getmant_pd((__m512d)x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    const csm_vd e = (csm_vd)_mm512_getexp_pd((__m512d)x);
    const csm_vd inv_c = (csm_vd)_mm512_permutex2var_pd(inv_lo, j, inv_hi);
    const csm_vd t = (csm_vd)_mm512_permutex2var_pd(t_lo, j, t_hi);
    const csm_vd t_rest = (csm_vd)_mm512_permutex2var_pd(t_rest_lo, j, t_rest_hi);
    const csm_vd r = m * inv_c - CSM_SET1(1.0);
    csm_vd p = CSM_SET1(0.08692177917338702);
    p = p * r + CSM_SET1(-0.12232862746225949);
    p = p * r + CSM_SET1(0.14269455884250973);
    p = p * r + CSM_SET1(-0.16666086922107667);
    p = p * r + CSM_SET1(0.19999987893146012);
    p = p * r + CSM_SET1(-0.24999999859729374);
    p = p * r + CSM_SET1(0.33333333332545967);
    p = p * r + CSM_SET1(-0.4999999999999849);
    const csm_vd log1p_r = (r * r) * p + r;
    /* ln2 in two parts, the high one with 42 significant bits (|e| < 2^11) */
    const csm_vd exact = e * CSM_SET1(0.693147180559890330187) + t;
    const csm_vd result = exact + (log1p_r + (e * CSM_SET1(5.49792301870850242169e-14) + t_rest));
    /* Keep +inf and NaN as they are. */
    return csm_select(CSM_LT(x, CSM_SET1(INFINITY)), result, x + x);
}
#else
/* log(x) for normal positive x; +inf and NaN are passed through.  Within
 * 1.5 ulp on [1, 16] and 2 ulp on [1, 1.0001] (measured against logl on 10
 * million points each, with and without FMA). */
CSM_INLINE csm_vd csm_log_positive(csm_vd x) {
    const csm_vi mantissa = CSM_SET1I(0x000FFFFFFFFFFFFFLL);
    const csm_vi one_bits = CSM_SET1I(0x3FF0000000000000LL);
    csm_vi bits = CSM_BITS(x);
    csm_vi e = (bits >> 52) - CSM_SET1I(1023);
    csm_vd m = CSM_FROM_BITS((bits & mantissa) | one_bits); /* [1, 2) */
    csm_vi big = CSM_LT(CSM_SET1(1.4142135623730951), m);
    m = csm_select(big, m * CSM_SET1(0.5), m);
    e = e - big; /* big is -1 where true */
    csm_vd f = (m - CSM_SET1(1.0)) / (m + CSM_SET1(1.0));
    csm_vd f2 = f * f;
    /* 2 atanh(f) = 2 (f + f^3/3 + f^5/5 + ...), |f| <= 0.1716: the first term
     * left out, 2 f^21 / 21, is below 2^-55 of 2f (three terms more changed no
     * result in the measurement above and cost 17% of the function, AVX2) */
    csm_vd q = CSM_SET1(2.0 / 19.0);
    q = q * f2 + CSM_SET1(2.0 / 17.0);
    q = q * f2 + CSM_SET1(2.0 / 15.0);
    q = q * f2 + CSM_SET1(2.0 / 13.0);
    q = q * f2 + CSM_SET1(2.0 / 11.0);
    q = q * f2 + CSM_SET1(2.0 / 9.0);
    q = q * f2 + CSM_SET1(2.0 / 7.0);
    q = q * f2 + CSM_SET1(2.0 / 5.0);
    q = q * f2 + CSM_SET1(2.0 / 3.0);
    csm_vd log_m = f * CSM_SET1(2.0) + (f * f2) * q;
#if CSM_VECTOR_EXT
    csm_vd ed = __builtin_convertvector(e, csm_vd);
#else
    csm_vd ed = (double)e;
#endif
    csm_vd result = ed * CSM_SET1(0.693147180559890330187) + (log_m + ed * CSM_SET1(5.49792301870850242169e-14));
    /* Keep +inf and NaN as they are. */
    return csm_select(CSM_LT(x, CSM_SET1(INFINITY)), result, x + x);
}
#endif

/* ------------------------------------------------------------------------- */
/* Class-major chunks: the softmax pipeline vectorised across rows            */
/* ------------------------------------------------------------------------- */
/* The loss, gradient, Hessian and predict paths hold a chunk's logits class
 * by class, Z[k * ldc + r], so that every vector operation covers CSM_VL rows
 * of one class.  With K = 10 and 8 lanes a row-major chunk would pad each row
 * to 16 values and reduce each row horizontally; class-major there is no
 * padding (rows come in whole vectors: the caller pads the row count to a
 * multiple of CSM_VL with zero logits and zero weight) and the row maximum,
 * the sum of exponentials, its log and the residuals are plain lane-wise
 * arithmetic.  Sums over rows (loss, intercept gradient) are kept per lane and
 * reduced by the caller in a fixed order, so results stay deterministic. */

/* m = max_k Z[k] over one vector of rows.  NaN logits are passed over here
 * and come back through z - m. */
CSM_INLINE csm_vd csm_cm_max(const double* z, ptrdiff_t ldc, ptrdiff_t K) {
    csm_vd m = csm_load_d(z);
    for (ptrdiff_t k = 1; k < K; k++) {
        m = csm_max_keep(m, csm_load_d(z + k * ldc));
    }
    return m;
}

/* Cross-entropy of labelled rows.  label[r] holds the class as a double, or
 * -1 for a row to skip (a bad label, or padding); weight[r] the row weight.
 * loss[0:VL] += w (log sum_k exp(z_k - m) - (z_label - m)) per lane.  With
 * residual != 0, Z becomes w (p_k - [k == label]) (zero on skipped rows) and
 * col[k * VL: (k + 1) * VL] gets its lane sums.
 *
 * unit != 0 says every weight is 1 (or 0 on skipped rows): the logs of the
 * sums are then taken once per call, as the log of their product, lane by
 * lane.  Each sum is in [1, K]; the product is used while K to the number of
 * vectors of rows stays below 2^1000 (any K with 8 lanes and chunks of 64
 * rows; K up to ~50000 on one lane), else each sum's log.  A log per
 * vector of rows was a sixth of this function (measured, K = 10: 300 -> 253
 * cycles per vector of 8 rows in a C harness; digits-like loss_and_gradient
 * at 1 thread 12.6 -> 12.0 ms dense, 7.0 -> 6.4 ms bit-packed). */
static void csm_cm_label_loss(double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                              const double* label, const double* weight, int residual, int unit,
                              double* loss, double* col)
{
    csm_vd loss_v = csm_load_d(loss);
    csm_vd product = CSM_SET1(1.0);
    if (unit && log2((double)K) * (double)((n_rows + CSM_VL - 1) / CSM_VL) >= 1000.0) unit = 0;
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        double* z = Z + r;
        const csm_vd lab = csm_load_d(label + r), w = csm_load_d(weight + r);
        const csm_vi valid = CSM_LT(CSM_SET1(-0.5), lab);
        const csm_vd m = csm_cm_max(z, ldc, K);
        csm_vd sum = CSM_SET1(0.0), picked = CSM_SET1(0.0);
        /* class k as a vector, counted up rather than converted per class */
        csm_vd kv = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++, kv += CSM_SET1(1.0)) {
            const csm_vd v = csm_load_d(z + k * ldc) - m;
            picked = csm_select(CSM_EQ(lab, kv), v, picked);
            const csm_vd e = csm_exp_nonpositive(v);
            csm_store_d(z + k * ldc, e);
            sum += e;
        }
        /* log-sum-exp minus the label's logit, both shifted: each term >= 0 */
        if (unit) {
            product *= csm_select(valid, sum, CSM_SET1(1.0));
            loss_v -= csm_select(valid, picked, CSM_SET1(0.0));
        } else {
            loss_v += csm_select(valid, w * (csm_log_positive(sum) - picked), CSM_SET1(0.0));
        }
        if (residual) {
            const csm_vd scale = w / sum;
            kv = CSM_SET1(0.0);
            for (ptrdiff_t k = 0; k < K; k++, kv += CSM_SET1(1.0)) {
                const csm_vd e = csm_load_d(z + k * ldc);
                const csm_vd hit = csm_select(CSM_EQ(lab, kv), w, CSM_SET1(0.0));
                const csm_vd res = csm_select(valid, e * scale - hit, CSM_SET1(0.0));
                csm_store_d(z + k * ldc, res);
                csm_store_d(col + k * CSM_VL, csm_load_d(col + k * CSM_VL) + res);
            }
        }
    }
    if (unit) loss_v += csm_log_positive(product);
    csm_store_d(loss, loss_v);
}

/* Cross-entropy against soft targets Y (class-major like Z, zero on padding
 * rows): loss += w (s lse - sum_k y_k (z_k - m)) with s = sum_k y_k, and with
 * residual != 0, Z becomes w (s p_k - y_k); w is factored out so that exact
 * cancellations (K = 1, one-hot rows) stay exact. */
static void csm_cm_soft_loss(double* Z, const double* Y, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                             const double* weight, int residual, double* loss, double* col)
{
    csm_vd loss_v = csm_load_d(loss);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        double* z = Z + r;
        const double* y = Y + r;
        const csm_vd w = csm_load_d(weight + r);
        const csm_vd m = csm_cm_max(z, ldc, K);
        csm_vd sum = CSM_SET1(0.0), y_sum = CSM_SET1(0.0), yz_sum = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++) {
            const csm_vd v = csm_load_d(z + k * ldc) - m;
            const csm_vd yk = csm_load_d(y + k * ldc);
            y_sum += yk;
            yz_sum += yk * v;
            const csm_vd e = csm_exp_nonpositive(v);
            csm_store_d(z + k * ldc, e);
            sum += e;
        }
        loss_v += w * (y_sum * csm_log_positive(sum) - yz_sum);
        if (residual) {
            const csm_vd scale = y_sum / sum;
            for (ptrdiff_t k = 0; k < K; k++) {
                const csm_vd res = w * (csm_load_d(z + k * ldc) * scale - csm_load_d(y + k * ldc));
                csm_store_d(z + k * ldc, res);
                csm_store_d(col + k * CSM_VL, csm_load_d(col + k * CSM_VL) + res);
            }
        }
    }
    csm_store_d(loss, loss_v);
}

/* Hessian-vector rows: with p = softmax(Z) and U the logits of the direction,
 * Z becomes h_k = w p_k (u_k - sum_j p_j u_j); col gets its lane sums. */
static void csm_cm_hessian(double* Z, const double* U, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                           const double* weight, double* col)
{
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        double* z = Z + r;
        const double* u = U + r;
        const csm_vd m = csm_cm_max(z, ldc, K);
        csm_vd sum = CSM_SET1(0.0), eu = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++) {
            const csm_vd e = csm_exp_nonpositive(csm_load_d(z + k * ldc) - m);
            csm_store_d(z + k * ldc, e);
            sum += e;
            eu += e * csm_load_d(u + k * ldc);
        }
        const csm_vd inv = CSM_SET1(1.0) / sum;
        const csm_vd pu = eu * inv;
        const csm_vd w = csm_load_d(weight + r);
        for (ptrdiff_t k = 0; k < K; k++) {
            const csm_vd h = w * (csm_load_d(z + k * ldc) * inv) * (csm_load_d(u + k * ldc) - pu);
            csm_store_d(z + k * ldc, h);
            csm_store_d(col + k * CSM_VL, csm_load_d(col + k * CSM_VL) + h);
        }
    }
}

/* Prefetches spread over a chunk's arithmetic, for the row-wise functions,
 * whose arithmetic per byte is small: while one chunk is worked on, each of
 * its vectors of rows asks for the next group_bytes of a later chunk's input
 * (read) and output (write; NULL: none).  Issued as the chunk starts, all at
 * once, they slowed the loop down; left to the hardware, reading and writing
 * did not overlap the arithmetic (measured, softmax of a (200000, 10) array:
 * 3.3 -> 2.6 ms). */
typedef struct {
    const char* read;
    char* write;
    ptrdiff_t group_bytes;
} csm_ahead;

CSM_INLINE void csm_prefetch_ahead(const csm_ahead* ahead, ptrdiff_t r) {
    if (ahead == NULL) return;
    const ptrdiff_t first = r / CSM_VL * ahead->group_bytes;
    for (ptrdiff_t off = 0; off < ahead->group_bytes; off += 64) {
        if (ahead->read != NULL) CSM_PREFETCH(ahead->read + first + off);
        if (ahead->write != NULL) CSM_PREFETCH_WRITE(ahead->write + first + off);
    }
}

/* Z = softmax over the classes, in place; row_sum[r] = sum_k exp(z_k - m)
 * (non-finite for a row with NaN or infinite logits).  Returns 0 when every
 * row_sum is finite, else NaN, so that callers count the bad rows only then
 * (as csm_cm_log_sums). */
static double csm_cm_softmax(double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K, double* row_sum,
                             const csm_ahead* ahead)
{
    csm_vd check = CSM_SET1(0.0);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        double* z = Z + r;
        csm_prefetch_ahead(ahead, r);
        const csm_vd m = csm_cm_max(z, ldc, K);
        csm_vd sum = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++) {
            const csm_vd e = csm_exp_nonpositive(csm_load_d(z + k * ldc) - m);
            csm_store_d(z + k * ldc, e);
            sum += e;
        }
        const csm_vd inv = CSM_SET1(1.0) / sum;
        for (ptrdiff_t k = 0; k < K; k++) csm_store_d(z + k * ldc, csm_load_d(z + k * ldc) * inv);
        const csm_vd marked = sum + (m - m);
        csm_store_d(row_sum + r, marked);
        check += marked - marked;
    }
    return csm_hsum(check);
}

/* Shifted sums of class-major rows for log_softmax and logsumexp:
 * row_max[r] = m = max_k z_k and row_sum[r] = sum_k exp(z_k - m); with
 * store_shifted, Z becomes z - m. */
static void csm_cm_shifted_sums(double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K, int store_shifted,
                                double* row_max, double* row_sum, const csm_ahead* ahead)
{
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        double* z = Z + r;
        csm_prefetch_ahead(ahead, r);
        const csm_vd m = csm_cm_max(z, ldc, K);
        csm_vd sum = CSM_SET1(0.0);
        for (ptrdiff_t k = 0; k < K; k++) {
            const csm_vd v = csm_load_d(z + k * ldc) - m;
            if (store_shifted) csm_store_d(z + k * ldc, v);
            sum += csm_exp_nonpositive_term(v);
        }
        csm_store_d(row_max + r, m);
        csm_store_d(row_sum + r, sum);
    }
}

/* row_sum[r] = log(row_sum[r]) (+ row_max[r] with add_max: logsumexp) for
 * whole vectors of rows; returns 0 when every row's maximum and sum were
 * finite, else NaN (the caller then counts the rows).  One pass in vectors
 * instead of per-row loops for the copy into the log, the finiteness test and
 * the additions (measured, logsumexp of a (200000, 10) array at one thread:
 * 2-4% faster). */
static double csm_cm_log_sums(const double* row_max, double* row_sum, ptrdiff_t n_rows, int add_max)
{
    csm_vd check = CSM_SET1(0.0);
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        const csm_vd m = csm_load_d(row_max + r), sum = csm_load_d(row_sum + r);
        const csm_vd log_sum = csm_log_positive(sum);
        check += (m - m) + (sum - sum);
        csm_store_d(row_sum + r, add_max ? m + log_sum : log_sum);
    }
    return csm_hsum(check);
}

/* Z[k * ldc + r] -= row_value[r] (log_softmax: the shifted logits minus the
 * log of their row's sum). */
static void csm_cm_subtract_rows(double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K, const double* row_value)
{
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        const csm_vd v = csm_load_d(row_value + r);
        for (ptrdiff_t k = 0; k < K; k++) csm_store_d(Z + k * ldc + r, csm_load_d(Z + k * ldc + r) - v);
    }
}

/* best[r] = the first k with the largest Z[k] (as a double); check[r] is
 * zero for rows whose logits are all finite. */
static void csm_cm_argmax(const double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                          double* best, double* check)
{
    for (ptrdiff_t r = 0; r < n_rows; r += CSM_VL) {
        const double* z = Z + r;
        csm_vd top = csm_load_d(z), index = CSM_SET1(0.0), bad = top - top;
        for (ptrdiff_t k = 1; k < K; k++) {
            const csm_vd v = csm_load_d(z + k * ldc);
            const csm_vi better = CSM_LT(top, v);
            top = csm_select(better, v, top);
            index = csm_select(better, CSM_SET1((double)k), index);
            bad += v - v;
        }
        csm_store_d(best + r, index);
        csm_store_d(check + r, bad);
    }
}

/* Sum of CSM_VL lane sums kept in memory, in the fixed tree order. */
static inline double csm_lane_sum(const double* lanes) { return csm_hsum(csm_load_d(lanes)); }

/* Whole-array helpers for the parameters: vectorised, because for a small
 * batch (tens of rows) the O(K D) work around the chunks costs as much as the
 * chunks themselves.  Lane sums are reduced in a fixed order. */

/* dst[0:n] = src[0:n]; returns 0.0 when every value is finite (else NaN). */
static double csm_copy_check(const double* src, ptrdiff_t n, double* dst)
{
    csm_vd check = CSM_SET1(0.0);
    ptrdiff_t i = 0;
    for (; i + CSM_VL <= n; i += CSM_VL) {
        const csm_vd v = csm_load_d(src + i);
        csm_store_d(dst + i, v);
        check += v - v;
    }
    double tail = 0.0;
    for (; i < n; i++) { dst[i] = src[i]; tail += src[i] - src[i]; }
    return csm_hsum(check) + tail;
}

/* As csm_copy_check for float32 src: dst gets it widened to float64 and
 * dst_s (when not NULL) an exact float32 copy. */
static double csm_copy_check_f(const float* src, ptrdiff_t n, double* dst, float* dst_s)
{
    csm_vd check = CSM_SET1(0.0);
    ptrdiff_t i = 0;
    for (; i + CSM_VL <= n; i += CSM_VL) {
        const csm_vd v = csm_load_f(src + i);
        csm_store_d(dst + i, v);
        check += v - v;
    }
    double tail = 0.0;
    for (; i < n; i++) { dst[i] = src[i]; tail += (double)src[i] - (double)src[i]; }
    if (dst_s != NULL) memcpy(dst_s, src, (size_t)n * sizeof(float));
    return csm_hsum(check) + tail;
}

/* loss_sum * scale + (l2 / 2) sum_sq, as the Python entry points compute it:
 * each product rounded on its own (volatile keeps the compiler from fusing
 * one into the sum: an FMA rounds once, and the two paths would then differ
 * in the last bit), and no penalty term at all when l2 is 0 (0 * inf). */
static double csm_penalised_loss(double loss_sum, double scale, double l2, double sum_sq)
{
    volatile double data = loss_sum * scale;
    if (l2 == 0.0) return data;
    volatile double penalty = 0.5 * l2 * sum_sq;
    return data + penalty;
}

/* sum_i v[i]^2 */
static double csm_sum_squares(const double* v, ptrdiff_t n)
{
    csm_vd acc = CSM_SET1(0.0);
    ptrdiff_t i = 0;
    for (; i + CSM_VL <= n; i += CSM_VL) { const csm_vd x = csm_load_d(v + i); acc += x * x; }
    double tail = 0.0;
    for (; i < n; i++) tail += v[i] * v[i];
    return csm_hsum(acc) + tail;
}

/* out[i] = scale * g[i] + l2 * p[i]; returns the count of non-finite results. */
static ptrdiff_t csm_scale_add(const double* g, const double* p, ptrdiff_t n, double scale, double l2, double* out)
{
    ptrdiff_t n_bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        out[i] = scale * g[i] + l2 * p[i];
        n_bad += !isfinite(out[i]);
    }
    return n_bad;
}

static ptrdiff_t csm_scale_add_f(const double* g, const double* p, ptrdiff_t n, double scale, double l2, float* out)
{
    ptrdiff_t n_bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        out[i] = (float)(scale * g[i] + l2 * p[i]);
        n_bad += !isfinite(out[i]);
    }
    return n_bad;
}

/* One momentum step of SGD on n parameters: g = scale * grad + l2 * p,
 * v = momentum * v - eta * g, p += v.  Separate restrict pointers let the
 * compiler vectorise it (it runs once per mini-batch over all of W). */
static void csm_momentum_step(const double* CSM_RESTRICT grad, double* CSM_RESTRICT p,
                              double* CSM_RESTRICT v, ptrdiff_t n, double scale, double l2,
                              double momentum, double eta)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const double g = scale * grad[i] + l2 * p[i];
        v[i] = momentum * v[i] - eta * g;
        p[i] += v[i];
    }
}

/* Partial vectors: the first n lanes (1 <= n <= CSM_VL) of p, as float64;
 * the lanes past n are neither read nor written (masked loads and stores do
 * not fault there), and read as zero. */
#if defined(__AVX512F__) && CSM_VL == 8
#define CSM_LANE_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#elif defined(__AVX2__) && CSM_VL == 4
CSM_INLINE __m256i csm_lane_mask_pd(ptrdiff_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}
CSM_INLINE __m128i csm_lane_mask_ps(ptrdiff_t n) {
    return _mm_cmpgt_epi32(_mm_set1_epi32((int)n), _mm_setr_epi32(0, 1, 2, 3));
}
#endif

CSM_INLINE csm_vd csm_load_part_d(const double* p, ptrdiff_t n) {
    if (n >= CSM_VL) return csm_load_d(p);
#if defined(__AVX512F__) && CSM_VL == 8
    return (csm_vd)_mm512_maskz_loadu_pd(CSM_LANE_MASK(n), p);
#elif defined(__AVX2__) && CSM_VL == 4
    return (csm_vd)_mm256_maskload_pd(p, csm_lane_mask_pd(n));
#elif CSM_VECTOR_EXT
    csm_vd v = CSM_SET1(0.0);
    for (ptrdiff_t l = 0; l < n; l++) v[l] = p[l];
    return v;
#else
    return csm_load_d(p);
#endif
}

CSM_INLINE csm_vd csm_load_part_f(const float* p, ptrdiff_t n) {
    if (n >= CSM_VL) return csm_load_f(p);
#if defined(__AVX512F__) && CSM_VL == 8
    return (csm_vd)_mm512_cvtps_pd(_mm256_maskz_loadu_ps(CSM_LANE_MASK(n), p));
#elif defined(__AVX2__) && CSM_VL == 4
    return (csm_vd)_mm256_cvtps_pd(_mm_maskload_ps(p, csm_lane_mask_ps(n)));
#elif CSM_VECTOR_EXT
    csm_vd v = CSM_SET1(0.0);
    for (ptrdiff_t l = 0; l < n; l++) v[l] = (double)p[l];
    return v;
#else
    return csm_load_f(p);
#endif
}

CSM_INLINE void csm_store_part_d(double* p, ptrdiff_t n, csm_vd v) {
#if defined(__AVX512F__) && CSM_VL == 8
    _mm512_mask_storeu_pd(p, CSM_LANE_MASK(n), (__m512d)v);
#elif defined(__AVX2__) && CSM_VL == 4
    if (n >= CSM_VL) csm_store_d(p, v);
    else _mm256_maskstore_pd(p, csm_lane_mask_pd(n), (__m256d)v);
#elif CSM_VECTOR_EXT
    if (n >= CSM_VL) csm_store_d(p, v);
    else for (ptrdiff_t l = 0; l < n; l++) p[l] = v[l];
#else
    (void)n;
    *p = v;
#endif
}

/* Rounded to float32 as a cast rounds (to nearest). */
CSM_INLINE void csm_store_part_f(float* p, ptrdiff_t n, csm_vd v) {
#if defined(__AVX512F__) && CSM_VL == 8
    _mm256_mask_storeu_ps(p, CSM_LANE_MASK(n), _mm512_cvtpd_ps((__m512d)v));
#elif defined(__AVX2__) && CSM_VL == 4
    _mm_maskstore_ps(p, csm_lane_mask_ps(n), _mm256_cvtpd_ps((__m256d)v));
#elif CSM_VECTOR_EXT
    for (ptrdiff_t l = 0; l < n; l++) p[l] = (float)v[l];
#else
    (void)n;
    *p = (float)v;
#endif
}

/* Row-major rows (logits of the bits and sparse kinds, arrays given to the
 * row-wise functions) to class-major chunks, and back. */
#define CSM_RT double
#define CSM_RT_IS_DOUBLE 1
#define CSM_SFX(name) name##_d
#include "_kernels_tiles.h"
#undef CSM_RT
#undef CSM_RT_IS_DOUBLE
#undef CSM_SFX

#define CSM_RT float
#define CSM_RT_IS_DOUBLE 0
#define CSM_SFX(name) name##_f
#include "_kernels_tiles.h"
#undef CSM_RT
#undef CSM_RT_IS_DOUBLE
#undef CSM_SFX

/* ------------------------------------------------------------------------- */
/* Bit-packed binary features                                                */
/* ------------------------------------------------------------------------- */
/* A row of PackedBits is n_words 64-bit words; feature i is bit (i % 64) of
 * word i / 64.  With binary features a logit is a sum of the weight columns
 * of the set bits, and a gradient row is added to the columns of the set
 * bits: the work is proportional to the number of set bits, not to D.  The
 * weights are used transposed (D x ldz, one padded row per feature), so each
 * set bit costs ldz / CSM_VL vector additions. */

#if defined(__GNUC__) || defined(__clang__)
#define CSM_CTZ64(x) __builtin_ctzll(x)
#else
static inline int csm_ctz64(uint64_t x) { int n = 0; while (!(x & 1)) { x >>= 1; n++; } return n; }
#define CSM_CTZ64(x) csm_ctz64(x)
#endif

/* One row of logits from set bits, NV vectors wide (NV = ldz / CSM_VL), the
 * accumulators held in registers across the bits. */
CSM_INLINE void csm_bits_row_logits(const uint64_t* row, ptrdiff_t n_words, uint64_t last_mask,
                                    const double* WT, ptrdiff_t ldz, const double* bias,
                                    double* z, const int NV)
{
    csm_vd acc[4];
    for (int v = 0; v < NV; v++) acc[v] = csm_load_d(bias + v * CSM_VL);
    for (ptrdiff_t w = 0; w < n_words; w++) {
        uint64_t bits = row[w];
        if (w == n_words - 1) bits &= last_mask;
        while (bits) {
            const double* wt = WT + (w * 64 + CSM_CTZ64(bits)) * ldz;
            for (int v = 0; v < NV; v++) acc[v] += csm_load_d(wt + v * CSM_VL);
            bits &= bits - 1;
        }
    }
    for (int v = 0; v < NV; v++) csm_store_d(z + v * CSM_VL, acc[v]);
}

/* Z[r] = bias + sum over set bits i of WT[i] for n_rows rows of words
 * (leading dimension ldb words); bias is padded to ldz (with -inf for logits,
 * so the padding columns stay -inf).  Bits at or beyond D are ignored. */
static void csm_bits_logits(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D,
                            const double* WT, ptrdiff_t ldz, const double* bias, double* Z)
{
    const ptrdiff_t n_words = (D + 63) / 64;
    const uint64_t last_mask = (D % 64) ? ((uint64_t)1 << (D % 64)) - 1 : ~(uint64_t)0;
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const uint64_t* row = words + r * ldb;
        double* z = Z + r * ldz;
        switch (ldz / CSM_VL) {
            case 1: csm_bits_row_logits(row, n_words, last_mask, WT, ldz, bias, z, 1); break;
            case 2: csm_bits_row_logits(row, n_words, last_mask, WT, ldz, bias, z, 2); break;
            case 3: csm_bits_row_logits(row, n_words, last_mask, WT, ldz, bias, z, 3); break;
            case 4: csm_bits_row_logits(row, n_words, last_mask, WT, ldz, bias, z, 4); break;
            default:
                for (ptrdiff_t k = 0; k < ldz; k += 4 * CSM_VL)
                    csm_bits_row_logits(row, n_words, last_mask, WT + k, ldz, bias + k, z + k,
                                        ldz - k >= 4 * CSM_VL ? 4 : (int)((ldz - k) / CSM_VL));
        }
    }
}

/* GT[i] += R[r] for every set bit i of one row, NV vectors wide. */
CSM_INLINE void csm_bits_row_accumulate(const uint64_t* row, ptrdiff_t n_words, uint64_t last_mask,
                                        const double* rr, ptrdiff_t ldz, double* GT, const int NV)
{
    csm_vd rv[4];
    for (int v = 0; v < NV; v++) rv[v] = csm_load_d(rr + v * CSM_VL);
    for (ptrdiff_t w = 0; w < n_words; w++) {
        uint64_t bits = row[w];
        if (w == n_words - 1) bits &= last_mask;
        while (bits) {
            double* g = GT + (w * 64 + CSM_CTZ64(bits)) * ldz;
            for (int v = 0; v < NV; v++) csm_store_d(g + v * CSM_VL, csm_load_d(g + v * CSM_VL) + rv[v]);
            bits &= bits - 1;
        }
    }
}

/* GT[i] += R[r] for every set bit i of every row r (GT is D x ldz). */
static void csm_bits_accumulate(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D,
                                const double* R, ptrdiff_t ldz, double* GT)
{
    const ptrdiff_t n_words = (D + 63) / 64;
    const uint64_t last_mask = (D % 64) ? ((uint64_t)1 << (D % 64)) - 1 : ~(uint64_t)0;
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const uint64_t* row = words + r * ldb;
        const double* rr = R + r * ldz;
        switch (ldz / CSM_VL) {
            case 1: csm_bits_row_accumulate(row, n_words, last_mask, rr, ldz, GT, 1); break;
            case 2: csm_bits_row_accumulate(row, n_words, last_mask, rr, ldz, GT, 2); break;
            case 3: csm_bits_row_accumulate(row, n_words, last_mask, rr, ldz, GT, 3); break;
            case 4: csm_bits_row_accumulate(row, n_words, last_mask, rr, ldz, GT, 4); break;
            default:
                for (ptrdiff_t k = 0; k < ldz; k += 4 * CSM_VL)
                    csm_bits_row_accumulate(row, n_words, last_mask, rr + k, ldz, GT + k,
                                            ldz - k >= 4 * CSM_VL ? 4 : (int)((ldz - k) / CSM_VL));
        }
    }
}

/* Group tables.  Dense bits (binarized digits set ~40% of their pixels)
 * make the set-bit loops above pay a branch misprediction per row and one
 * vector add per set bit.  Instead, each group j of gb features (gb = 4 or 8)
 * gets a table of its 2^gb bit patterns v: TB[j, v] = sum of the weight
 * columns of the features set in v (the bias folded into group 0), so a
 * row's logits are ceil(D / gb) branch-free lookups.  The gradient mirrors
 * it: a residual row is added to one histogram row H[j, v] per group, and
 * the histogram is folded into GT once per partition.  Wider groups mean
 * fewer lookups and stores per row (the stores bound the gradient) but 16x
 * bigger tables, so the callers choose gb from the table size and the number
 * of rows.
 *
 * Table rows hold ldg = K rounded up to 4 doubles and are worked on 4 lanes
 * at a time whatever the instruction set: rounding K = 10 up to 12 rather
 * than to a whole AVX-512 vector (16) moves a quarter fewer bytes through
 * L1/L2, which bound these kernels.  Four rows are done together, so the
 * logits and residuals go to and from the class-major chunk with 4 x 4
 * register transposes instead of a scalar round trip through memory.
 *
 * Groups are CSM_GROUP_STRIDE(gb, ldg) doubles apart: one spare cache line
 * per group keeps the histogram rows of different groups off the same offset
 * modulo 4 KiB, where a load looks like it depends on an unrelated earlier
 * store (4K aliasing) and waits. */
#define CSM_GROUP_STRIDE(gb, ldg) (((ptrdiff_t)1 << (gb)) * (ldg) + 8)

#if CSM_VECTOR_EXT
typedef double csm_v4 __attribute__((vector_size(32)));
typedef int64_t csm_v4i __attribute__((vector_size(32)));
#define CSM_SHUFFLE4(a, b, ...) CSM_SHUFFLE_AS(csm_v4i, a, b, __VA_ARGS__)
CSM_INLINE csm_v4 csm_v4_load(const double* p) { csm_v4 v; memcpy(&v, p, sizeof v); return v; }
CSM_INLINE void csm_v4_store(double* p, csm_v4 v) { memcpy(p, &v, sizeof v); }
CSM_INLINE csm_v4 csm_v4_add(csm_v4 a, csm_v4 b) { return a + b; }
#define CSM_V4(a, b, c, d) ((csm_v4){(a), (b), (c), (d)})
#else
typedef struct { double d[4]; } csm_v4;
CSM_INLINE csm_v4 csm_v4_load(const double* p) { csm_v4 v; memcpy(&v, p, sizeof v); return v; }
CSM_INLINE void csm_v4_store(double* p, csm_v4 v) { memcpy(p, &v, sizeof v); }
CSM_INLINE csm_v4 csm_v4_add(csm_v4 a, csm_v4 b) {
    for (int l = 0; l < 4; l++) a.d[l] += b.d[l];
    return a;
}
CSM_INLINE csm_v4 csm_v4_make(double a, double b, double c, double d) {
    csm_v4 v; v.d[0] = a; v.d[1] = b; v.d[2] = c; v.d[3] = d; return v;
}
#define CSM_V4(a, b, c, d) csm_v4_make((a), (b), (c), (d))
#define CSM_V4_LANE(v, l) ((v).d[l])
#endif

/* m[i][c] -> m[c][i] for a 4 x 4 block held in registers.  With vector
 * extensions, in two stages of shuffles (pairs of lanes, then halves): built
 * lane by lane, GCC moved the values through the stack, and the transposes
 * around the walks took a quarter of the digits-like histogram pass. */
CSM_INLINE void csm_v4_transpose(csm_v4 m[4])
{
    const csm_v4 a = m[0], b = m[1], c = m[2], d = m[3];
#if CSM_VECTOR_EXT
    const csm_v4 ab_even = CSM_SHUFFLE4(a, b, 0, 4, 2, 6), ab_odd = CSM_SHUFFLE4(a, b, 1, 5, 3, 7);
    const csm_v4 cd_even = CSM_SHUFFLE4(c, d, 0, 4, 2, 6), cd_odd = CSM_SHUFFLE4(c, d, 1, 5, 3, 7);
    m[0] = CSM_SHUFFLE4(ab_even, cd_even, 0, 1, 4, 5);
    m[1] = CSM_SHUFFLE4(ab_odd, cd_odd, 0, 1, 4, 5);
    m[2] = CSM_SHUFFLE4(ab_even, cd_even, 2, 3, 6, 7);
    m[3] = CSM_SHUFFLE4(ab_odd, cd_odd, 2, 3, 6, 7);
#else
    for (int l = 0; l < 4; l++)
        m[l] = CSM_V4(CSM_V4_LANE(a, l), CSM_V4_LANE(b, l), CSM_V4_LANE(c, l), CSM_V4_LANE(d, l));
#endif
}

static ptrdiff_t csm_group_ldg(ptrdiff_t K) { return (K + 3) / 4 * 4; }

static ptrdiff_t csm_group_size(ptrdiff_t D, int gb, ptrdiff_t K)
{
    return (D + gb - 1) / gb * CSM_GROUP_STRIDE(gb, csm_group_ldg(K));
}

/* The tables of the K classes' weight columns WT (D x ldz, transposed) and bias. */
static void csm_group_tables(const double* WT, ptrdiff_t ldz, ptrdiff_t D, ptrdiff_t K, int gb,
                             const double* bias, double* TB)
{
    const ptrdiff_t n_groups = (D + gb - 1) / gb, n_patterns = (ptrdiff_t)1 << gb;
    const ptrdiff_t ldg = csm_group_ldg(K);
    for (ptrdiff_t j = 0; j < n_groups; j++) {
        double* t = TB + j * CSM_GROUP_STRIDE(gb, ldg);
        for (ptrdiff_t k = 0; k < ldg; k++) t[k] = (j == 0 && k < K) ? bias[k] : 0.0;
        for (ptrdiff_t v = 1; v < n_patterns; v++) {
            /* pattern v = pattern v without its lowest bit, plus that feature */
            const ptrdiff_t f = gb * j + CSM_CTZ64((uint64_t)v);
            const double* rest = t + (v & (v - 1)) * ldg;
            for (ptrdiff_t k = 0; k < ldg; k++)
                t[v * ldg + k] = rest[k] + ((f < D && k < K) ? WT[f * ldz + k] : 0.0);
        }
    }
}

/* Four rows' words (the rows past n_rows repeat the last one) and the mask of
 * the bits at or beyond D in the last word. */
CSM_INLINE void csm_four_rows(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t r0, ptrdiff_t n_rows,
                              const uint64_t* rows[4])
{
    for (int i = 0; i < 4; i++) rows[i] = words + (r0 + i < n_rows ? r0 + i : n_rows - 1) * ldb;
}

/* Four rows' pass over the groups for classes [q, q + 4 NQ) (NQ <= 3),
 * touching each table row whole while it is in L1.  Logits (to_table = 0):
 * v[b][i] += TB[j, pattern of row i in group j] over the groups.  Gradient
 * (to_table = 1): H[j, pattern of row i in group j] += v[b][i]. */
CSM_INLINE void csm_group_walk(const uint64_t* rows[4], ptrdiff_t n_words, uint64_t last_mask,
                               ptrdiff_t n_groups, int gb, double* table, ptrdiff_t ldg,
                               csm_v4 v[3][4], const int NQ, const int to_table)
{
    const ptrdiff_t stride = CSM_GROUP_STRIDE(gb, ldg), per_word = 64 / gb;
    const uint64_t mask = ((uint64_t)1 << gb) - 1;
    double* t = table;
    ptrdiff_t j = 0;
    for (ptrdiff_t w = 0; w < n_words; w++) {
        uint64_t bits[4];
        for (int i = 0; i < 4; i++) bits[i] = rows[i][w] & (w == n_words - 1 ? last_mask : ~(uint64_t)0);
        const ptrdiff_t end = n_groups < j + per_word ? n_groups : j + per_word;
        for (; j < end; j++, t += stride)
            for (int i = 0; i < 4; i++) {
                double* tv = t + (ptrdiff_t)(bits[i] & mask) * ldg;
                for (int b = 0; b < NQ; b++) {
                    if (to_table)
                        csm_v4_store(tv + 4 * b, csm_v4_add(csm_v4_load(tv + 4 * b), v[b][i]));
                    else
                        v[b][i] = csm_v4_add(v[b][i], csm_v4_load(tv + 4 * b));
                }
                bits[i] >>= gb;
            }
    }
}

/* One slab of classes for four rows starting at r0: logits from the tables
 * into the class-major chunk Z (to_table = 0), or class-major residuals from
 * Z into the histograms (to_table = 1), through 4 x 4 register transposes. */
CSM_INLINE void csm_group_slab(const uint64_t* rows[4], ptrdiff_t n_words, uint64_t last_mask,
                               ptrdiff_t n_groups, int gb, double* table, ptrdiff_t ldg, ptrdiff_t q,
                               ptrdiff_t K, ptrdiff_t r0, ptrdiff_t n_rows, double* Z, ptrdiff_t ldc,
                               const int NQ, const int to_table)
{
    csm_v4 v[3][4];
    for (int b = 0; b < NQ; b++) {
        for (int c = 0; c < 4; c++) {
            v[b][c] = CSM_V4(0, 0, 0, 0);
            if (to_table && q + 4 * b + c < K) {
                const double* zc = Z + (q + 4 * b + c) * ldc + r0;
                /* rows past n_rows add nothing; four whole rows are one load
                 * (element loads, just after the loss kernel stored Z in whole
                 * vectors, took a tenth of the digits-like gradient's time) */
                v[b][c] = r0 + 4 <= n_rows ? csm_v4_load(zc)
                        : CSM_V4(zc[0], r0 + 1 < n_rows ? zc[1] : 0.0, r0 + 2 < n_rows ? zc[2] : 0.0, 0.0);
            }
        }
        if (to_table) csm_v4_transpose(v[b]);
    }
    csm_group_walk(rows, n_words, last_mask, n_groups, gb, table + q, ldg, v, NQ, to_table);
    if (!to_table)
        for (int b = 0; b < NQ; b++) {
            csm_v4_transpose(v[b]);
            /* r0 + 3 < ldc (a multiple of 4): lanes past n_rows land on padding rows */
            for (int c = 0; c < 4 && q + 4 * b + c < K; c++) csm_v4_store(Z + (q + 4 * b + c) * ldc + r0, v[b][c]);
        }
}

CSM_INLINE void csm_group_rows_of(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D, int gb,
                                   double* table, ptrdiff_t K, ptrdiff_t ldg, double* Z, ptrdiff_t ldc,
                                   const int to_table)
{
    const ptrdiff_t n_words = (D + 63) / 64, n_groups = (D + gb - 1) / gb;
    const uint64_t last_mask = (D % 64) ? ((uint64_t)1 << (D % 64)) - 1 : ~(uint64_t)0;
    for (ptrdiff_t r0 = 0; r0 < n_rows; r0 += 4) {
        const uint64_t* rows[4];
        csm_four_rows(words, ldb, r0, n_rows, rows);
        for (ptrdiff_t q = 0; q < ldg; q += 12) {
            const ptrdiff_t NQ = (ldg - q) / 4;
            if (NQ == 1)
                csm_group_slab(rows, n_words, last_mask, n_groups, gb, table, ldg, q, K, r0, n_rows, Z, ldc, 1, to_table);
            else if (NQ == 2)
                csm_group_slab(rows, n_words, last_mask, n_groups, gb, table, ldg, q, K, r0, n_rows, Z, ldc, 2, to_table);
            else
                csm_group_slab(rows, n_words, last_mask, n_groups, gb, table, ldg, q, K, r0, n_rows, Z, ldc, 3, to_table);
        }
    }
}

/* The walk with the group width and table row length as constants where
 * they are the common ones (up to 12 classes): the pattern offsets become
 * shifts and adds instead of multiplies, and the loops unroll (in a C
 * harness of the digits-like case, the walks took a quarter to a third less
 * time than with them as variables). */
static void csm_group_rows(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D, int gb,
                           double* table, ptrdiff_t K, double* Z, ptrdiff_t ldc, const int to_table)
{
    const ptrdiff_t ldg = csm_group_ldg(K);
#define CSM_GROUP_CASE(GB, LDG) \
    if (gb == (GB) && ldg == (LDG)) { \
        csm_group_rows_of(words, ldb, n_rows, D, GB, table, K, LDG, Z, ldc, to_table); \
        return; \
    }
    CSM_GROUP_CASE(8, 12) CSM_GROUP_CASE(8, 8) CSM_GROUP_CASE(8, 4)
    CSM_GROUP_CASE(4, 12) CSM_GROUP_CASE(4, 8) CSM_GROUP_CASE(4, 4)
#undef CSM_GROUP_CASE
    csm_group_rows_of(words, ldb, n_rows, D, gb, table, K, ldg, Z, ldc, to_table);
}

/* Class-major logits Z[k * ldc + r] (k < K) of n_rows rows from the tables. */
static void csm_group_logits(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D, int gb,
                             const double* TB, ptrdiff_t K, double* Z, ptrdiff_t ldc)
{
    csm_group_rows(words, ldb, n_rows, D, gb, (double*)TB, K, Z, ldc, 0);
}

/* H[group, pattern] += r for the class-major residuals R[k * ldc + r] of n_rows rows. */
static void csm_group_accumulate(const uint64_t* words, ptrdiff_t ldb, ptrdiff_t n_rows, ptrdiff_t D, int gb,
                                 const double* R, ptrdiff_t K, ptrdiff_t ldc, double* H)
{
    csm_group_rows(words, ldb, n_rows, D, gb, H, K, (double*)R, ldc, 1);
}

/* g[k] += sum over v < n_patterns of h[v * ldg + k], for k < K, in order of
 * v: the sums run in registers, four classes to a vector (added through
 * memory, each pattern's add waited on the previous one's store; measured,
 * the fold's share of the digits-like PackedBits gradient 2.4% -> 1.5%). */
static void csm_fold_patterns(const double* h, ptrdiff_t ldg, ptrdiff_t n_patterns, ptrdiff_t K, double* g)
{
    ptrdiff_t k = 0;
    for (; k + 8 <= K; k += 8) {
        csm_v4 a = csm_v4_load(g + k), b = csm_v4_load(g + k + 4);
        for (ptrdiff_t v = 0; v < n_patterns; v++) {
            a = csm_v4_add(a, csm_v4_load(h + v * ldg + k));
            b = csm_v4_add(b, csm_v4_load(h + v * ldg + k + 4));
        }
        csm_v4_store(g + k, a);
        csm_v4_store(g + k + 4, b);
    }
    for (; k + 4 <= K; k += 4) {
        csm_v4 a = csm_v4_load(g + k);
        for (ptrdiff_t v = 0; v < n_patterns; v++) a = csm_v4_add(a, csm_v4_load(h + v * ldg + k));
        csm_v4_store(g + k, a);
    }
    for (; k < K; k++) {
        double a = g[k];
        for (ptrdiff_t v = 0; v < n_patterns; v++) a += h[v * ldg + k];
        g[k] = a;
    }
}

/* GT[f, k] += sum of H[group of f, v, k] (k < K) over the patterns v that set
 * feature f.  Folds from the top bit down: the patterns with bit i set are
 * the upper half of the first 2^(i+1) rows once the higher bits have been
 * folded away (H[v] += H[v + 2^i]), so a group costs 2 (2^gb - 1) row adds,
 * not gb 2^(gb-1).  H is destroyed (it is zeroed before the next partition). */
static void csm_group_fold(double* H, ptrdiff_t D, ptrdiff_t K, int gb, double* GT, ptrdiff_t ldz)
{
    const ptrdiff_t n_groups = (D + gb - 1) / gb, ldg = csm_group_ldg(K);
    for (ptrdiff_t j = 0; j < n_groups; j++) {
        double* h = H + j * CSM_GROUP_STRIDE(gb, ldg);
        for (int i = gb - 1; i >= 0; i--) {
            const ptrdiff_t half = (ptrdiff_t)1 << i, f = gb * j + i;
            if (f < D) csm_fold_patterns(h + half * ldg, ldg, half, K, GT + f * ldz);
            for (ptrdiff_t v = 0; v < half * ldg; v++) h[v] += h[v + half * ldg];
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Sparse rows (CSR)                                                         */
/* ------------------------------------------------------------------------- */
/* Only the stored entries are touched: a logit row is bias + sum_j v_j WT[c_j]
 * and the gradient gets GT[c_j] += v_j r.  Indices may be unsorted, repeated
 * (summed, as scipy does) or explicit zeros.  An index outside [0, D) is not
 * used; the count of such entries is returned so the caller can raise. */

static ptrdiff_t csm_csr_logits(const double* values, const int64_t* indices, const int64_t* indptr,
                                ptrdiff_t first_row, ptrdiff_t n_rows, ptrdiff_t D,
                                const double* WT, ptrdiff_t ldz, const double* bias, double* Z)
{
    ptrdiff_t n_bad = 0;
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        double* z = Z + r * ldz;
        const int64_t begin = indptr[first_row + r], end = indptr[first_row + r + 1];
        for (ptrdiff_t k = 0; k < ldz; k += CSM_VL) {
            csm_vd acc = csm_load_d(bias + k);
            for (int64_t e = begin; e < end; e++) {
                const int64_t c = indices[e];
                if (c < 0 || c >= D) { if (k == 0) n_bad++; continue; }
                acc += CSM_SET1(values[e]) * csm_load_d(WT + c * ldz + k);
            }
            csm_store_d(z + k, acc);
        }
    }
    return n_bad;
}

static void csm_csr_accumulate(const double* values, const int64_t* indices, const int64_t* indptr,
                               ptrdiff_t first_row, ptrdiff_t n_rows, ptrdiff_t D,
                               const double* R, ptrdiff_t ldz, double* GT)
{
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const double* rr = R + r * ldz;
        for (int64_t e = indptr[first_row + r]; e < indptr[first_row + r + 1]; e++) {
            const int64_t c = indices[e];
            if (c < 0 || c >= D) continue;
            const csm_vd v = CSM_SET1(values[e]);
            double* g = GT + c * ldz;
            for (ptrdiff_t k = 0; k < ldz; k += CSM_VL) csm_store_d(g + k, csm_load_d(g + k) + v * csm_load_d(rr + k));
        }
    }
}

/* W's broadcast layout for the logits of short rows: for each whole block
 * of CSM_VL classes, the block's weights feature by feature,
 * WB[(b * D + i) * CSM_VL + c] = W[(b * CSM_VL + c) * ldw + i], as float64
 * (WB) and/or float32 (WBs); with fewer than CSM_VL classes, all K as one
 * block, WB[i * K + c] (the row tile's layout, csm_logits_few_tile_d).  Its
 * size in elements, 0 where it is not used (one-lane builds, rows of more
 * than 256 features, or of more than CSM_FEW_FEATURES with fewer than
 * CSM_VL classes). */
static ptrdiff_t csm_broadcast_size(ptrdiff_t K, ptrdiff_t D)
{
    if (CSM_VL < 2 || K < 1 || D * (ptrdiff_t)sizeof(double) > CSM_LOGITS_BLOCK_BYTES) return 0;
    if (K < CSM_VL) return D <= CSM_FEW_FEATURES ? K * D : 0;
    return K / CSM_VL * CSM_VL * D;
}

static void csm_broadcast_layout(const double* W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t D,
                                 double* WB, float* WBs)
{
    if (K < CSM_VL) {
        /* the float64 row tile's layout only: no float32 layout is made for
         * so few classes (csm_short_layout_size_s) */
        for (ptrdiff_t i = 0; i < D && WB != NULL; i++)
            for (ptrdiff_t c = 0; c < K; c++) WB[i * K + c] = W[c * ldw + i];
        return;
    }
    for (ptrdiff_t b = 0; b + CSM_VL <= K; b += CSM_VL) {
        ptrdiff_t i = 0;
        /* Whole CSM_VL x CSM_VL blocks through a register transpose: this runs
         * on every call, and for a 32-row batch the scalar loop cost as much
         * as the logits it speeds up. */
        for (; i + CSM_VL <= D; i += CSM_VL) {
            csm_vd m[CSM_VL];
            for (int c = 0; c < CSM_VL; c++) m[c] = csm_load_d(W + (b + c) * ldw + i);
            csm_transpose(m);
            for (int f = 0; f < CSM_VL; f++) {
                const ptrdiff_t at = b * D + (i + f) * CSM_VL;
                if (WB != NULL) csm_store_d(WB + at, m[f]);
                if (WBs != NULL) {
#if CSM_VECTOR_EXT
                    const csm_vf narrow = __builtin_convertvector(m[f], csm_vf);
                    memcpy(WBs + at, &narrow, sizeof narrow);
#else
                    WBs[at] = (float)m[f];
#endif
                }
            }
        }
        for (; i < D; i++)
            for (int c = 0; c < CSM_VL; c++) {
                const double v = W[(b + c) * ldw + i];
                if (WB != NULL) WB[(b * D + i * CSM_VL) + c] = v;
                if (WBs != NULL) WBs[(b * D + i * CSM_VL) + c] = (float)v;
            }
    }
}

/* ------------------------------------------------------------------------- */
/* Logits and the gradient's rank update, templated on the type of X         */
/* ------------------------------------------------------------------------- */

#define CSM_XT double
#define CSM_SFX(name) name##_d
#define CSM_LOADX csm_load_d
#if CSM_VL > 1
#define CSM_LOGITS_BCAST csm_logits_bcast_tile_d
#endif
#include "_kernels_typed.h"
#undef CSM_XT
#undef CSM_SFX
#undef CSM_LOADX
#undef CSM_LOGITS_BCAST

#if !CSM_VECTOR_EXT
/* float32 rows widened as read, for builds without vectors (which have no
 * float32 kernels of their own, _kernels_f32.h) */
#define CSM_XT float
#define CSM_SFX(name) name##_f
#define CSM_LOADX csm_load_f
#include "_kernels_typed.h"
#undef CSM_XT
#undef CSM_SFX
#undef CSM_LOADX
#endif

/* uint8 (and bool, which has the same bytes) rows widened for the float
 * kernels, a chunk at a time: dst[r * D + i] = X[r * s0 + i * s1] for
 * r < n_rows, i < D (element strides).  Rows with contiguous features ask
 * for the row a chunk on as they go: the float kernels prefetch the rows
 * they read, here the widened copy, so without it every chunk of X waited
 * on memory (digits-like loss and gradient, 1 thread: the widening took 15%
 * of the time). */
CSM_INLINE void csm_widen_prefetch(const uint8_t* x, ptrdiff_t s0, ptrdiff_t D)
{
    /* any address: prefetches never fault */
    const char* ahead = (const char*)((uintptr_t)x + (uintptr_t)(CSM_CHUNK * s0));
    for (ptrdiff_t off = 0; off < D; off += 64) CSM_PREFETCH(ahead + off);
}

static void csm_widen_u8_d(const uint8_t* X, ptrdiff_t s0, ptrdiff_t s1, ptrdiff_t n_rows, ptrdiff_t D,
                           double* dst)
{
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const uint8_t* x = X + r * s0;
        double* d = dst + r * D;
        ptrdiff_t i = 0;
        if (s1 == 1) {
            csm_widen_prefetch(x, s0, D);
            for (; i + CSM_VL <= D; i += CSM_VL) csm_store_d(d + i, csm_load_u8(x + i));
        }
        for (; i < D; i++) d[i] = (double)x[i * s1];
    }
}

static void csm_widen_u8_f(const uint8_t* X, ptrdiff_t s0, ptrdiff_t s1, ptrdiff_t n_rows, ptrdiff_t D,
                           float* dst)
{
    for (ptrdiff_t r = 0; r < n_rows; r++) {
        const uint8_t* x = X + r * s0;
        float* d = dst + r * D;
        if (s1 == 1) {
            csm_widen_prefetch(x, s0, D);
            for (ptrdiff_t i = 0; i < D; i++) d[i] = (float)x[i];   /* vectorised by the compiler */
        } else {
            for (ptrdiff_t i = 0; i < D; i++) d[i] = (float)x[i * s1];
        }
    }
}

/* float32 arithmetic for float32 X where vectors are available; elsewhere the
 * float64 kernels stand in (same results up to rounding). */
#if CSM_VECTOR_EXT
#include "_kernels_f32.h"
#endif
#ifndef CSM_ROWS_TILE
/* Without the row tile, short float32 rows take the broadcast tile (the
 * float64 kernels that stand in without vectors ignore the layout). */
static ptrdiff_t csm_short_layout_size_s(ptrdiff_t K, ptrdiff_t D)
{
    return K < CSM_VL ? 0 : csm_broadcast_size(K, D);   /* no row tile for fewer classes here */
}
static void csm_short_layout_s(const double* W, ptrdiff_t ldw, ptrdiff_t K, ptrdiff_t D, float* WBs)
{
    csm_broadcast_layout(W, ldw, K, D, NULL, WBs);
}
#endif
#if !CSM_VECTOR_EXT
static void csm_logits_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                         const float* Ws, const double* W, ptrdiff_t ldw, const float* WBs, ptrdiff_t K,
                         const double* bias, double* Z, ptrdiff_t ldc)
{
    (void)Ws;
    (void)WBs;
    csm_logits_f(X, ldx, n_rows, D, W, ldw, NULL, K, bias, Z, ldc);
}
static void csm_rank_update_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                              const double* R, ptrdiff_t rr, ptrdiff_t rk, ptrdiff_t K, double* G, ptrdiff_t ldg)
{
    csm_rank_update_f(X, ldx, n_rows, D, R, rr, rk, K, G, ldg);
}
#endif
#ifndef CSM_LABEL_LOSS_S
/* The float32 label loss, the rank update of its float32 residuals and the
 * logits relative to class 0 are AVX-512 kernels (with the row tile);
 * elsewhere the float64 label loss serves float32 X, and these are never
 * called (CSM_LABEL_LOSS_S is 0). */
#define CSM_LABEL_LOSS_S 0
static void csm_cm_label_loss_s(const double* Z, ptrdiff_t ldc, ptrdiff_t n_rows, ptrdiff_t K,
                                const double* label, const double* weight, int residual, int unit,
                                double* loss, double* col, float* Rs, ptrdiff_t ldr)
{
    (void)Z; (void)ldc; (void)n_rows; (void)K; (void)label; (void)weight; (void)residual; (void)unit;
    (void)loss; (void)col; (void)Rs; (void)ldr;
}
static void csm_rank_update_rs(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                               const float* Rs, ptrdiff_t K, double* G, ptrdiff_t ldg)
{
    (void)X; (void)ldx; (void)n_rows; (void)D; (void)Rs; (void)K; (void)G; (void)ldg;
}
static void csm_logits_rows_shifted_s(const float* X, ptrdiff_t ldx, ptrdiff_t n_rows, ptrdiff_t D,
                                      const float* WR0, ptrdiff_t K, const double* bias0, double* Z, ptrdiff_t ldc)
{
    (void)X; (void)ldx; (void)n_rows; (void)D; (void)WR0; (void)K; (void)bias0; (void)Z; (void)ldc;
}
#endif

#endif /* CSOFTMAX_KERNELS_H */
