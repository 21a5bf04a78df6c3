/* The dtype-generic kernels of spike_linear.c, included once per floating type with scalar_t and
   SFX(name) (the exported name with the type's suffix) defined. */

typedef scalar_t SFX(vec_t) __attribute__((vector_size(VBYTES), aligned(sizeof(scalar_t)), may_alias));
#define VEC SFX(vec_t)
#define VL ((int64_t)(VBYTES / sizeof(scalar_t)))

/* Count the nonzeros of each row of x [R, K] into ptr[1..R] and turn them into row pointers
   (ptr[0] = 0, ptr[R] = number of nonzeros, returned). *nonbinary is set when a value is neither 0 nor 1
   (NaN included). */
int64_t SFX(sl_count_rows)(const scalar_t *x, int64_t R, int64_t K, int64_t *ptr, int32_t *nonbinary, int threads) {
    (void)threads; /* (unused without OpenMP) */
    int nb = 0;
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 64) reduction(| : nb) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        const scalar_t *row = x + r * K;
        int64_t c = 0;
        int b = 0;
        for (int64_t k = 0; k < K; k++) {
            const scalar_t v = row[k];
            c += (v != 0);
            b |= (v != 0) & (v != 1);
        }
        ptr[r + 1] = c;
        nb |= b;
    }
    ptr[0] = 0;
    for (int64_t r = 0; r < R; r++) ptr[r + 1] += ptr[r];
    *nonbinary = nb;
    return ptr[R];
}

/* The column index (and, when val is not NULL, the value) of every nonzero of x [R, K], row by row in
   column order, at the row pointers of sl_count_rows: per 64 columns a bit mask of the nonzeros, whose set
   bits are then visited (the work follows the number of nonzeros, with no mispredicted branch per column). */
void SFX(sl_fill_rows)(const scalar_t *x, int64_t R, int64_t K, const int64_t *ptr, int32_t *idx, scalar_t *val,
                       int threads) {
    (void)threads;
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 64) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        const scalar_t *row = x + r * K;
        int64_t p = ptr[r];
        for (int64_t k0 = 0; k0 < K; k0 += 64) {
            const int64_t n = K - k0 < 64 ? K - k0 : 64;
            uint64_t m = 0;
#ifdef HAVE_NZ_MASK64
            if (n == 64)
                m = SFX(nz_mask64)(row + k0);
            else
#endif
                for (int64_t i = 0; i < n; i++) m |= (uint64_t)(row[k0 + i] != 0) << i;
            while (m) {
                const int64_t k = k0 + __builtin_ctzll(m);
                m &= m - 1;
                idx[p] = (int32_t)k;
                if (val) val[p] = row[k];
                p++;
            }
        }
    }
}

/* The same nonzeros by column (CSC) from the rows (CSR) of an [R, K] matrix: column pointers cptr [K + 1],
   row indices cidx and values cval (when val is not NULL), each column's rows in increasing order. The rows
   are cut into `threads` parts of equal numbers of entries; each part counts its entries per column, the
   counts give every part its place in every column, and each part copies its entries there. (The parts are
   fixed, whatever number of threads the runtime grants.) Returns 0, or -1 when the per-part counters
   cannot be allocated. */
int SFX(sl_transpose)(int64_t R, int64_t K, const int64_t *ptr, const int32_t *idx, const scalar_t *val, int64_t *cptr,
                      int32_t *cidx, scalar_t *cval, int threads) {
    const int parts = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    int64_t *pos = (int64_t *)calloc((size_t)parts * (size_t)K, sizeof(int64_t));
    if (!pos) return -1;
    OMP(omp parallel num_threads(parts) if (parts > 1))
    for (int part = THREAD_ID; part < parts; part += NUM_THREADS) {
        int64_t lo, hi;
        balanced_range(ptr, R, part, parts, &lo, &hi);
        int64_t *mine = pos + (int64_t)part * K;
        for (int64_t p = ptr[lo]; p < ptr[hi]; p++) mine[idx[p]]++;
    }
    int64_t run = 0;
    for (int64_t k = 0; k < K; k++) {
        cptr[k] = run;
        for (int part = 0; part < parts; part++) {
            const int64_t c = pos[(int64_t)part * K + k];
            pos[(int64_t)part * K + k] = run;
            run += c;
        }
    }
    cptr[K] = run;
    OMP(omp parallel num_threads(parts) if (parts > 1))
    for (int part = THREAD_ID; part < parts; part += NUM_THREADS) {
        int64_t lo, hi;
        balanced_range(ptr, R, part, parts, &lo, &hi);
        int64_t *mine = pos + (int64_t)part * K;
        for (int64_t r = lo; r < hi; r++) {
            for (int64_t p = ptr[r]; p < ptr[r + 1]; p++) {
                const int64_t q = mine[idx[p]]++;
                cidx[q] = (int32_t)r;
                if (val) cval[q] = val[p];
            }
        }
    }
    free(pos);
    return 0;
}

