/* The dtype-generic kernels of spike_linear.c, included once per floating type with scalar_t and
   SFX(name) (the exported name with the type's suffix) defined. */

typedef scalar_t SFX(vec_t) __attribute__((vector_size(VBYTES), aligned(sizeof(scalar_t)), may_alias));
#define VEC SFX(vec_t)
#define VL ((int64_t)(VBYTES / sizeof(scalar_t)))

/* One pass over x [R, K]: the bit mask of its nonzeros (NaN included), W = ceil(K / 64) words per row (bit
   k % 64 of word k / 64 of row r: x[r, k] != 0; the bits past K are 0), and their count per row turned into
   row pointers (ptr[0] = 0, ptr[R] = number of nonzeros, returned). *nonbinary is set when a value is
   neither 0 nor 1. */
int64_t SFX(sl_scan_rows)(const scalar_t *x, int64_t R, int64_t K, uint64_t *mask, int64_t *ptr, int32_t *nonbinary,
                          int threads) {
    (void)threads; /* (unused without OpenMP) */
    const int64_t W = (K + 63) / 64;
    int nb = 0;
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 64) reduction(| : nb) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        const scalar_t *row = x + r * K;
        int64_t c = 0;
        int b = 0;
        for (int64_t k = 0; k < K; k++) b |= (row[k] != 0) & (row[k] != 1);
        for (int64_t w = 0; w < W; w++) {
            const int64_t k0 = w * 64, n = K - k0 < 64 ? K - k0 : 64;
            uint64_t m = 0;
#ifdef HAVE_NZ_MASK64
            if (n == 64)
                m = SFX(nz_mask64)(row + k0);
            else
#endif
                for (int64_t i = 0; i < n; i++) m |= (uint64_t)(row[k0 + i] != 0) << i;
            mask[r * W + w] = m;
            c += __builtin_popcountll(m);
        }
        ptr[r + 1] = c;
        nb |= b;
    }
    ptr[0] = 0;
    for (int64_t r = 0; r < R; r++) ptr[r + 1] += ptr[r];
    *nonbinary = nb;
    return ptr[R];
}

/* The set bits of the bit row words[0 .. nw) (bit i in word i / 64) in increasing order, listed from position p on:
   idx[p] = i and, when val is not NULL, val[p] = values[i * step]. Returns the position after the last. The
   work follows the number of set bits, with no mispredicted branch per clear one. */
static inline int64_t SFX(list_bits)(const uint64_t *words, int64_t nw, const scalar_t *values, int64_t step, int32_t *idx,
                                     scalar_t *val, int64_t p) {
    for (int64_t w = 0; w < nw; w++)
        for (uint64_t m = words[w]; m; m &= m - 1) {
            const int64_t i = w * 64 + __builtin_ctzll(m);
            idx[p] = (int32_t)i;
            if (val) val[p] = values[i * step];
            p++;
        }
    return p;
}

/* The column index (and, when val is not NULL, the value x[r, k]) of every nonzero, row by row in column
   order, at the row pointers of sl_scan_rows, from its mask. */
void SFX(sl_fill_rows)(const uint64_t *mask, const scalar_t *x, int64_t R, int64_t K, const int64_t *ptr, int32_t *idx,
                       scalar_t *val, int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64;
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 64) if (threads > 1))
    for (int64_t r = 0; r < R; r++) SFX(list_bits)(mask + r * W, W, x + r * K, 1, idx, val, ptr[r]);
}

/* The same nonzeros by column (CSC), from the mask: column pointers cptr [K + 1], row indices cidx and values
   cval (x[r, k], when cval is not NULL), each column's rows in increasing order. The mask is transposed 64 x 64
   bits at a time into one bit row per column (bit r: x[r, k] != 0), whose set bits give each column's count
   and then its entries, written in one sequential run per column. Threads split the tiles, then the columns;
   the result does not depend on their number. Returns 0, or -1 when the transposed mask cannot be
   allocated. */
int SFX(sl_columns)(const uint64_t *mask, const scalar_t *x, int64_t R, int64_t K, int64_t *cptr, int32_t *cidx,
                    scalar_t *cval, int threads) {
    if (threads < 1) threads = 1;
    const int64_t W = (K + 63) / 64, RW = (R + 63) / 64; /* words per mask row; per transposed column */
    uint64_t *bycol = (uint64_t *)malloc((size_t)(W * 64) * (size_t)RW * sizeof(uint64_t));
    if (!bycol) return -1;
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t tile = 0; tile < W * RW; tile++) transpose_tile(mask, R, W, RW, tile / RW, tile % RW, bycol);
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t k = 0; k < K; k++) {
        int64_t n = 0;
        for (int64_t rw = 0; rw < RW; rw++) n += __builtin_popcountll(bycol[k * RW + rw]);
        cptr[k + 1] = n;
    }
    cptr[0] = 0;
    for (int64_t k = 0; k < K; k++) cptr[k + 1] += cptr[k];
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 16) if (threads > 1))
    for (int64_t k = 0; k < K; k++) SFX(list_bits)(bycol + k * RW, RW, x + k, K, cidx, cval, cptr[k]);
    free(bycol);
    return 0;
}

