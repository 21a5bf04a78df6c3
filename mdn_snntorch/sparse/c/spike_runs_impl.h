/* The dtype-generic kernels of the run coding over time (spike_linear.c, RUN_STEPS), included after
   spike_linear_impl.h once per floating type with scalar_t and SFX(name) defined.

   For the rows t S + b (step t of chain b) of a 0/1 input, the forward is out = bias + direct + C with
   C[t, b] = C[t - 1, b] + the sum of +-W^T[k] over the run-coded inputs that turned on (+) or off (-) at step
   t (C = 0 before a segment's first step). */

#define VEC SFX(vec_t)
#define VL ((int64_t)(VBYTES / sizeof(scalar_t)))

/* The entries of both lists at the pointers of sl_runs_count_rows: direct ones (input index) and run ones
   (index, and +1 where the input turned on, -1 where it turned off), each row's in increasing index */
void SFX(sl_runs_fill_rows)(const uint64_t *mask, const uint64_t *carried, int64_t K, int64_t S, int64_t T,
                            const int64_t *dptr, int32_t *didx, const int64_t *rptr, int32_t *ridx, scalar_t *rval,
                            int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), R = S * T;
    const scalar_t sign[2] = {-1, 1}; /* (a load, not a branch on the bit) */
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        int64_t pd = dptr[r], pr = rptr[r];
        for (int64_t w = 0; w < W; w++) {
            uint64_t d, e;
            const uint64_t m = run_row_words(mask, carried, S, W, nseg, r, w, &d, &e);
            for (; d; d &= d - 1) didx[pd++] = (int32_t)(w * 64 + __builtin_ctzll(d));
            for (; e; e &= e - 1) {
                const int c = __builtin_ctzll(e);
                ridx[pr] = (int32_t)(w * 64 + c);
                rval[pr++] = sign[(m >> c) & 1];
            }
        }
    }
}

/* Chain b's run sums for nv vectors of columns from column o0 (nv a compile-time constant after inlining):
   the carried sum C in registers, added to out[t S + b] at every step */
static inline __attribute__((always_inline)) void SFX(run_block)(const int nv, int64_t o0, int64_t b, int64_t S, int64_t T,
                                                                 int64_t N, const int64_t *ptr, const int32_t *idx,
                                                                 const scalar_t *val, const scalar_t *D, int64_t ld,
                                                                 scalar_t *out) {
    VEC acc[NV] = {0};
    for (int64_t t = 0; t < T; t++) {
        const int64_t r = t * S + b;
        if (t % RUN_STEPS == 0)
            for (int v = 0; v < nv; v++) acc[v] = (VEC){0};
        for (int64_t p = ptr[r]; p < ptr[r + 1]; p++) {
            const VEC s = (VEC){0} + val[p];
            const scalar_t *d = D + (int64_t)idx[p] * ld + o0;
            for (int v = 0; v < nv; v++) acc[v] += s * *(const VEC *)(d + v * VL);
        }
        scalar_t *o = out + r * N + o0;
        for (int v = 0; v < nv; v++) *(VEC *)(o + v * VL) += acc[v];
    }
}

/* The same for the columns o0 .. N past the last whole vector, one at a time */
static void SFX(run_tail)(int64_t o0, int64_t b, int64_t S, int64_t T, int64_t N, const int64_t *ptr, const int32_t *idx,
                          const scalar_t *val, const scalar_t *D, int64_t ld, scalar_t *out) {
    scalar_t acc[VBYTES / sizeof(scalar_t)];
    for (int64_t t = 0; t < T; t++) {
        const int64_t r = t * S + b;
        for (int64_t j = o0; j < N; j++) {
            if (t % RUN_STEPS == 0) acc[j - o0] = 0;
            for (int64_t p = ptr[r]; p < ptr[r + 1]; p++) acc[j - o0] += val[p] * D[(int64_t)idx[p] * ld + j];
            out[r * N + j] += acc[j - o0];
        }
    }
}

/* out [S T, N] (contiguous) += C, the carried run sums of the run lists (ptr, idx, val) over D = W^T (row k at
   D + k ld). Work items: a chain and a block of columns; each output is added to by one of them, in step order. */
void SFX(sl_runs_add)(int64_t S, int64_t T, int64_t N, const int64_t *ptr, const int32_t *idx, const scalar_t *val,
                      const scalar_t *D, int64_t ld, scalar_t *out, int threads) {
    (void)threads;
    const int64_t whole = N / VL, vblocks = (whole + NV - 1) / NV, blocks = vblocks + (N > whole * VL);
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 4) if (threads > 1))
    for (int64_t item = 0; item < S * blocks; item++) {
        const int64_t b = item / blocks, q = item % blocks, o0 = q * NV * VL;
        if (q == vblocks) {
            SFX(run_tail)(whole * VL, b, S, T, N, ptr, idx, val, D, ld, out);
            continue;
        }
        switch (whole - q * NV < NV ? (int)(whole - q * NV) : NV) {
        case 1: SFX(run_block)(1, o0, b, S, T, N, ptr, idx, val, D, ld, out); break;
        case 2: SFX(run_block)(2, o0, b, S, T, N, ptr, idx, val, D, ld, out); break;
        case 3: SFX(run_block)(3, o0, b, S, T, N, ptr, idx, val, D, ld, out); break;
        default: SFX(run_block)(NV, o0, b, S, T, N, ptr, idx, val, D, ld, out); break;
        }
    }
}

#undef VEC
#undef VL
