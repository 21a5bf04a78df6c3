/* The dtype-generic kernels, included by mdn_kernels.c once per floating type with scalar_t (the type) and
   SFX(name) (name plus the type's suffix) defined; no include guard, on purpose.

   Both neurons are elementwise recurrences over the leading time axis of [T, M] (M = batch x neurons, the
   neuron of element e is e % N). The threads take blocks of BLK elements in turn (next_block); for each
   block the time loop runs inside, vectorised over the block. Every output is per element (the backward's
   parameter sums too, summed per neuron afterwards by reduce_range), so no result depends on the threads.
   The forward keeps the state only every K steps (checkpoints); the backward, per block and segment of K
   steps from the last, recomputes the segment from its checkpoint into a cache-resident buffer and runs
   the adjoint over it. A single step is the same kernels with T = 1: no checkpoints, the backward reads the
   step's own state (and skips the parameter gradients nobody asked for). The step of each
   neuron and its adjoint are written once, as the static inline functions below: the forward and the
   backward's recomputation call the same step, so the recomputed states are bitwise the forward's. */
#if !defined(scalar_t) || !defined(SFX)
#error "mdn_kernels_impl.h is included by mdn_kernels.c with scalar_t and SFX defined"
#endif

/* ------------------------------------------------------------------------------------------------------
   Shared pieces
   ------------------------------------------------------------------------------------------------------ */

/* Whether x = V' - V_th lies inside the support |x| < w of the window surrogate
   (docs/model.md#surrogate-gradient-and-reset); a bitwise & of the comparisons (&& would branch). */
static inline int SFX(in_window)(scalar_t x, scalar_t w) { return (x < w) & (-x < w); }

/* dst[i] = src[i % N] for i < n: the values of a per-neuron parameter for a block of whole rows of neurons, by
   contiguous runs: the first row copied, then the filled prefix (a whole number of rows) doubled; N = 1 repeats
   one value. */
static inline void SFX(fill_rows)(scalar_t *restrict dst, const scalar_t *restrict src, int64_t N, int n) {
    const int64_t len = N < n ? N : n;
    memcpy(dst, src, len * sizeof(scalar_t));
    for (int64_t done = len; done < n;) {
        const int64_t more = done < n - done ? done : n - done;
        memcpy(dst + done, dst, more * sizeof(scalar_t));
        done += more;
    }
}

/* Where a block of n elements from neuron k (0 <= k < N) reads its P parameters: ptr[q] = src[q] + k when the
   block lies within one row (k + n <= N: the values where they are), else buf[q] holding them for its whole rows
   (fill_rows; such a block starts at neuron 0, as sched_t lays the blocks); bit q of shared: parameter q is one
   value, read from buf[q], filled with it on the first call (*k0 < 0). Returns whether the pointers or the values
   changed since the block of *n0 from neuron *k0 (block_changed), so that what is derived from them must be
   derived again. */
static inline int SFX(block_params)(int P, const scalar_t **ptr, scalar_t *const *buf, const scalar_t *const *src, int shared,
                                    int64_t k, int64_t N, int n, int64_t *k0, int *n0) {
    if (*k0 < 0)
        for (int q = 0; q < P; q++)
            if (shared >> q & 1) SFX(fill_rows)(buf[q], src[q], 1, BLK);
    if (!block_changed(shared == (1 << P) - 1, k, n, k0, n0)) return 0;
    for (int q = 0; q < P; q++) {
        if (shared >> q & 1) ptr[q] = buf[q];
        else if (k + n <= N) ptr[q] = src[q] + k;
        else SFX(fill_rows)(buf[q], src[q], N, n), ptr[q] = buf[q];
    }
    return 1;
}

/* The number of NaN or infinite values among x[0..n) (x - x is NaN exactly for those). */
static inline int64_t SFX(count_nonfinite)(const scalar_t *restrict x, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !(x[i] - x[i] == 0);
    return bad;
}

/* Adds c to the count *bad shared by the threads. */
static inline void SFX(add_count)(int64_t *bad, int64_t c) {
    if (c) __atomic_fetch_add(bad, c, __ATOMIC_RELAXED);
}

/* Adds the non-finite values of x[0..n) to *bad (NULL: not counted). */
static inline void SFX(note_nonfinite)(int64_t *bad, const scalar_t *restrict x, int64_t n) {
    if (bad) SFX(add_count)(bad, SFX(count_nonfinite)(x, n));
}

/* The gradient g of the current I carried back to the input x when I = sigmoid(x): g (1 - I) I. */
static inline scalar_t SFX(through_sigmoid)(scalar_t g, scalar_t I, int sigmoid) { return sigmoid ? (g * (1 - I)) * I : g; }

/* ------------------------------------------------------------------------------------------------------
   2nd-order MDN
   ------------------------------------------------------------------------------------------------------ */

/* One Euler (sub-)step of one element (docs/model.md#discretisation), dt already divided by the number of
   sub-steps, V and U both updated from the old state *v, *u:
       V' = V + dt (((V V - V) - U) + I);  U' = U + dt (a (b V - U));  x = V' - V_th;  s = [x > 0]
   then the reset (docs/model.md#surrogate-gradient-and-reset): *v = s ? c : V', *u = U' + d s.
   Sets *x and returns s. */
/* V' = V + dt (((V V - V) - U) + I): the membrane update of mdn_euler, once. */
static inline scalar_t SFX(mdn_vprime)(scalar_t v, scalar_t u, scalar_t I, scalar_t dt) { return v + dt * (((v * v - v) - u) + I); }

static inline scalar_t SFX(mdn_euler)(scalar_t *restrict v, scalar_t *restrict u, scalar_t *restrict x, scalar_t I,
                                      scalar_t dt, scalar_t a, scalar_t b, scalar_t c, scalar_t d, scalar_t th) {
    const scalar_t vi = *v, ui = *u;
    const scalar_t vp = SFX(mdn_vprime)(vi, ui, I, dt);
    const scalar_t up = ui + dt * (a * (b * vi - ui));
    *x = vp - th;
    const scalar_t s = *x > 0 ? (scalar_t)1 : (scalar_t)0;
    *v = s > 0 ? c : vp;
    *u = up + d * s;
    return s;
}