/* Rows lo..hi of the product for one block of nv vectors of columns starting at vector q0 (nv a
   compile-time constant after inlining, so the accumulators live in registers). The last vector of a
   row is loaded from N - VL, overlapping its neighbour: every load is a whole vector, and the lanes
   computed twice are computed alike. */
static inline __attribute__((always_inline)) void SFX(block)(const int nv, int64_t q0, int64_t lo, int64_t hi, int64_t N,
                                                             const int64_t *ptr, const int32_t *idx, const scalar_t *val,
                                                             const scalar_t *D, const scalar_t *init, scalar_t *out,
                                                             int64_t si, int64_t sj) {
    int64_t off[NV];
    for (int v = 0; v < nv; v++) off[v] = (q0 + v) * VL < N - VL ? (q0 + v) * VL : N - VL;
    for (int64_t i = lo; i < hi; i++) {
        VEC acc[NV];
        for (int v = 0; v < nv; v++) acc[v] = init ? *(const VEC *)(init + off[v]) : (VEC){0};
        const int64_t p1 = ptr[i + 1];
        if (val) {
            for (int64_t p = ptr[i]; p < p1; p++) {
                const scalar_t *d = D + (int64_t)idx[p] * N;
                const VEC s = (VEC){0} + val[p];
                for (int v = 0; v < nv; v++) acc[v] += s * *(const VEC *)(d + off[v]);
            }
        } else {
            for (int64_t p = ptr[i]; p < p1; p++) {
                const scalar_t *d = D + (int64_t)idx[p] * N;
                for (int v = 0; v < nv; v++) acc[v] += *(const VEC *)(d + off[v]);
            }
        }
        scalar_t *o = out + i * si;
        if (sj == 1) {
            for (int v = 0; v < nv; v++) *(VEC *)(o + off[v]) = acc[v];
        } else {
            for (int v = 0; v < nv; v++)
                for (int64_t l = 0; l < VL; l++) o[(off[v] + l) * sj] = acc[v][l];
        }
    }
}

/* Sparse x dense: out(i, j) = init[j] + sum_{p = ptr[i]}^{ptr[i + 1] - 1} val[p] D[idx[p], j] for i < n, j < N,
   with D [*, N] row-major, val NULL meaning all ones, init NULL meaning zero, and out(i, j) stored at
   out[i * si + j * sj]. D has nd rows. The rows i are cut into CHUNKS_PER_THREAD ranges per thread holding
   equal numbers of entries, taken by the threads as they come free (a thread descheduled by a busy machine
   holds up little); each range is walked once per block of columns, the block as wide as NV vectors or as
   makes nd rows of it fit TILE_BYTES. */
void SFX(sl_gather)(int64_t n, int64_t N, const int64_t *ptr, const int32_t *idx, const scalar_t *val, const scalar_t *D,
                    int64_t nd, const scalar_t *init, scalar_t *out, int64_t si, int64_t sj, int threads) {
    if (threads < 1) threads = 1;
    int64_t bw = TILE_BYTES / ((nd > 0 ? nd : 1) * VBYTES);
    bw = bw < 1 ? 1 : bw > NV ? NV : bw;
    if (N < VL) { /* narrower than a vector: plain loops */
        OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
        for (int64_t i = 0; i < n; i++) {
            scalar_t acc[VBYTES / sizeof(scalar_t)];
            for (int64_t j = 0; j < N; j++) acc[j] = init ? init[j] : 0;
            for (int64_t p = ptr[i]; p < ptr[i + 1]; p++) {
                const scalar_t *d = D + (int64_t)idx[p] * N;
                const scalar_t s = val ? val[p] : 1;
                for (int64_t j = 0; j < N; j++) acc[j] += val ? s * d[j] : d[j];
            }
            for (int64_t j = 0; j < N; j++) out[i * si + j * sj] = acc[j];
        }
        return;
    }
    const int64_t nvec = (N + VL - 1) / VL;
    const int chunks = threads > 1 ? threads * CHUNKS_PER_THREAD : 1;
    OMP(omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1))
    for (int c = 0; c < chunks; c++) {
        int64_t lo, hi;
        balanced_range(ptr, n, c, chunks, &lo, &hi);
        for (int64_t q0 = 0; q0 < nvec; q0 += bw) {
            switch (nvec - q0 < bw ? nvec - q0 : bw) {
            case 1: SFX(block)(1, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 2: SFX(block)(2, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 3: SFX(block)(3, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 4: SFX(block)(4, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 5: SFX(block)(5, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 6: SFX(block)(6, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            case 7: SFX(block)(7, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            default: SFX(block)(NV, q0, lo, hi, N, ptr, idx, val, D, init, out, si, sj); break;
            }
        }
    }
}

#undef VEC
#undef VL
