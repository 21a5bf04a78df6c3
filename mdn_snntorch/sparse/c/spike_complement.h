/* Complement coding over time, the parts that do not depend on the floating type (included by spike_linear.c after
   the run coding's helpers: the same chains, rows t S + b, and segments of RUN_STEPS steps).

   An input that is on at most of a segment's steps is summed as its whole segment less the steps it is off: in the
   forward, out[t, b] gets A[b, s] = sum of W^T[k] over the complemented inputs k of segment s of chain b, less
   W^T[k] at every step where such an input is off; in the weight gradient, column k gets Tot[b, s] = sum of
   grad_out over the segment's steps, less grad_out at the steps where the input is off. An input is complemented
   where that takes fewer terms: n_off + 1 < n_on. */

/* Bit planes c[0 .. 5] of the counts of 64 inputs (bit c of c[j]: bit j of input c's count) plus one more row
   word m: a ripple-carry add of one bit per input (all six planes, no branch on the data) */
static inline void count_planes_add(uint64_t c[6], uint64_t m) {
    for (int j = 0; j < 6; j++) {
        const uint64_t carry = c[j] & m;
        c[j] ^= m;
        m = carry;
    }
}

/* The inputs whose count (bit planes c) is at least v (v < 64), compared bit plane by bit plane from the top */
static inline uint64_t count_planes_at_least(const uint64_t c[6], int v) {
    uint64_t gt = 0, eq = ~0ULL;
    for (int j = 5; j >= 0; j--) {
        const uint64_t vj = (v >> j) & 1 ? ~0ULL : 0;
        gt |= eq & c[j] & ~vj;
        eq &= ~(c[j] ^ vj);
    }
    return gt | eq;
}

/* The sum of the counts (bit planes c) of the inputs in sel */
static inline int64_t count_planes_sum(const uint64_t c[6], uint64_t sel) {
    int64_t n = 0;
    for (int j = 0; j < 6; j++) n += (int64_t)__builtin_popcountll(c[j] & sel) << j;
    return n;
}

/* comp[s W + w], bit c: input 64 w + c of segment s (s = b nseg + t / RUN_STEPS) is complemented, i.e. on at
   n_on of the segment's n steps with n_off + 1 < n_on (2 n_on > n + 1). Returns the entries of the weight
   gradient's complement coding: n_off + 1 per complemented input and segment, n_on per other one. The counts
   come from bit planes, each row word added once. */
int64_t sl_complement_split(const uint64_t *mask, int64_t K, int64_t S, int64_t T, uint64_t *comp, int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T);
    int64_t entries = 0;
    OMP(omp parallel for num_threads(threads) schedule(static) reduction(+ : entries) if (threads > 1))
    for (int64_t item = 0; item < S * nseg * W; item++) {
        const int64_t s = item / W, w = item % W, b = s / nseg, t0 = (s % nseg) * RUN_STEPS;
        const int n = segment_steps(s, T);
        uint64_t c[6] = {0, 0, 0, 0, 0, 0};
        for (int i = 0; i < n; i++) count_planes_add(c, mask[((t0 + i) * S + b) * W + w]);
        const uint64_t cm = count_planes_at_least(c, (n + 1) / 2 + 1);
        comp[s * W + w] = cm;
        entries += count_planes_sum(c, ~cm) + (int64_t)__builtin_popcountll(cm) * (n + 1) - count_planes_sum(c, cm);
    }
    return entries;
}

/* Row pointers (ptr [R + 1], R = S T) of the forward's complement-coded rows: row r = t S + b has an entry per
   input that is on and not complemented or off and complemented (the bits of m ^ cm), and one for A[b, s] when
   segment s of chain b complements an input */
void sl_complement_count_rows(const uint64_t *mask, const uint64_t *comp, int64_t K, int64_t S, int64_t T, int64_t *ptr,
                              int threads) {
    (void)threads;
    const int64_t W = (K + 63) / 64, nseg = chain_segments(T), R = S * T;
    OMP(omp parallel for num_threads(threads) schedule(static) if (threads > 1))
    for (int64_t r = 0; r < R; r++) {
        const uint64_t *m = mask + r * W, *cm = comp + step_segment(r / S, r % S, nseg) * W;
        int64_t n = 0, any = 0;
        for (int64_t w = 0; w < W; w++) {
            n += __builtin_popcountll(m[w] ^ cm[w]);
            any |= cm[w] != 0;
        }
        ptr[r + 1] = n + any;
    }
    ptr[0] = 0;
    for (int64_t r = 0; r < R; r++) ptr[r + 1] += ptr[r];
}

/* Row pointers (ptr [rows + 1]) of the set bits of each row of bits [rows, W] (the complemented inputs of each
   segment: the lists that sum A) */
void sl_count_bit_rows(const uint64_t *bits, int64_t rows, int64_t W, int64_t *ptr) {
    ptr[0] = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = 0;
        for (int64_t w = 0; w < W; w++) n += __builtin_popcountll(bits[r * W + w]);
        ptr[r + 1] = ptr[r] + n;
    }
}
