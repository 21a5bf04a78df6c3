/* The dtype-generic kernels of the complement coding over time (spike_complement.h), included after
   spike_linear_impl.h once per floating type with scalar_t and SFX(name) defined. */

/* The forward's entries at the pointers of sl_complement_count_rows, each row's in increasing index: input k
   (the bits of m ^ cm), +1 where it is on (not complemented) and -1 where it is off (complemented), then
   K + b nseg + s, +1, the row of A[b, s] (when segment s of chain b complements an input) */
void SFX(sl_complement_fill_rows)(const uint64_t *mask, const uint64_t *comp, int64_t K, int64_t S, int64_t T,
                                  const int64_t *ptr, int32_t *idx, scalar_t *val, int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), R = S * T;
    const scalar_t sign[2] = {-1, 1}; /* (a load, not a branch on the bit) */
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        const int64_t s = step_segment(r / S, r % S, nseg);
        const uint64_t *m = mask + r * W, *cm = comp + s * W;
        int64_t p = ptr[r], any = 0;
        for (int64_t w = 0; w < W; w++) {
            for (uint64_t e = m[w] ^ cm[w]; e; e &= e - 1) {
                const int c = __builtin_ctzll(e);
                idx[p] = (int32_t)(w * 64 + c);
                val[p++] = sign[(m[w] >> c) & 1];
            }
            any |= cm[w] != 0;
        }
        if (any) {
            idx[p] = (int32_t)(K + s);
            val[p] = 1;
        }
    }
}

/* The weight gradient's rows D [S T + S nseg, ld]: D[r] = dY[r] (a contiguous dY [S T, N]), then
   D[S T + b nseg + s] = Tot[b, s], chain b's dY summed over the steps of segment s in step order. Threads split
   the chains. */
void SFX(sl_complement_grad_rows)(const scalar_t *dY, int64_t S, int64_t T, int64_t N, scalar_t *D, int64_t ld,
                                  int threads) {
    (void)threads;
    const int64_t R = S * T, nseg = chain_segments(T);
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t b = 0; b < S; b++)
        for (int64_t t = 0; t < T; t++) {
            const int64_t r = t * S + b;
            const scalar_t *restrict y = dY + r * N;
            scalar_t *restrict d = D + r * ld, *restrict tot = D + (R + step_segment(t, b, nseg)) * ld;
            for (int64_t j = 0; j < N; j++) d[j] = y[j];
            if (t % RUN_STEPS == 0)
                for (int64_t j = 0; j < N; j++) tot[j] = y[j];
            else
                for (int64_t j = 0; j < N; j++) tot[j] += y[j];
        }
}

/* The weight gradient's entries by column (CSC) over the rows of sl_complement_grad_rows: for input k, the rows r
   of x where it is on and not complemented (+1) or off and complemented (-1), the bits of m ^ cm, then the rows
   S T + s of Tot for the segments s that complement it (+1); each part in increasing row. The row words m ^ cm and
   the segments' words are transposed 64 x 64 bits at a time, as in sl_columns; an entry's sign is whether its
   segment complements the input. Returns 0, or -1 when the transposed words cannot be allocated. */
int SFX(sl_complement_columns)(const uint64_t *mask, const uint64_t *comp, int64_t K, int64_t S, int64_t T,
                               int64_t *cptr, int32_t *cidx, scalar_t *cval, int threads) {
    if (threads < 1) threads = 1;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), R = S * T, G = S * nseg;
    const int64_t RW = (R + 63) / 64, GW = (G + 63) / 64; /* words per transposed column: of rows, of segments */
    const size_t row_words = (size_t)(W * 64) * (size_t)RW, seg_words = (size_t)(W * 64) * (size_t)GW;
    uint64_t *flip = (uint64_t *)malloc((row_words + seg_words) * sizeof(uint64_t));
    int32_t *seg_of = (int32_t *)malloc((size_t)R * sizeof(int32_t)); /* row r's segment */
    if (!flip || !seg_of) {
        free(flip);
        free(seg_of);
        return -1;
    }
    uint64_t *segs = flip + row_words;
    const scalar_t sign[2] = {1, -1}; /* by whether the segment complements the input (a load, not a branch) */
    for (int64_t r = 0; r < R; r++) seg_of[r] = (int32_t)step_segment(r / S, r % S, nseg);
    OMP(omp parallel num_threads(threads) if (threads > 1))
    {
        OMP(omp for schedule(static))
        for (int64_t tile = 0; tile < W * RW; tile++) {
            const int64_t w = tile / RW, rw = tile % RW;
            uint64_t e[64];
            for (int j = 0; j < 64; j++) {
                const int64_t r = rw * 64 + j;
                e[j] = r < R ? mask[r * W + w] ^ comp[seg_of[r] * W + w] : 0;
            }
            transpose64(e);
            for (int c = 0; c < 64; c++) flip[(w * 64 + c) * RW + rw] = e[c];
        }
        OMP(omp for schedule(static))
        for (int64_t tile = 0; tile < W * GW; tile++) transpose_tile(comp, G, W, GW, tile / GW, tile % GW, segs);
        OMP(omp for schedule(static))
        for (int64_t k = 0; k < K; k++) {
            int64_t n = 0;
            for (int64_t rw = 0; rw < RW; rw++) n += __builtin_popcountll(flip[k * RW + rw]);
            for (int64_t gw = 0; gw < GW; gw++) n += __builtin_popcountll(segs[k * GW + gw]);
            cptr[k + 1] = n;
        }
    }
    cptr[0] = 0;
    for (int64_t k = 0; k < K; k++) cptr[k + 1] += cptr[k];
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 16) if (threads > 1))
    for (int64_t k = 0; k < K; k++) {
        int64_t p = cptr[k];
        const uint64_t *mine = segs + k * GW; /* bit g: segment g complements input k */
        for (int64_t rw = 0; rw < RW; rw++)
            for (uint64_t e = flip[k * RW + rw]; e; e &= e - 1, p++) {
                const int64_t r = rw * 64 + __builtin_ctzll(e), g = seg_of[r];
                cidx[p] = (int32_t)r;
                cval[p] = sign[(mine[g / 64] >> (g % 64)) & 1];
            }
        for (int64_t gw = 0; gw < GW; gw++)
            for (uint64_t e = mine[gw]; e; e &= e - 1, p++) {
                cidx[p] = (int32_t)(R + gw * 64 + __builtin_ctzll(e));
                cval[p] = 1;
            }
    }
    free(flip);
    free(seg_of);
    return 0;
}
