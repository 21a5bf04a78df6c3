/* CPU kernels of mdn_snntorch's event-driven Linear layer (loaded with ctypes by
   mdn_snntorch/sparse/c_kernels.py).

   A spike input x [R, K] is mostly zeros, so x W^T only needs the rows of W^T of the active inputs:
   the kernels turn x into a compressed list of its nonzero entries (by row, CSR; for the weight gradient
   also by column, CSC) and run one sparse x dense product, out[i, :] = init[:] + sum_p val[p] D[idx[p], :],
   over blocks of NV vectors of D's columns (the accumulators in registers) and chunks of D's rows (W^T in
   the forward, the output gradient in the backward), so that the chunk of D being read stays in the core's
   L1 cache; the partial sums between chunks go to the output (or a scratch block).

   The dtype-generic kernels are in spike_linear_impl.h (the lists and the gather), spike_runs_impl.h (the run
   coding over time) and spike_complement_impl.h (the complement coding over time), included below once per
   floating type; each exported function carries the type's suffix (sl_gather_f32, sl_gather_f64, ...). Threads: OpenMP
   (-fopenmp, PyTorch's own libgomp); without it, one thread. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* OMP(...): an OpenMP pragma, nothing in a build without OpenMP (which then runs one thread) */
#ifdef _OPENMP
#include <omp.h>
#define OMP(...) _Pragma(#__VA_ARGS__)
#define THREAD_ID omp_get_thread_num()
#define NUM_THREADS omp_get_num_threads()
#else
#define OMP(...)
#define THREAD_ID 0
#define NUM_THREADS 1
#endif

/* bytes per vector: the widest the compiler targets (GCC/Clang vector extensions; 64 = AVX-512) */
#ifndef VBYTES
#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
#endif
/* vectors per column block: the accumulators of one output row's block, kept in registers (sl_gather's
   switch has a case for each count up to it) */
#define NV 4
/* the chunk of D's rows walked by one pass over the output rows: this many bytes of its block of columns
   (within the core's L1 data cache; 128 rows of 4 AVX-512 vectors; measured by benchmarks/bench_sparse.py) */
#define CHUNK_BYTES (32 * 1024)
/* when the partial sums of one block of columns for all of a thread's rows would take more than TILE_ABOVE bytes
   of the L2 cache, the rows go ROW_TILE at a time, all blocks of columns for one tile before the next: the
   tile's partial sums stay in the L2 cache, at the cost of reading D once per tile (so not when D is the
   larger: the weight gradient's output rows are the few inputs, its D the many rows of the output gradient;
   benchmarks/bench_sparse.py, section 1b) */
#define TILE_ABOVE (256 * 1024)
#define ROW_TILE 512
/* rows of D per chunk */
#define KC (CHUNK_BYTES / (NV * VBYTES))
/* fewer chunks (of more rows) when the rows have fewer entries than this per chunk on average: each chunk
   costs every row a load and a store of its partial sums, which few entries do not repay */
#define CHUNK_ENTRIES 8
/* ranges of rows per thread in sl_gather (taken dynamically) */
#define CHUNKS_PER_THREAD 8

/* [lo, hi) of part t of n over rows 0..R with pointers ptr: equal shares of entries, not of rows */
static void balanced_range(const int64_t *ptr, int64_t R, int t, int n, int64_t *lo, int64_t *hi) {
    const int64_t total = ptr[R];
    int64_t bounds[2];
    for (int s = 0; s < 2; s++) {
        const int64_t want = total * (int64_t)(t + s) / n;
        int64_t a = 0, b = R; /* first row whose start is >= want */
        while (a < b) {
            const int64_t m = (a + b) / 2;
            if (ptr[m] < want) a = m + 1; else b = m;
        }
        bounds[s] = (t + s == n) ? R : a;
    }
    *lo = bounds[0];
    *hi = bounds[1];
}

/* cs[i (nc + 1) + c], for the rows i of lo..hi and c = 0 .. nc: the first entry of row i whose index is at
   least c kc (the start of its entries in chunk c of D's rows; c = nc: the row's end). */
static void chunk_starts(int64_t lo, int64_t hi, int64_t nc, int64_t kc, const int64_t *ptr, const int32_t *idx, int64_t *cs) {
    for (int64_t i = lo; i < hi; i++) {
        int64_t p = ptr[i], *row = cs + i * (nc + 1);
        row[0] = p;
        for (int64_t c = 1; c < nc; c++) {
            while (p < ptr[i + 1] && idx[p] < c * kc) p++;
            row[c] = p;
        }
        row[nc] = ptr[i + 1];
    }
}