/* The adjoint of mdn_euler for one element, from its pre-step state v, u, whether it fired, and gsh, the
   gradient of its spike s through the surrogate. On entry *gv, *gu are the gradients of the post-reset
   state, on return those of the pre-step state; with sums the parameter sums are updated (*ga, *gb without their
   factors dt and dt a, applied once at the end), without they are not touched. Returns the gradient of the current I. With dab = dt a b
   and oma = 1 - dt a (per neuron), in the pieces the other copies name (docs/performance.md#the-copies-of-the-step):
       reset_adjoint:     gV' = gV (1 - s) + gsh;   gc += gV s;   gd += gU s;   gV_th -= gsh
       u_update_adjoint:  ga += gU (b V - U);   gb += gU V;   to V: gU dab;   to U: gU oma
       v_update_adjoint:  g = dt gV';   gV <- gV' + g (2V - 1) + gU dab;   gU <- gU oma - g
   The reset's adjoint is a select, as autograd's of torch.where (the surrogate, in_window, is the caller's). */
static inline scalar_t SFX(mdn_adjoint)(scalar_t v, scalar_t u, int fire, scalar_t gsh, scalar_t dt, scalar_t b, scalar_t dab,
                                        scalar_t oma, scalar_t *restrict gv, scalar_t *restrict gu, scalar_t *restrict ga,
                                        scalar_t *restrict gb, scalar_t *restrict gc, scalar_t *restrict gd,
                                        scalar_t *restrict gth, const int sums) {
    const scalar_t gvi = *gv, gui = *gu;
    const scalar_t gvp = (fire ? (scalar_t)0 : gvi) + gsh;
    const scalar_t g = gvp * dt;
    if (sums) {
        *gc += fire ? gvi : (scalar_t)0;
        *gd += fire ? gui : (scalar_t)0;
        *gth -= gsh;
        *ga += gui * (b * v - u);
        *gb += gui * v;
    }
    *gv = gvp + g * (2 * v - 1) + gui * dab;
    *gu = gui * oma - g;
    return g;
}

/* With the undetached reset (V <- V' (1 - s) + s c, U <- U' + s d, the spike's gradient flowing through it;
   docs/model.md#surrogate-gradient-and-reset) the spike s of a (sub-)step also gets the gradient of the reset:
       dL/ds += gV (c - V') + gU d
   from the gradients gV, gU of the post-reset state; added to gsh where the surrogate's window is open. */
static inline scalar_t SFX(mdn_reset_spike_adjoint)(scalar_t gv, scalar_t gu, scalar_t v, scalar_t u, scalar_t I, scalar_t dt,
                                               scalar_t c, scalar_t d) {
    return gv * (c - SFX(mdn_vprime)(v, u, I, dt)) + gu * d;
}

/* The adjoint of one step of one element with a single Euler sub-step: threshold, surrogate and mdn_adjoint in
   one, from its pre-step state v, u, x = V' - V_th, the current I, the gradient gs of its output spike and the
   graded-spikes factor sc; the state gradients and (with sums) the parameter sums are updated as in mdn_adjoint
   (*gsc: the factor's). Returns the gradient of the input (through the sigmoid when sig). und, sig, sums: constants
   at the element loops' calls (WITH_FLAGS), so a setting that is off costs nothing there. */
static inline scalar_t SFX(mdn_step_adjoint)(scalar_t v, scalar_t u, scalar_t x, scalar_t I, scalar_t gs, scalar_t sc,
                                             scalar_t dt, scalar_t w, int und, int sig, scalar_t b, scalar_t c, scalar_t d,
                                             scalar_t dab, scalar_t oma, scalar_t *restrict gv, scalar_t *restrict gu,
                                             scalar_t *restrict ga, scalar_t *restrict gb, scalar_t *restrict gc,
                                             scalar_t *restrict gd, scalar_t *restrict gth, scalar_t *restrict gsc,
                                             const int sums) {
    const int fire = x > 0;
    const int open = SFX(in_window)(x, w);
    scalar_t gsh = open ? gs * sc : (scalar_t)0;
    if (und && open) gsh += SFX(mdn_reset_spike_adjoint)(*gv, *gu, v, u, I, dt, c, d);
    if (sums) *gsc += fire ? gs : (scalar_t)0;
    const scalar_t g = SFX(mdn_adjoint)(v, u, fire, gsh, dt, b, dab, oma, gv, gu, ga, gb, gc, gd, gth, sums);
    return SFX(through_sigmoid)(g, I, sig);
}

/* Advance a block of n elements by one network step (S Euler sub-steps of dt, input I held); acc gets
   the step's spike, the OR of the sub-steps' spikes, s <- s + s_k - s s_k. Not inlined: inlined into the range
   functions, whose parameter pointers are chosen per block (block_params), GCC leaves its loop unvectorised. */
static __attribute__((noinline)) void SFX(mdn_advance)(int n, int S, scalar_t dt, const scalar_t *restrict I, scalar_t *restrict v,
                                    scalar_t *restrict u, scalar_t *restrict acc, const scalar_t *restrict pa,
                                    const scalar_t *restrict pb, const scalar_t *restrict pc, const scalar_t *restrict pd,
                                    const scalar_t *restrict pth) {
    for (int j = 0; j < S; j++) {
        for (int i = 0; i < n; i++) {
            scalar_t x;
            const scalar_t s = SFX(mdn_euler)(&v[i], &u[i], &x, I[i], dt, pa[i], pb[i], pc[i], pd[i], pth[i]);
            acc[i] = j == 0 ? s : (acc[i] + s) - acc[i] * s;
        }
    }
}

/* A single step (T = 1, one sub-step) of n elements in one pass: mdn_euler from v0, u0 into vT, uT, the spike
   times the graded-spikes factor psc into spk (what mdn_advance and the forward's scaling do for one sub-step);
   with cx, cv (constants at each call, WITH_COUNTS) the non-finite values of xr and of v0 are counted in the same
   loop, into bad[0] and bad[1] (note_nonfinite's counts, without a pass of their own). */