/* Rows lo..hi of the product for one block of nv vectors of columns starting at column o0 (nv a compile-time
   constant after inlining, so the accumulators live in registers), D's rows taken kc at a time: for each
   chunk c of D's rows, every output row adds its entries in that chunk, cs[i (nc + 1) + c] .. cs[i (nc + 1)
   + c + 1] - 1, to its partial sums, kept in part (row i at part + i * ps; the chunk of D, kc x nv vectors,
   stays in the L1 cache). The entries of a row are in increasing order of their index, so each sum is still
   init + val[ptr[i]] D[..] + val[ptr[i] + 1] D[..] + ..., in that order: the result is the same bits as one
   pass over the row. */
static inline __attribute__((always_inline)) void SFX(block)(const int nv, const int has_val, int64_t o0, int64_t lo,
                                                             int64_t hi, int64_t nc, const int64_t *cs, const int32_t *idx,
                                                             const scalar_t *val, const scalar_t *D, int64_t ld,
                                                             const scalar_t *init, scalar_t *part, int64_t ps) {
    const scalar_t *Db = D + o0;
    for (int64_t c = 0; c < nc; c++) {
        for (int64_t i = lo; i < hi; i++) {
            scalar_t *o = part + i * ps;
            VEC acc[NV];
            for (int v = 0; v < nv; v++)
                acc[v] = c ? *(const VEC *)(o + v * VL) : init ? *(const VEC *)(init + o0 + v * VL) : (VEC){0};
            for (int64_t p = cs[i * (nc + 1) + c], e = cs[i * (nc + 1) + c + 1]; p < e; p++) {
                const scalar_t *d = Db + (int64_t)idx[p] * ld;
                if (has_val) {
                    const VEC s = (VEC){0} + val[p];
                    for (int v = 0; v < nv; v++) acc[v] += s * *(const VEC *)(d + v * VL);
                } else {
                    for (int v = 0; v < nv; v++) acc[v] += *(const VEC *)(d + v * VL);
                }
            }
            for (int v = 0; v < nv; v++) *(VEC *)(o + v * VL) = acc[v];
        }
    }
}

/* Rows lo..hi of the product for all columns, block by block: blocks of NV vectors, the last one moved
   left to end at column N (overlapping its neighbour: every load is a whole vector, and the lanes computed
   twice are computed alike). The partial sums are kept in scratch ([n, NV vectors]) when there is one, copied
   to out once a block is done (a block moved left copies only its own columns: every output is written by
   one block), else in out itself (its rows contiguous, sj == 1). */
static void SFX(rows)(int64_t lo, int64_t hi, int64_t qlo, int64_t qhi, int64_t N, int64_t nc, const int64_t *cs,
                      const int32_t *idx, const scalar_t *val, const scalar_t *D, int64_t ld, const scalar_t *init,
                      scalar_t *out, int64_t si, int64_t sj, scalar_t *scratch) {
    const int64_t nvec = (N + VL - 1) / VL;
    for (int64_t q0 = qlo; q0 < qhi;) {
        int nv = nvec - q0 < NV ? (int)(nvec - q0) : NV;
        while (nv * VL > N) nv--; /* (a row narrower than the block: one vector fewer, the last moved left) */
        const int64_t o0 = q0 * VL < N - nv * VL ? q0 * VL : N - nv * VL;
        scalar_t *part = scratch ? scratch : out + o0;
        const int64_t ps = scratch ? NV * VL : si;
        /* (BLOCK: the calls of block for 1 .. NV vectors, with and without values) */
#define BLOCK(nv) (val ? SFX(block)(nv, 1, o0, lo, hi, nc, cs, idx, val, D, ld, init, part, ps) \
                       : SFX(block)(nv, 0, o0, lo, hi, nc, cs, idx, val, D, ld, init, part, ps))
        switch (nv) {
        case 1: BLOCK(1); break;
        case 2: BLOCK(2); break;
        case 3: BLOCK(3); break;
        default: BLOCK(NV); break;
        }
#undef BLOCK
        if (scratch)
            for (int64_t i = lo; i < hi; i++)
                for (int64_t l = q0 * VL - o0; l < nv * VL; l++) out[i * si + (o0 + l) * sj] = scratch[i * ps + l];
        q0 += nv;
    }
}