/* 64 x 64 bits transposed in place: bit c of a[r] becomes bit r of a[c] (the two off-diagonal blocks of
   32 x 32 bits swapped, then of 16 x 16 within each block, ... down to single bits) */
static inline void transpose64(uint64_t a[64]) {
    uint64_t m = 0x00000000FFFFFFFFULL;
    for (int j = 32; j != 0; j >>= 1, m ^= m << j)
        for (int k = 0; k < 64; k = (k + j + 1) & ~j) {
            const uint64_t t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
        }
}

/* Tile (w, rw) of the bit rows words [n, W] transposed into one bit row per column, RW words each: bit j of
   bycol[(64 w + c) RW + rw] is bit c of word w of row 64 rw + j (0 past row n) */
static inline void transpose_tile(const uint64_t *words, int64_t n, int64_t W, int64_t RW, int64_t w, int64_t rw,
                                  uint64_t *bycol) {
    uint64_t bits[64];
    for (int j = 0; j < 64; j++) bits[j] = rw * 64 + j < n ? words[(rw * 64 + j) * W + w] : 0;
    transpose64(bits);
    for (int c = 0; c < 64; c++) bycol[(w * 64 + c) * RW + rw] = bits[c];
}

/* Run coding over time (spike_runs_impl.h; the complement coding, spike_complement.h, uses the same chains and
   segments). The rows of x are the steps of S chains, row t S + b being step t of
   chain b, cut into segments of RUN_STEPS steps (segment s = b nseg + t / RUN_STEPS, nseg = ceil(T / RUN_STEPS)).
   In a segment, input k of chain b is either direct (its sum gets a term at every step the input is on) or run
   coded (a term where it turns on, +1, and where it turns off, -1, carried to the later steps), whichever needs
   fewer terms. */
#define RUN_STEPS 32

/* Segments per chain of T steps */
static inline int64_t chain_segments(int64_t T) { return (T + RUN_STEPS - 1) / RUN_STEPS; }

/* The segment of step t of chain b (nseg = chain_segments(T)) */
static inline int64_t step_segment(int64_t t, int64_t b, int64_t nseg) { return b * nseg + t / RUN_STEPS; }

/* The mask bits of segments 2 p and 2 p + 1 for the inputs of mask word w, transposed: bit i of bits[c] is
   input 64 w + c at step i of segment 2 p, bit 32 + i the same for segment 2 p + 1 (0 past a segment's end or
   past the last segment). */
static void segment_pair_bits(const uint64_t *mask, int64_t W, int64_t S, int64_t T, int64_t p, int64_t w, uint64_t bits[64]) {
    const int64_t nseg = chain_segments(T);
    for (int h = 0; h < 2; h++) {
        const int64_t s = 2 * p + h, b = s / nseg, t0 = (s % nseg) * RUN_STEPS;
        for (int i = 0; i < RUN_STEPS; i++)
            bits[h * RUN_STEPS + i] = b < S && t0 + i < T ? mask[((t0 + i) * S + b) * W + w] : 0;
    }
    transpose64(bits);
}

/* Steps in segment s (the last of a chain may be shorter) */
static inline int segment_steps(int64_t s, int64_t T) {
    const int64_t nseg = chain_segments(T), t0 = (s % nseg) * RUN_STEPS;
    return T - t0 < RUN_STEPS ? (int)(T - t0) : RUN_STEPS;
}

/* The changes of an input's bits f over the n steps of a segment (bit i: on at step i differs from step i - 1,
   off before the first step) */
static inline uint32_t segment_changes(uint32_t f, int n) {
    const uint32_t steps = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
    return (f ^ (f << 1)) & steps;
}