static inline __attribute__((always_inline)) void SFX(mdn_single_step)(
    int n, const scalar_t *restrict v0, const scalar_t *restrict u0, const scalar_t *restrict I, scalar_t *restrict spk,
    scalar_t *restrict vT, scalar_t *restrict uT, const scalar_t *restrict pa, const scalar_t *restrict pb,
    const scalar_t *restrict pc, const scalar_t *restrict pd, const scalar_t *restrict pth, const scalar_t *restrict psc,
    scalar_t dt, const scalar_t *restrict xr, int64_t *bad, const int cx, const int cv) {
    int bx = 0, bv = 0;
    for (int i = 0; i < n; i++) {
        scalar_t vn = v0[i], un = u0[i], x;
        if (cx) bx += !(xr[i] - xr[i] == 0);
        if (cv) bv += !(v0[i] - v0[i] == 0);
        spk[i] = SFX(mdn_euler)(&vn, &un, &x, I[i], dt, pa[i], pb[i], pc[i], pd[i], pth[i]) * psc[i];
        vT[i] = vn; uT[i] = un;
    }
    SFX(add_count)(bad, bx);
    SFX(add_count)(bad + 1, bv);
}

/* The backward of a single step (T = 1, one sub-step) of n elements in one pass: the step recomputed from its
   state v0, u0 (mdn_euler) and its adjoint (mdn_step_adjoint) from the gradients gs, gvT, guT of its outputs into
   those of its input gx and state gv0, gu0; the parameter sums go to ga .. gsc when sums (else they are left untouched).
   und, sig, sums: constants at each call (WITH_FLAGS). */
static inline __attribute__((always_inline)) void SFX(mdn_single_adjoint)(
    int n, const scalar_t *restrict v0, const scalar_t *restrict u0, const scalar_t *restrict I, const scalar_t *restrict gs,
    const scalar_t *restrict gvT, const scalar_t *restrict guT, scalar_t *restrict gx, scalar_t *restrict gv0,
    scalar_t *restrict gu0, const scalar_t *restrict pa, const scalar_t *restrict pb, const scalar_t *restrict pc,
    const scalar_t *restrict pd, const scalar_t *restrict pth, const scalar_t *restrict psc, const scalar_t *restrict dab,
    const scalar_t *restrict oma, scalar_t *restrict ga, scalar_t *restrict gb, scalar_t *restrict gc, scalar_t *restrict gd,
    scalar_t *restrict gth, scalar_t *restrict gsc, scalar_t dt, scalar_t w, const int und, const int sig, const int sums) {
    for (int i = 0; i < n; i++) {
        scalar_t vn = v0[i], un = u0[i], x, gvi = gvT[i], gui = guT[i];
        SFX(mdn_euler)(&vn, &un, &x, I[i], dt, pa[i], pb[i], pc[i], pd[i], pth[i]);
        gx[i] = SFX(mdn_step_adjoint)(v0[i], u0[i], x, I[i], gs[i], psc[i], dt, w, und, sig, pb[i], pc[i], pd[i], dab[i], oma[i],
                                      &gvi, &gui, &ga[i], &gb[i], &gc[i], &gd[i], &gth[i], &gsc[i], sums);
        gv0[i] = gvi; gu0[i] = gui;
    }
}

/* The adjoint of one step of n elements (one sub-step) from the pre-step state sv, su and x = V' - V_th of the
   forward, recomputed (mdn_step_adjoint for each element): gv, gu go from the post-reset to the pre-step state's
   gradients, gx gets the input's; the parameter sums go to ga .. gsc when sums. und, sig, sums: as for
   mdn_single_adjoint. */
static inline __attribute__((always_inline)) void SFX(mdn_adjoint_pass)(
    int n, const scalar_t *restrict sv, const scalar_t *restrict su, const scalar_t *restrict sx, const scalar_t *restrict I,
    const scalar_t *restrict gs, scalar_t *restrict gx, scalar_t *restrict gv, scalar_t *restrict gu,
    const scalar_t *restrict pb, const scalar_t *restrict pc, const scalar_t *restrict pd, const scalar_t *restrict psc,
    const scalar_t *restrict dab, const scalar_t *restrict oma, scalar_t *restrict ga, scalar_t *restrict gb,
    scalar_t *restrict gc, scalar_t *restrict gd, scalar_t *restrict gth, scalar_t *restrict gsc, scalar_t dt, scalar_t w,
    const int und, const int sig, const int sums) {
    for (int i = 0; i < n; i++)
        gx[i] = SFX(mdn_step_adjoint)(sv[i], su[i], sx[i], I[i], gs[i], psc[i], dt, w, und, sig, pb[i], pc[i], pd[i], dab[i],
                                      oma[i], &gv[i], &gu[i], &ga[i], &gb[i], &gc[i], &gd[i], &gth[i], &gsc[i], sums);
}

/* ck: NULL keeps no checkpoints (the single step: its backward reads v0, u0 themselves). xr, vr: NULL, or the
   input x [T, M] and the state v0 [M] whose non-finite values are counted into bad[0] and bad[1]. shared: bit q
   set where parameter q (a, b, c, d, th, sc) is one value for every neuron (read at [0]), else it has N values. */
typedef struct {
    const scalar_t *I, *v0, *u0, *a, *b, *c, *d, *th, *sc, *xr, *vr;
    scalar_t *spk, *vT, *uT, *vtr, *utr, *ck;
    int64_t *bad;
    int64_t T, M, N, K;
    scalar_t dt;
    int substeps, shared;
} SFX(mdn_fwd_args);