/* Sparse x dense: out(i, j) = init[j] + sum_{p = ptr[i]}^{ptr[i + 1] - 1} val[p] D[idx[p], j] for i < n, j < N,
   summed in that order, with D's row r at D + r ld (ld >= N; see c_kernels.padded_rows for the stride that
   keeps every vector load within a cache line), the entries of each row in increasing order of idx, val
   NULL meaning all ones, init NULL meaning zero, and out(i, j) stored at out[i * si + j * sj]. The work
   items, taken by the threads as they come free (a thread descheduled by a busy machine holds up little):
   the rows i cut into CHUNKS_PER_THREAD ranges per thread holding equal numbers of entries; or, where D has
   more rows than the output (the weight gradient), the blocks of columns, each for all rows, so that every
   block of D is read once (ranges of rows would each read all of D again). Every output is summed by one
   thread. Returns 0, or -1 when the chunk starts and partial sums cannot be allocated. */
int SFX(sl_gather)(int64_t n, int64_t N, const int64_t *ptr, const int32_t *idx, const scalar_t *val, const scalar_t *D,
                   int64_t nd, int64_t ld, const scalar_t *init, scalar_t *out, int64_t si, int64_t sj, int threads) {
    if (threads < 1) threads = 1;
    if (N < VL) { /* narrower than a vector: plain loops */
        OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
        for (int64_t i = 0; i < n; i++) {
            scalar_t acc[VBYTES / sizeof(scalar_t)];
            for (int64_t j = 0; j < N; j++) acc[j] = init ? init[j] : 0;
            for (int64_t p = ptr[i]; p < ptr[i + 1]; p++) {
                const scalar_t *d = D + (int64_t)idx[p] * ld;
                const scalar_t s = val ? val[p] : 1;
                for (int64_t j = 0; j < N; j++) acc[j] += val ? s * d[j] : d[j];
            }
            for (int64_t j = 0; j < N; j++) out[i * si + j * sj] = acc[j];
        }
        return 0;
    }
    int64_t nc = (nd + KC - 1) / KC > 0 ? (nd + KC - 1) / KC : 1;
    if (n && ptr[n] / (n * CHUNK_ENTRIES) < nc) nc = ptr[n] / (n * CHUNK_ENTRIES) > 1 ? ptr[n] / (n * CHUNK_ENTRIES) : 1;
    const int64_t kc = (nd + nc - 1) / nc;
    const int64_t nvec = (N + VL - 1) / VL, blocks = (nvec + NV - 1) / NV;
    const int by_block = threads > 1 && nd > n, ranges = threads > 1 ? threads * CHUNKS_PER_THREAD : 1;
    int64_t *cs = (int64_t *)malloc((size_t)n * (size_t)(nc + 1) * sizeof(int64_t));
    /* partial sums: one block's for all rows, per thread when the threads take blocks (no more threads than
       blocks then) */
    const int workers = by_block && blocks < threads ? (int)blocks : threads;
    const size_t part_bytes = ((size_t)n * NV * VBYTES + 63) / 64 * 64;
    const int scratches = by_block ? workers : sj != 1;
    scalar_t *scratch = scratches ? (scalar_t *)aligned_alloc(64, scratches * part_bytes) : NULL;
    if (!cs || (scratches && !scratch)) {
        free(cs);
        free(scratch);
        return -1;
    }
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1))
    for (int c = 0; c < ranges; c++) {
        int64_t lo, hi;
        balanced_range(ptr, n, c, ranges, &lo, &hi);
        chunk_starts(lo, hi, nc, kc, ptr, idx, cs);
    }
    OMP(omp parallel for num_threads(workers) schedule(dynamic, 1) if (workers > 1))
    for (int item = 0; item < (by_block ? blocks : ranges); item++) {
        int64_t lo = 0, hi = n;
        if (!by_block) balanced_range(ptr, n, item, ranges, &lo, &hi);
        const int64_t qlo = by_block ? item * NV : 0, qhi = by_block ? (item + 1) * NV : nvec;
        scalar_t *mine = scratch ? (scalar_t *)((char *)scratch + (by_block ? THREAD_ID : 0) * part_bytes) : NULL;
        const int64_t tile = (hi - lo) * NV * VBYTES > TILE_ABOVE ? ROW_TILE : hi - lo;
        for (int64_t t0 = lo; t0 < hi; t0 += tile)
            SFX(rows)(t0, t0 + tile < hi ? t0 + tile : hi, qlo, qhi < nvec ? qhi : nvec, N, nc, cs, idx, val, D, ld, init,
                      out, si, sj, mine);
    }
    free(cs);
    free(scratch);
    return 0;
}

#undef VEC
#undef VL