/* carried[s W + w], bit c: input 64 w + c of segment s is run coded (s < S nseg); tiles split by the threads */
void sl_runs_split(const uint64_t *mask, int64_t K, int64_t S, int64_t T, uint64_t *carried, int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), pairs = (S * nseg + 1) / 2;
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t tile = 0; tile < pairs * W; tile++) {
        const int64_t p = tile / W, w = tile % W;
        uint64_t bits[64], cm[2] = {0, 0};
        segment_pair_bits(mask, W, S, T, p, w, bits);
        for (int h = 0; h < 2 && 2 * p + h < S * nseg; h++) {
            const int n = segment_steps(2 * p + h, T);
            for (int c = 0; c < 64; c++) {
                const uint32_t f = (uint32_t)(bits[c] >> (32 * h));
                cm[h] |= (uint64_t)(__builtin_popcount(segment_changes(f, n)) < __builtin_popcount(f)) << c;
            }
            carried[(2 * p + h) * W + w] = cm[h];
        }
    }
}

/* The changes of every input from one step to the next, counted over all rows (at a segment's first step,
   the inputs on): the run coding's entries were every input run coded, an upper bound on its cost */
int64_t sl_runs_changes(const uint64_t *mask, int64_t K, int64_t S, int64_t T) {
    const int64_t W = (K + 63) / 64;
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = t * S * W; i < (t + 1) * S * W; i++)
            n += __builtin_popcountll(t % RUN_STEPS ? mask[i] ^ mask[i - S * W] : mask[i]);
    return n;
}

/* Word w of row r = t S + b's two lists, from the mask and the run-coded inputs of its segment (sl_runs_split's
   carried): *direct, the direct entries (the inputs on and not run coded), and *run, the run entries (the
   run-coded inputs that changed since the previous step; at a segment's first step, those on). Returns the
   mask word (a run entry's input is on, +1, or off, -1). */
static inline uint64_t run_row_words(const uint64_t *mask, const uint64_t *carried, int64_t S, int64_t W, int64_t nseg,
                                     int64_t r, int64_t w, uint64_t *direct, uint64_t *run) {
    const int64_t t = r / S, b = r % S;
    const uint64_t m = mask[r * W + w], cm = carried[step_segment(t, b, nseg) * W + w];
    const uint64_t prev = t % RUN_STEPS ? mask[(r - S) * W + w] : 0;
    *direct = m & ~cm;
    *run = (m ^ prev) & cm;
    return m;
}

/* Row pointers of the two lists of every row (dptr, rptr [R + 1], R = S T), from the mask and sl_runs_split's
   carried */
void sl_runs_count_rows(const uint64_t *mask, const uint64_t *carried, int64_t K, int64_t S, int64_t T, int64_t *dptr,
                        int64_t *rptr, int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), R = S * T;
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        int64_t nd = 0, nr = 0;
        for (int64_t w = 0; w < W; w++) {
            uint64_t d, e;
            run_row_words(mask, carried, S, W, nseg, r, w, &d, &e);
            nd += __builtin_popcountll(d);
            nr += __builtin_popcountll(e);
        }
        dptr[r + 1] = nd;
        rptr[r + 1] = nr;
    }
    dptr[0] = rptr[0] = 0;
    for (int64_t r = 0; r < R; r++) {
        dptr[r + 1] += dptr[r];
        rptr[r + 1] += rptr[r];
    }
}

#include "spike_complement.h"

/* bit i of the mask: p[i] != 0 (NaN included), for 64 values */
#ifdef __AVX__
#include <immintrin.h>
#define HAVE_NZ_MASK64 1
static inline uint64_t nz_mask64_f32(const float *p) {
    uint64_t m = 0;
    for (int i = 0; i < 8; i++)
        m |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 8 * i), _mm256_setzero_ps(), _CMP_NEQ_UQ))
             << (8 * i);
    return m;
}
static inline uint64_t nz_mask64_f64(const double *p) {
    uint64_t m = 0;
    for (int i = 0; i < 16; i++)
        m |= (uint64_t)(uint32_t)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(p + 4 * i), _mm256_setzero_pd(), _CMP_NEQ_UQ))
             << (4 * i);
    return m;
}
#endif

#define scalar_t float
#define SFX(name) name##_f32
#include "spike_linear_impl.h"
#include "spike_runs_impl.h"
#include "spike_complement_impl.h"
#undef scalar_t
#undef SFX

#define scalar_t double
#define SFX(name) name##_f64
#include "spike_linear_impl.h"
#include "spike_runs_impl.h"
#include "spike_complement_impl.h"
#undef scalar_t
#undef SFX

int sl_vector_bytes(void) { return VBYTES; }
int sl_block_vectors(void) { return NV; }
int sl_run_steps(void) { return RUN_STEPS; }