static void SFX(mdn_fwd_range)(const void *p, sched_t *s) {
    const SFX(mdn_fwd_args) *A = (const SFX(mdn_fwd_args) *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K;
    const int S = A->substeps;
    const scalar_t dt = A->dt;
    scalar_t vb[BLK], ub[BLK], acc[BLK], pbuf[6][BLK];
    int64_t base, end, k0 = -1;
    int n0 = 0;
    scalar_t *const buf[6] = {pbuf[0], pbuf[1], pbuf[2], pbuf[3], pbuf[4], pbuf[5]};
    const scalar_t *const src[6] = {A->a, A->b, A->c, A->d, A->th, A->sc};
    const scalar_t *prm[6];
    while (next_block(s, &base, &end)) {
        const int n = (int)(end - base);
        /* the state as it advances: for T = 1 (a single step) in the outputs themselves, no staging copy */
        scalar_t *restrict v = T == 1 ? A->vT + base : vb, *restrict u = T == 1 ? A->uT + base : ub;
        SFX(block_params)(6, prm, buf, src, A->shared, base % N, N, n, &k0, &n0);
        const scalar_t *restrict pa = prm[0], *restrict pb = prm[1], *restrict pc = prm[2], *restrict pd = prm[3],
                       *restrict pth = prm[4], *restrict psc = prm[5];
        if (T == 1 && S == 1 && !A->vtr && !A->ck) {  /* a single step: one pass, its checks included */
#define SINGLE(cx, cv) \
    SFX(mdn_single_step)(n, A->v0 + base, A->u0 + base, A->I + base, A->spk + base, v, u, pa, pb, pc, pd, pth, psc, dt, \
                         A->xr ? A->xr + base : NULL, A->bad, cx, cv)
            WITH_COUNTS(SINGLE, A->xr != NULL, A->vr != NULL);
#undef SINGLE
            continue;
        }
        if (A->vr) SFX(note_nonfinite)(A->bad + 1, A->vr + base, n);
        memcpy(v, A->v0 + base, n * sizeof(scalar_t)); memcpy(u, A->u0 + base, n * sizeof(scalar_t));
        for (int64_t t = 0; t < T; t++) {
            const int64_t o = t * M + base;
            if (A->xr) SFX(note_nonfinite)(A->bad, A->xr + o, n);
            if (A->ck && t % K == 0) {  /* checkpoint: the state before step t */
                memcpy(A->ck + (t / K) * 2 * M + base, v, n * sizeof(scalar_t));
                memcpy(A->ck + (t / K) * 2 * M + M + base, u, n * sizeof(scalar_t));
            }
            SFX(mdn_advance)(n, S, dt, A->I + o, v, u, acc, pa, pb, pc, pd, pth);
            scalar_t *restrict spk = A->spk + o;
            for (int i = 0; i < n; i++) spk[i] = acc[i] * psc[i];  /* psc: snnTorch's graded_spikes_factor */
            if (A->vtr) { memcpy(A->vtr + o, v, n * sizeof(scalar_t)); memcpy(A->utr + o, u, n * sizeof(scalar_t)); }
        }
        if (T != 1) { memcpy(A->vT + base, v, n * sizeof(scalar_t)); memcpy(A->uT + base, u, n * sizeof(scalar_t)); }
    }
}

int SFX(mdn_fwd)(const scalar_t *I, const scalar_t *v0, const scalar_t *u0, const scalar_t *a, const scalar_t *b,
                 const scalar_t *c, const scalar_t *d, const scalar_t *th, const scalar_t *sc, const scalar_t *xr,
                 const scalar_t *vr, scalar_t *spk, scalar_t *vT, scalar_t *uT, scalar_t *vtr, scalar_t *utr, scalar_t *ck,
                 int64_t *bad, int64_t T, int64_t M, int64_t N, int64_t K, double dt, int substeps, int shared,
                 int nthreads) {
    SFX(mdn_fwd_args) A = {I, v0, u0, a, b, c, d, th, sc, xr, vr, spk, vT, uT, vtr, utr, ck, bad, T, M, N, K, (scalar_t)dt,
                           substeps, shared};
    parallel_for(SFX(mdn_fwd_range), &A, M, N, nthreads);
    return 0;
}

/* ckv, cku: V and U of the checkpoints, ck_stride apart (the forward's ck and ck + M, stride 2 M; the single
   step passes its v0, u0). want: bit q set where parameter q's gradient is wanted; the others are not reduced
   and their rows of gp are left unwritten. shared: as for mdn_fwd_args. */
typedef struct {
    const scalar_t *I, *ckv, *cku, *a, *b, *c, *d, *th, *sc;
    const scalar_t *gs, *gvtr, *gutr, *gvT, *guT;
    scalar_t *gx, *gv0, *gu0, *ge;
    double *gp;
    int64_t T, M, N, K, ck_stride;
    scalar_t dt, width;
    int substeps, sigmoid, undetached, want, shared;
} SFX(mdn_bwd_args);

static void SFX(mdn_bwd_range)(const void *p, sched_t *s) {
    const SFX(mdn_bwd_args) *A = (const SFX(mdn_bwd_args) *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K;
    const int S = A->substeps, sig = A->sigmoid, und = A->undetached;
    const scalar_t dt = A->dt, w = A->width;
    scalar_t gv[BLK], gu[BLK], gI[BLK], gS[BLK], v[BLK], u[BLK], acc[BLK], cnt[BLK], zero[BLK];
    scalar_t pbuf[6][BLK], dab[BLK], oma[BLK];
    scalar_t ga[BLK], gb[BLK], gc[BLK], gd[BLK], gth[BLK], gsc[BLK];
    /* per step of the current segment (recomputed from its checkpoint): the pre-step state and, for
       S = 1, x = V' - V_th; for S > 1 the same for every sub-step of the current step */
    scalar_t *seg = (scalar_t *)malloc(3 * (size_t)K * BLK * sizeof(scalar_t));
    scalar_t *vk = (scalar_t *)malloc(3 * (size_t)S * BLK * sizeof(scalar_t));
    if (!seg || !vk) abort();
    scalar_t *uk = vk + (size_t)S * BLK, *xk = vk + 2 * (size_t)S * BLK;
    memset(zero, 0, sizeof(zero));
    for (int i = 0; i < BLK; i++) ga[i] = gb[i] = gc[i] = gd[i] = gth[i] = gsc[i] = 0;
    int64_t base, end, k0 = -1;
    int n0 = 0;
    scalar_t *const buf[6] = {pbuf[0], pbuf[1], pbuf[2], pbuf[3], pbuf[4], pbuf[5]};
    const scalar_t *const src[6] = {A->a, A->b, A->c, A->d, A->th, A->sc};
    const scalar_t *prm[6];
    while (next_block(s, &base, &end)) {
        const int n = (int)(end - base);
        const int changed = SFX(block_params)(6, prm, buf, src, A->shared, base % N, N, n, &k0, &n0);
        const scalar_t *restrict pa = prm[0], *restrict pb = prm[1], *restrict pc = prm[2], *restrict pd = prm[3],
                       *restrict pth = prm[4], *restrict psc = prm[5];
        if (changed)
            for (int i = 0; i < n; i++) { dab[i] = dt * (pa[i] * pb[i]); oma[i] = 1 - dt * pa[i]; }
        if (A->want) /* (unread sums are zeroed once, above) */
            for (int i = 0; i < n; i++) ga[i] = gb[i] = gc[i] = gd[i] = gth[i] = gsc[i] = 0;
        if (T == 1 && S == 1) {  /* a single step: recompute and adjoint in one pass over its own arrays */
#define SINGLE(und_, sig_, sums_)                                                                                         \
    SFX(mdn_single_adjoint)(n, A->ckv + base, A->cku + base, A->I + base, A->gs ? A->gs + base : zero,                       \
                            A->gvT ? A->gvT + base : zero, A->guT ? A->guT + base : zero, A->gx + base, A->gv0 + base,       \
                            A->gu0 + base, pa, pb, pc, pd, pth, psc, dab, oma, ga, gb, gc, gd, gth, gsc, dt, w, und_, sig_, \
                            sums_)
            WITH_FLAGS(SINGLE, und, sig, A->want != 0);
#undef SINGLE
        } else {
        if (A->gvT) memcpy(gv, A->gvT + base, n * sizeof(scalar_t)); else memset(gv, 0, n * sizeof(scalar_t));
        if (A->guT) memcpy(gu, A->guT + base, n * sizeof(scalar_t)); else memset(gu, 0, n * sizeof(scalar_t));
        for (int64_t t0 = ((T - 1) / K) * K; t0 >= 0; t0 -= K) {
            const int64_t t1 = t0 + K < T ? t0 + K : T;
            memcpy(v, A->ckv + (t0 / K) * A->ck_stride + base, n * sizeof(scalar_t));
            memcpy(u, A->cku + (t0 / K) * A->ck_stride + base, n * sizeof(scalar_t));
            for (int64_t t = t0; t < t1; t++) {  /* recompute the segment: the forward's step, bitwise */
                scalar_t *restrict sv = seg + 3 * (t - t0) * BLK, *restrict su = sv + BLK, *restrict sx = su + BLK;
                const scalar_t *restrict I = A->I + t * M + base;
                if (S == 1) {  /* the step of mdn_advance, keeping x */
                    for (int i = 0; i < n; i++) {
                        sv[i] = v[i]; su[i] = u[i];
                        SFX(mdn_euler)(&v[i], &u[i], &sx[i], I[i], dt, pa[i], pb[i], pc[i], pd[i], pth[i]);
                    }
                } else {
                    memcpy(sv, v, n * sizeof(scalar_t)); memcpy(su, u, n * sizeof(scalar_t));
                    SFX(mdn_advance)(n, S, dt, I, v, u, acc, pa, pb, pc, pd, pth);
                }
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t o = t * M + base;
                const scalar_t *restrict I = A->I + o;
                const scalar_t *restrict sv = seg + 3 * (t - t0) * BLK, *restrict su = sv + BLK, *restrict sx = su + BLK;
                const scalar_t *restrict gs = A->gs ? A->gs + o : zero;
                scalar_t *restrict gx = A->gx + o;
                if (A->gvtr) for (int i = 0; i < n; i++) gv[i] += A->gvtr[o + i];
                if (A->gutr) for (int i = 0; i < n; i++) gu[i] += A->gutr[o + i];
                if (S == 1) {  /* threshold, surrogate and adjoint in one pass */
#define PASS(und_, sig_, sums_) \
    SFX(mdn_adjoint_pass)(n, sv, su, sx, I, gs, gx, gv, gu, pb, pc, pd, psc, dab, oma, ga, gb, gc, gd, gth, gsc, dt, w, und_, sig_, sums_)
                    WITH_FLAGS(PASS, und, sig, A->want != 0);
#undef PASS
                    continue;
                }
                for (int i = 0; i < n; i++) { v[i] = sv[i]; u[i] = su[i]; gI[i] = 0; cnt[i] = 0; }
                for (int j = 0; j < S; j++) {  /* the sub-steps of step t */
                    scalar_t *vj = vk + j * BLK, *uj = uk + j * BLK, *xj = xk + j * BLK;
                    for (int i = 0; i < n; i++) {
                        vj[i] = v[i]; uj[i] = u[i];
                        cnt[i] += SFX(mdn_euler)(&v[i], &u[i], &xj[i], I[i], dt, pa[i], pb[i], pc[i], pd[i], pth[i]);
                    }
                }
                for (int i = 0; i < n; i++) {  /* through the output scale; the step's spike is [cnt > 0] */
                    gS[i] = gs[i] * psc[i];
                    gsc[i] += gs[i] * (cnt[i] > 0 ? (scalar_t)1 : (scalar_t)0);
                }
                for (int j = S - 1; j >= 0; j--) {
                    const scalar_t *vj = vk + j * BLK, *uj = uk + j * BLK, *xj = xk + j * BLK;
                    for (int i = 0; i < n; i++) {
                        const scalar_t x = xj[i];
                        const int fire = x > 0;
                        /* the OR passes the step's spike gradient to sub-step j iff no other sub-step fired */
                        const int alone = (cnt[i] - (fire ? (scalar_t)1 : (scalar_t)0)) == 0;
                        const int open = SFX(in_window)(x, w);
                        scalar_t gsh = (alone & open) ? gS[i] : (scalar_t)0;
                        if (und && open) gsh += SFX(mdn_reset_spike_adjoint)(gv[i], gu[i], vj[i], uj[i], I[i], dt, pc[i], pd[i]);
                        gI[i] += SFX(mdn_adjoint)(vj[i], uj[i], fire, gsh, dt, pb[i], dab[i], oma[i], &gv[i], &gu[i], &ga[i],
                                                  &gb[i], &gc[i], &gd[i], &gth[i], 1);
                    }
                }
                for (int i = 0; i < n; i++) gx[i] = SFX(through_sigmoid)(gI[i], I[i], sig);
            }
        }
        memcpy(A->gv0 + base, gv, n * sizeof(scalar_t)); memcpy(A->gu0 + base, gu, n * sizeof(scalar_t));
        }
        /* the element's parameter sums over time, [6, M], the wanted rows; summed per neuron by reduce_range */
        const scalar_t *sums[6] = {ga, gb, gc, gd, gth, gsc};
        for (int q = 0; q < 6; q++)
            if (A->want >> q & 1) memcpy(A->ge + q * M + base, sums[q], n * sizeof(scalar_t));
    }
    free(seg);
    free(vk);
}

/* The per-neuron sums of the per-element sums ge [P, M] into gp [P, N] (double), for the neurons k of each block
   of [0, N): gp[q, k] = sum over rows r = 0, 1, ... (ascending, from 0) of f(q, k) ge[q, r N + k], f = 1 except
   f(0, k) = dt and f(1, k) = dt a_k for the MDN (theta_a and theta_b), applied per element in double. The order
   of the sums does not depend on the threads. */
typedef struct {
    const scalar_t *ge, *a;
    double *gp;
    int64_t M, N;
    int P, want, a_shared;
    scalar_t dt;
} SFX(reduce_args);

static void SFX(reduce_range)(const void *p, sched_t *s) {
    const SFX(reduce_args) *A = (const SFX(reduce_args) *)p;
    const int64_t M = A->M, N = A->N;
    double acc[BLK], f[BLK];
    int64_t k0, k1;
    while (next_block(s, &k0, &k1)) {
        const int n = (int)(k1 - k0);
        for (int q = 0; q < A->P; q++) {
            if (!(A->want >> q & 1)) continue;  /* a gradient nobody asked for */
            for (int i = 0; i < n; i++) {
                acc[i] = 0;
                f[i] = !A->a || q > 1 ? 1.0 : q == 0 ? (double)A->dt : (double)(A->dt * A->a[A->a_shared ? 0 : k0 + i]);
            }
            for (int64_t row = 0; row * N + k0 < M; row++) {
                const scalar_t *restrict g = A->ge + q * M + row * N + k0;
                const int m = row * N + k1 <= M ? n : (int)(M - row * N - k0);
                if (A->a && q < 2) for (int i = 0; i < m; i++) acc[i] += f[i] * g[i];
                else for (int i = 0; i < m; i++) acc[i] += g[i];
            }
            memcpy(A->gp + q * N + k0, acc, n * sizeof(double));
        }
    }
}

/* ge: scratch [6, M]; gp: the parameter gradients [6, N] (double), the rows of want (see mdn_bwd_args) */
int SFX(mdn_bwd)(const scalar_t *I, const scalar_t *ckv, const scalar_t *cku, const scalar_t *a, const scalar_t *b,
                 const scalar_t *c, const scalar_t *d, const scalar_t *th, const scalar_t *sc, const scalar_t *gs,
                 const scalar_t *gvtr, const scalar_t *gutr, const scalar_t *gvT, const scalar_t *guT, scalar_t *gx,
                 scalar_t *gv0, scalar_t *gu0, scalar_t *ge, double *gp, int64_t T, int64_t M, int64_t N, int64_t K,
                 int64_t ck_stride, double dt, double width, int substeps, int sigmoid, int undetached, int want,
                 int shared, int nthreads) {
    SFX(mdn_bwd_args) A = {I, ckv, cku, a, b, c, d, th, sc, gs, gvtr, gutr, gvT, guT, gx, gv0, gu0, ge, gp,
                           T, M, N, K, ck_stride, (scalar_t)dt, (scalar_t)width, substeps, sigmoid, undetached, want, shared};
    parallel_for(SFX(mdn_bwd_range), &A, M, N, nthreads);
    if (want) {
        SFX(reduce_args) R = {ge, a, gp, M, N, 6, want, shared & 1, (scalar_t)dt};
        parallel_for(SFX(reduce_range), &R, N, N, nthreads);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------------
   1st-order neuron
   ------------------------------------------------------------------------------------------------------ */

/* One step of one element (docs/model.md#the-1st-order-neuron): V' = g V + I from *v, x = V' - V_th,
   s = [x > 0], reset *v = s ? r : V'. Sets *x and returns s. */
static inline scalar_t SFX(fo_step)(scalar_t *restrict v, scalar_t *restrict x, scalar_t I, scalar_t g, scalar_t th, scalar_t r) {
    const scalar_t vp = g * *v + I;
    *x = vp - th;
    const scalar_t s = *x > 0 ? (scalar_t)1 : (scalar_t)0;
    *v = s > 0 ? r : vp;
    return s;
}

/* The adjoint of fo_step for one element, from its pre-step V, its spike s and gsh, the gradient of s
   through the surrogate; *gv goes from the post-reset to the pre-step state's gradient:
       gV' = gV (1 - s) + gsh;   gr += gV s;   gV_th -= gsh;   gg += gV' V;   gV <- gV' g
   (the sums gr, gV_th, gg only with sums). Returns gV', the gradient of the current I. */
static inline scalar_t SFX(fo_adjoint)(scalar_t v, scalar_t s, scalar_t gsh, scalar_t g, scalar_t *restrict gv,
                                       scalar_t *restrict gg, scalar_t *restrict gth, scalar_t *restrict gr, const int sums) {
    const scalar_t gvi = *gv;
    const scalar_t gvp = gvi * (1 - s) + gsh;
    if (sums) {
        *gr += gvi * s;
        *gth -= gsh;
        *gg += gvp * v;
    }
    *gv = gvp * g;
    return gvp;
}

/* ck, xr, vr, bad, shared (bits of g, th, r, sc): as for mdn_fwd_args */
/* The adjoint of one step of one element from its pre-step V (v), the current I and the gradient gs of its
   output spike (sc: the graded-spikes factor): the step once more for x and s, the surrogate, the undetached
   reset's term gV (r - V') when und, and fo_adjoint; *gsc gets the factor's sum (with sums, as the others). Returns
   the input's gradient. und, sig, sums: as for mdn_step_adjoint. */
static inline scalar_t SFX(fo_step_adjoint)(scalar_t v, scalar_t I, scalar_t gs, scalar_t g, scalar_t th, scalar_t r,
                                            scalar_t sc, scalar_t w, int und, int sig, scalar_t *restrict gv,
                                            scalar_t *restrict gg, scalar_t *restrict gth, scalar_t *restrict gr,
                                            scalar_t *restrict gsc, const int sums) {
    scalar_t vn = v, x;
    const scalar_t s = SFX(fo_step)(&vn, &x, I, g, th, r);
    const int open = SFX(in_window)(x, w);
    scalar_t gsh = (gs * sc) * (scalar_t)open;
    if (und && open) gsh += *gv * (r - (g * v + I));
    if (sums) *gsc += gs * s;
    return SFX(through_sigmoid)(SFX(fo_adjoint)(v, s, gsh, g, gv, gg, gth, gr, sums), I, sig);
}

/* A single step (T = 1) of n elements in one pass, forward (spk, vT from v0; cx, cv: the counts of mdn_single_step) ... */
static inline __attribute__((always_inline)) void SFX(fo_single_step)(
    int n, const scalar_t *restrict v0, const scalar_t *restrict I, scalar_t *restrict spk, scalar_t *restrict vT,
    const scalar_t *restrict pg, const scalar_t *restrict pth, const scalar_t *restrict pr, const scalar_t *restrict psc,
    const scalar_t *restrict xr, int64_t *bad, const int cx, const int cv) {
    int bx = 0, bv = 0;
    for (int i = 0; i < n; i++) {
        scalar_t vn = v0[i], x;
        if (cx) bx += !(xr[i] - xr[i] == 0);
        if (cv) bv += !(vn - vn == 0);
        spk[i] = SFX(fo_step)(&vn, &x, I[i], pg[i], pth[i], pr[i]) * psc[i];
        vT[i] = vn;
    }
    SFX(add_count)(bad, bx);
    SFX(add_count)(bad + 1, bv);
}

/* ... and backward (gx, gv0 from the gradients gs, gvT of its outputs; the parameter sums into gg .. gsc when sums;
   und, sig, sums: constants at each call, WITH_FLAGS). */
static inline __attribute__((always_inline)) void SFX(fo_single_adjoint)(
    int n, const scalar_t *restrict v0, const scalar_t *restrict I, const scalar_t *restrict gs, const scalar_t *restrict gvT,
    scalar_t *restrict gx, scalar_t *restrict gv0, const scalar_t *restrict pg, const scalar_t *restrict pth,
    const scalar_t *restrict pr, const scalar_t *restrict psc, scalar_t *restrict gg, scalar_t *restrict gth,
    scalar_t *restrict gr, scalar_t *restrict gsc, scalar_t w, const int und, const int sig, const int sums) {
    for (int i = 0; i < n; i++) {
        scalar_t gvi = gvT[i];
        gx[i] = SFX(fo_step_adjoint)(v0[i], I[i], gs[i], pg[i], pth[i], pr[i], psc[i], w, und, sig, &gvi, &gg[i], &gth[i], &gr[i],
                                     &gsc[i], sums);
        gv0[i] = gvi;
    }
}

/* The adjoint of one step of n elements from their pre-step V (sv) and current I (fo_step_adjoint for each): gv goes
   from the post-reset to the pre-step state's gradient, gx gets the input's; the sums as for fo_single_adjoint. */
static inline __attribute__((always_inline)) void SFX(fo_adjoint_pass)(
    int n, const scalar_t *restrict sv, const scalar_t *restrict I, const scalar_t *restrict gs, scalar_t *restrict gx,
    scalar_t *restrict gv, const scalar_t *restrict pg, const scalar_t *restrict pth, const scalar_t *restrict pr,
    const scalar_t *restrict psc, scalar_t *restrict gg, scalar_t *restrict gth, scalar_t *restrict gr, scalar_t *restrict gsc,
    scalar_t w, const int und, const int sig, const int sums) {
    for (int i = 0; i < n; i++)
        gx[i] = SFX(fo_step_adjoint)(sv[i], I[i], gs[i], pg[i], pth[i], pr[i], psc[i], w, und, sig, &gv[i], &gg[i], &gth[i], &gr[i],
                                     &gsc[i], sums);
}

typedef struct {
    const scalar_t *I, *v0, *g, *th, *r, *sc, *xr, *vr;
    scalar_t *spk, *vT, *vtr, *ck;
    int64_t *bad;
    int64_t T, M, N, K;
    int shared;
} SFX(fo_fwd_args);

static void SFX(fo_fwd_range)(const void *p, sched_t *s) {
    const SFX(fo_fwd_args) *A = (const SFX(fo_fwd_args) *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K;
    scalar_t v[BLK], pbuf[4][BLK];
    int64_t base, end, k0 = -1;
    int n0 = 0;
    scalar_t *const buf[4] = {pbuf[0], pbuf[1], pbuf[2], pbuf[3]};
    const scalar_t *const src[4] = {A->g, A->th, A->r, A->sc};
    const scalar_t *prm[4];
    while (next_block(s, &base, &end)) {
        const int n = (int)(end - base);
        SFX(block_params)(4, prm, buf, src, A->shared, base % N, N, n, &k0, &n0);
        const scalar_t *restrict pg = prm[0], *restrict pth = prm[1], *restrict pr = prm[2], *restrict psc = prm[3];
        if (T == 1 && !A->vtr && !A->ck) {  /* a single step: one pass, its checks included */
#define SINGLE(cx, cv) \
    SFX(fo_single_step)(n, A->v0 + base, A->I + base, A->spk + base, A->vT + base, pg, pth, pr, psc, \
                        A->xr ? A->xr + base : NULL, A->bad, cx, cv)
            WITH_COUNTS(SINGLE, A->xr != NULL, A->vr != NULL);
#undef SINGLE
            continue;
        }
        if (A->vr) SFX(note_nonfinite)(A->bad + 1, A->vr + base, n);
        memcpy(v, A->v0 + base, n * sizeof(scalar_t));
        for (int64_t t = 0; t < T; t++) {
            const int64_t o = t * M + base;
            const scalar_t *restrict I = A->I + o;
            scalar_t *restrict spk = A->spk + o;
            if (A->xr) SFX(note_nonfinite)(A->bad, A->xr + o, n);
            if (A->ck && t % K == 0) memcpy(A->ck + (t / K) * M + base, v, n * sizeof(scalar_t));
            for (int i = 0; i < n; i++) {
                scalar_t x;
                spk[i] = SFX(fo_step)(&v[i], &x, I[i], pg[i], pth[i], pr[i]) * psc[i];
            }
            if (A->vtr) memcpy(A->vtr + o, v, n * sizeof(scalar_t));
        }
        memcpy(A->vT + base, v, n * sizeof(scalar_t));
    }
}

int SFX(fo_fwd)(const scalar_t *I, const scalar_t *v0, const scalar_t *g, const scalar_t *th, const scalar_t *r,
                const scalar_t *sc, const scalar_t *xr, const scalar_t *vr, scalar_t *spk, scalar_t *vT, scalar_t *vtr,
                scalar_t *ck, int64_t *bad, int64_t T, int64_t M, int64_t N, int64_t K, int shared, int nthreads) {
    SFX(fo_fwd_args) A = {I, v0, g, th, r, sc, xr, vr, spk, vT, vtr, ck, bad, T, M, N, K, shared};
    parallel_for(SFX(fo_fwd_range), &A, M, N, nthreads);
    return 0;
}

/* ck: the checkpoints [ceil(T / K), M] (the single step passes its v0); want, shared: as for mdn_bwd_args */
typedef struct {
    const scalar_t *I, *ck, *g, *th, *r, *sc, *gs, *gvtr, *gvT;
    scalar_t *gx, *gv0, *ge;
    double *gp;
    int64_t T, M, N, K;
    scalar_t width;
    int sigmoid, undetached, want, shared;
} SFX(fo_bwd_args);

static void SFX(fo_bwd_range)(const void *p, sched_t *s) {
    const SFX(fo_bwd_args) *A = (const SFX(fo_bwd_args) *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K;
    const scalar_t w = A->width;
    const int sig = A->sigmoid, und = A->undetached;
    scalar_t v[BLK], gv[BLK], zero[BLK], pbuf[4][BLK];
    scalar_t gg[BLK], gth[BLK], gr[BLK], gsc[BLK];
    scalar_t *seg = (scalar_t *)malloc((size_t)K * BLK * sizeof(scalar_t));
    if (!seg) abort();
    memset(zero, 0, sizeof(zero));
    for (int i = 0; i < BLK; i++) gg[i] = gth[i] = gr[i] = gsc[i] = 0;
    int64_t base, end, k0 = -1;
    int n0 = 0;
    scalar_t *const buf[4] = {pbuf[0], pbuf[1], pbuf[2], pbuf[3]};
    const scalar_t *const src[4] = {A->g, A->th, A->r, A->sc};
    const scalar_t *prm[4];
    while (next_block(s, &base, &end)) {
        const int n = (int)(end - base);
        SFX(block_params)(4, prm, buf, src, A->shared, base % N, N, n, &k0, &n0);
        const scalar_t *restrict pg = prm[0], *restrict pth = prm[1], *restrict pr = prm[2], *restrict psc = prm[3];
        if (A->want) /* (unread sums are zeroed once, above) */
            for (int i = 0; i < n; i++) gg[i] = gth[i] = gr[i] = gsc[i] = 0;
        if (T == 1) {  /* a single step: one pass over its own arrays (its checkpoint is its state) */
#define SINGLE(und_, sig_, sums_)                                                                                   \
    SFX(fo_single_adjoint)(n, A->ck + base, A->I + base, A->gs ? A->gs + base : zero, A->gvT ? A->gvT + base : zero, \
                           A->gx + base, A->gv0 + base, pg, pth, pr, psc, gg, gth, gr, gsc, w, und_, sig_, sums_)
            WITH_FLAGS(SINGLE, und, sig, A->want != 0);
#undef SINGLE
        } else {
        if (A->gvT) memcpy(gv, A->gvT + base, n * sizeof(scalar_t)); else memset(gv, 0, n * sizeof(scalar_t));
        for (int64_t t0 = ((T - 1) / K) * K; t0 >= 0; t0 -= K) {
            const int64_t t1 = t0 + K < T ? t0 + K : T;
            memcpy(v, A->ck + (t0 / K) * M + base, n * sizeof(scalar_t));
            for (int64_t t = t0; t < t1; t++) {  /* recompute the segment: the forward's step, bitwise */
                const scalar_t *restrict I = A->I + t * M + base;
                memcpy(seg + (t - t0) * BLK, v, n * sizeof(scalar_t));
                for (int i = 0; i < n; i++) {
                    scalar_t x;
                    SFX(fo_step)(&v[i], &x, I[i], pg[i], pth[i], pr[i]);
                }
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t o = t * M + base;
                const scalar_t *restrict I = A->I + o, *restrict sv = seg + (t - t0) * BLK;
                const scalar_t *restrict gs = A->gs ? A->gs + o : zero;
                scalar_t *restrict gx = A->gx + o;
                if (A->gvtr) for (int i = 0; i < n; i++) gv[i] += A->gvtr[o + i];
#define PASS(und_, sig_, sums_) SFX(fo_adjoint_pass)(n, sv, I, gs, gx, gv, pg, pth, pr, psc, gg, gth, gr, gsc, w, und_, sig_, sums_)
                WITH_FLAGS(PASS, und, sig, A->want != 0);
#undef PASS
            }
        }
        memcpy(A->gv0 + base, gv, n * sizeof(scalar_t));
        }
        const scalar_t *sums[4] = {gg, gth, gr, gsc};  /* the element's parameter sums over time, [4, M] */
        for (int q = 0; q < 4; q++)
            if (A->want >> q & 1) memcpy(A->ge + q * M + base, sums[q], n * sizeof(scalar_t));
    }
    free(seg);
}

/* ge: scratch [4, M]; gp: the parameter gradients [4, N] (double), the rows of want */
int SFX(fo_bwd)(const scalar_t *I, const scalar_t *ck, const scalar_t *g, const scalar_t *th, const scalar_t *r,
                const scalar_t *sc, const scalar_t *gs, const scalar_t *gvtr, const scalar_t *gvT, scalar_t *gx, scalar_t *gv0,
                scalar_t *ge, double *gp, int64_t T, int64_t M, int64_t N, int64_t K, double width, int sigmoid, int undetached,
                int want, int shared, int nthreads) {
    SFX(fo_bwd_args) A = {I, ck, g, th, r, sc, gs, gvtr, gvT, gx, gv0, ge, gp, T, M, N, K, (scalar_t)width, sigmoid, undetached,
                          want, shared};
    parallel_for(SFX(fo_bwd_range), &A, M, N, nthreads);
    if (want) {
        SFX(reduce_args) R = {ge, NULL, gp, M, N, 4, want, 0, 0};
        parallel_for(SFX(reduce_range), &R, N, N, nthreads);
    }
    return 0;
}
