r"""CPU kernels of the fused time loop: plain C, built once with the system compiler, called through ctypes.

Both neurons are elementwise recurrences over the leading time axis of ``[T, M]`` (``M`` = batch x neurons,
the neuron index of element ``e`` is ``e % N``). Each thread takes a range of elements and walks it in
blocks of ``BLK``; for each block the time loop runs inside, vectorised over the block. The forward keeps
the state (``V``, and ``U`` for the MDN) only every ``K`` steps (checkpoints); the backward, per block and
segment of ``K`` steps from the last, recomputes the segment from its checkpoint into a cache-resident
buffer and runs the adjoint over it. The recomputation is bitwise the forward (same code; the C is built
with ``-ffp-contract=off``, so every ``+`` and ``*`` rounds as in PyTorch's eager ops and the forward is
also bitwise the reference loop's in float32 and float64). Parameter gradients are summed over time per
element, then per neuron and thread in double; the threads' sums are added in PyTorch.

MDN step (``dt`` already divided by the number of sub-steps)::

    V' = V + dt ((V V - V) - U + I);  U' = U + dt a (b V - U);  x = V' - V_th;  S = [x > 0]
    V <- S ? c : V';  U <- U' + d S;  output S * scale     (scale: snnTorch's graded_spikes_factor)

and its adjoint (``gV, gU`` the gradients of the post-reset state, ``gS`` of the unscaled spike
(``scale`` times that of the output; ``gscale += gOut S``), ``h = [|x| < w]`` the window surrogate)::

    gV' = gV (1 - S) + gS h;   gc += gV S;   gd += gU S;   gV_th -= gS h
    g = dt gV';   gI += g (summed over sub-steps);   ga += gU dt (b V - U);   gb += gU dt a V
    gV <- gV' + g (2V - 1) + gU dt a b;   gU <- gU (1 - dt a) - g

With ``n`` sub-steps the step spike is the OR ``S <- S + S_k - S S_k``, whose gradient reaches sub-step
``k`` only when no other sub-step of that step fired.

The shared library is cached under ``$MDN_SNNTORCH_CACHE`` (default ``~/.cache/mdn_snntorch``), keyed by
a hash of the source, the compiler, its flags and the CPU's feature flags; :func:`library` returns
``None`` (and the caller falls back to the PyTorch loop) when no compiler works.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

Tensor = torch.Tensor

_PRELUDE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#define BLK 512
#define MAX_THREADS 256

typedef void (*range_fn)(const void *args, int64_t e0, int64_t e1, int tid);
typedef struct { range_fn fn; const void *args; int64_t e0, e1; int tid; } job_t;

/* Split [0, M) into nthreads ranges of whole blocks, range i run by thread i (its index tid is passed on,
   for per-thread outputs). With OpenMP, the threads are those of the OpenMP runtime already loaded by
   PyTorch (the same libgomp), so the kernels share PyTorch's thread pool instead of competing with it. */
#ifdef _OPENMP
#include <omp.h>
static void parallel_for(range_fn fn, const void *args, int64_t M, int nthreads) {
    int64_t nblk = (M + BLK - 1) / BLK;
    if (nthreads > nblk) nthreads = (int)nblk;
    if (nthreads <= 1) { fn(args, 0, M, 0); return; }
    #pragma omp parallel num_threads(nthreads)
    {
        const int i = omp_get_thread_num(), n = omp_get_num_threads();
        const int64_t per = (nblk + n - 1) / n, e0 = i * per * BLK, e1 = (i + 1) * per * BLK;
        if (e0 < M) fn(args, e0, e1 < M ? e1 : M, i);
    }
}
#else
static void *run_job(void *p) { job_t *j = (job_t *)p; j->fn(j->args, j->e0, j->e1, j->tid); return NULL; }

static void parallel_for(range_fn fn, const void *args, int64_t M, int nthreads) {
    int64_t nblk = (M + BLK - 1) / BLK;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads > nblk) nthreads = (int)nblk;
    if (nthreads <= 1) { fn(args, 0, M, 0); return; }
    job_t jobs[MAX_THREADS]; pthread_t tid[MAX_THREADS]; int started[MAX_THREADS];
    int64_t per = (nblk + nthreads - 1) / nthreads;
    for (int i = 0; i < nthreads; i++) {
        int64_t e0 = i * per * BLK, e1 = (i + 1) * per * BLK;
        jobs[i].fn = fn; jobs[i].args = args; jobs[i].tid = i;
        jobs[i].e0 = e0 < M ? e0 : M; jobs[i].e1 = e1 < M ? e1 : M;
    }
    for (int i = 1; i < nthreads; i++) started[i] = pthread_create(&tid[i], NULL, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);
    for (int i = 1; i < nthreads; i++) {
        if (started[i]) pthread_join(tid[i], NULL); else run_job(&jobs[i]);
    }
}
#endif
"""

# Written once with `scalar_t` and the suffix `_SFX`; instantiated for float and double.
_TEMPLATE = r"""
/* ---------------- 2nd-order MDN ---------------- */
/* One Euler (sub-)step of element i from its state vi, ui and current Ii: sets x = V' - V_th and the
   spike s, and writes the post-reset state to v[i], u[i]. Every forward and recomputing pass expands
   this one expression, so the backward sees bitwise the forward's states. */
#define MDN_EULER_SFX(i, vi, ui, Ii, x, s)                                                      \
    do {                                                                                        \
        const scalar_t vp_ = (vi) + dt * ((((vi) * (vi) - (vi)) - (ui)) + (Ii));                \
        const scalar_t up_ = (ui) + dt * (pa[i] * (pb[i] * (vi) - (ui)));                       \
        x = vp_ - pth[i];                                                                       \
        s = x > 0 ? (scalar_t)1 : (scalar_t)0;                                                  \
        v[i] = s > 0 ? pc[i] : vp_;                                                             \
        u[i] = up_ + pd[i] * s;                                                                 \
    } while (0)

/* Advance a block of n elements by one network step (S Euler sub-steps of dt, input I held); acc gets
   the step's spike, the OR of the sub-steps' spikes. */
static inline void mdn_advance_SFX(int n, int S, scalar_t dt, const scalar_t *restrict I, scalar_t *restrict v,
                                   scalar_t *restrict u, scalar_t *restrict acc, const scalar_t *restrict pa,
                                   const scalar_t *restrict pb, const scalar_t *restrict pc,
                                   const scalar_t *restrict pd, const scalar_t *restrict pth) {
    for (int j = 0; j < S; j++) {
        for (int i = 0; i < n; i++) {
            const scalar_t vi = v[i], ui = u[i];
            scalar_t x, s;
            MDN_EULER_SFX(i, vi, ui, I[i], x, s);
            acc[i] = j == 0 ? s : (acc[i] + s) - acc[i] * s;
        }
    }
}

typedef struct {
    const scalar_t *I, *v0, *u0, *a, *b, *c, *d, *th, *sc;
    scalar_t *spk, *vT, *uT, *vtr, *utr, *ck;
    int64_t T, M, N, K; scalar_t dt; int substeps;
} mdn_fwd_args_SFX;

static void mdn_fwd_range_SFX(const void *p, int64_t e0, int64_t e1, int tid) {
    const mdn_fwd_args_SFX *A = (const mdn_fwd_args_SFX *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K; const int S = A->substeps; const scalar_t dt = A->dt;
    scalar_t v[BLK], u[BLK], acc[BLK], pa[BLK], pb[BLK], pc[BLK], pd[BLK], pth[BLK], psc[BLK];
    (void)tid;
    for (int64_t base = e0; base < e1; base += BLK) {
        const int n = (int)(e1 - base < BLK ? e1 - base : BLK);
        int64_t k = base % N;
        for (int i = 0; i < n; i++) {
            pa[i] = A->a[k]; pb[i] = A->b[k]; pc[i] = A->c[k]; pd[i] = A->d[k]; pth[i] = A->th[k]; psc[i] = A->sc[k];
            v[i] = A->v0[base + i]; u[i] = A->u0[base + i];
            if (++k == N) k = 0;
        }
        for (int64_t t = 0; t < T; t++) {
            const int64_t o = t * M + base;
            if (t % K == 0) {  /* checkpoint: the state before step t */
                memcpy(A->ck + (t / K) * 2 * M + base, v, n * sizeof(scalar_t));
                memcpy(A->ck + (t / K) * 2 * M + M + base, u, n * sizeof(scalar_t));
            }
            mdn_advance_SFX(n, S, dt, A->I + o, v, u, acc, pa, pb, pc, pd, pth);
            scalar_t *restrict spk = A->spk + o;
            for (int i = 0; i < n; i++) spk[i] = acc[i] * psc[i];
            if (A->vtr) { memcpy(A->vtr + o, v, n * sizeof(scalar_t)); memcpy(A->utr + o, u, n * sizeof(scalar_t)); }
        }
        memcpy(A->vT + base, v, n * sizeof(scalar_t)); memcpy(A->uT + base, u, n * sizeof(scalar_t));
    }
}

int mdn_fwd_SFX(const scalar_t *I, const scalar_t *v0, const scalar_t *u0,
                const scalar_t *a, const scalar_t *b, const scalar_t *c, const scalar_t *d, const scalar_t *th,
                const scalar_t *sc, scalar_t *spk, scalar_t *vT, scalar_t *uT, scalar_t *vtr, scalar_t *utr,
                scalar_t *ck, int64_t T, int64_t M, int64_t N, int64_t K, double dt, int substeps, int nthreads) {
    mdn_fwd_args_SFX A = {I, v0, u0, a, b, c, d, th, sc, spk, vT, uT, vtr, utr, ck, T, M, N, K, (scalar_t)dt, substeps};
    parallel_for(mdn_fwd_range_SFX, &A, M, nthreads);
    return 0;
}

typedef struct {
    const scalar_t *I, *ck, *a, *b, *c, *d, *th, *sc;
    const scalar_t *gs, *gvtr, *gutr, *gvT, *guT;
    scalar_t *gx, *gv0, *gu0; double *gp;
    int64_t T, M, N, K; scalar_t dt, width; int substeps, sigmoid;
} mdn_bwd_args_SFX;

/* One adjoint (sub-)step for element i from its pre-step state vi, ui, whether it fired, and the
   spike gradient gsh that reaches it through the surrogate; updates gv, gu and the parameter sums
   (ga, gb without their factors dt and dt a, applied once at the end), and sets g to the gradient of
   the current I. The reset's adjoint is a select, as autograd's of torch.where. */
#define MDN_ADJOINT_SFX(i, vi, ui, fire, gsh, g)                                                \
    do {                                                                                        \
        const scalar_t gvi = gv[i], gui = gu[i];                                                \
        const scalar_t gvp = ((fire) ? (scalar_t)0 : gvi) + (gsh);                              \
        gc[i] += (fire) ? gvi : (scalar_t)0; gd[i] += (fire) ? gui : (scalar_t)0;               \
        gth[i] -= (gsh);                                                                        \
        ga[i] += gui * (pb[i] * (vi) - (ui)); gb[i] += gui * (vi);                              \
        g = gvp * dt;                                                                           \
        gv[i] = gvp + g * (2 * (vi) - 1) + gui * dab[i];                                        \
        gu[i] = gui * oma[i] - g;                                                               \
    } while (0)

static void mdn_bwd_range_SFX(const void *p, int64_t e0, int64_t e1, int tid) {
    const mdn_bwd_args_SFX *A = (const mdn_bwd_args_SFX *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K; const int S = A->substeps, sig = A->sigmoid;
    const scalar_t dt = A->dt, w = A->width;
    scalar_t gv[BLK], gu[BLK], gI[BLK], gS[BLK], v[BLK], u[BLK], acc[BLK], cnt[BLK], zero[BLK];
    scalar_t pa[BLK], pb[BLK], pc[BLK], pd[BLK], pth[BLK], psc[BLK], dab[BLK], oma[BLK];
    scalar_t ga[BLK], gb[BLK], gc[BLK], gd[BLK], gth[BLK], gsc[BLK];
    /* per step of the current segment (recomputed from its checkpoint): the pre-step state and, for
       S = 1, x = V' - V_th; for S > 1 the same for every sub-step of the current step */
    scalar_t *seg = (scalar_t *)malloc(3 * (size_t)K * BLK * sizeof(scalar_t));
    scalar_t *vk = (scalar_t *)malloc(3 * (size_t)S * BLK * sizeof(scalar_t));
    if (!seg || !vk) abort();
    scalar_t *uk = vk + (size_t)S * BLK, *xk = vk + 2 * (size_t)S * BLK;
    memset(zero, 0, sizeof(zero));
    for (int64_t base = e0; base < e1; base += BLK) {
        const int n = (int)(e1 - base < BLK ? e1 - base : BLK);
        int64_t k = base % N;
        for (int i = 0; i < n; i++) {
            pa[i] = A->a[k]; pb[i] = A->b[k]; pc[i] = A->c[k]; pd[i] = A->d[k]; pth[i] = A->th[k]; psc[i] = A->sc[k];
            dab[i] = dt * (pa[i] * pb[i]); oma[i] = 1 - dt * pa[i];
            gv[i] = A->gvT ? A->gvT[base + i] : 0; gu[i] = A->guT ? A->guT[base + i] : 0;
            ga[i] = gb[i] = gc[i] = gd[i] = gth[i] = gsc[i] = 0;
            if (++k == N) k = 0;
        }
        for (int64_t t0 = ((T - 1) / K) * K; t0 >= 0; t0 -= K) {
            const int64_t t1 = t0 + K < T ? t0 + K : T;
            memcpy(v, A->ck + (t0 / K) * 2 * M + base, n * sizeof(scalar_t));
            memcpy(u, A->ck + (t0 / K) * 2 * M + M + base, n * sizeof(scalar_t));
            for (int64_t t = t0; t < t1; t++) {  /* recompute the segment, bitwise as the forward did */
                scalar_t *restrict sv = seg + 3 * (t - t0) * BLK, *restrict su = sv + BLK, *restrict sx = su + BLK;
                const scalar_t *restrict I = A->I + t * M + base;
                if (S == 1) {  /* the step of mdn_advance, keeping x */
                    for (int i = 0; i < n; i++) {
                        const scalar_t vi = v[i], ui = u[i];
                        scalar_t x, s;
                        MDN_EULER_SFX(i, vi, ui, I[i], x, s);
                        (void)s;
                        sv[i] = vi; su[i] = ui; sx[i] = x;
                    }
                } else {
                    memcpy(sv, v, n * sizeof(scalar_t)); memcpy(su, u, n * sizeof(scalar_t));
                    mdn_advance_SFX(n, S, dt, I, v, u, acc, pa, pb, pc, pd, pth);
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
                    for (int i = 0; i < n; i++) {
                        const scalar_t vi = sv[i], ui = su[i], x = sx[i], Ii = I[i], gsi = gs[i];
                        const int fire = x > 0;
                        const scalar_t gsh = ((x < w) & (-x < w)) ? gsi * psc[i] : (scalar_t)0;  /* no &&: it would branch */
                        scalar_t g;
                        gsc[i] += fire ? gsi : (scalar_t)0;
                        MDN_ADJOINT_SFX(i, vi, ui, fire, gsh, g);
                        gx[i] = sig ? (g * (1 - Ii)) * Ii : g;
                    }
                    continue;
                }
                for (int i = 0; i < n; i++) { v[i] = sv[i]; u[i] = su[i]; gI[i] = 0; cnt[i] = 0; }
                for (int j = 0; j < S; j++) {  /* the sub-steps of step t */
                    scalar_t *vj = vk + j * BLK, *uj = uk + j * BLK, *xj = xk + j * BLK;
                    for (int i = 0; i < n; i++) {
                        const scalar_t vi = v[i], ui = u[i];
                        scalar_t x, s;
                        MDN_EULER_SFX(i, vi, ui, I[i], x, s);
                        vj[i] = vi; uj[i] = ui; xj[i] = x; cnt[i] += s;
                    }
                }
                for (int i = 0; i < n; i++) {  /* through the output scale; the step's spike is [cnt > 0] */
                    gS[i] = gs[i] * psc[i];
                    gsc[i] += gs[i] * (cnt[i] > 0 ? (scalar_t)1 : (scalar_t)0);
                }
                for (int j = S - 1; j >= 0; j--) {
                    const scalar_t *vj = vk + j * BLK, *uj = uk + j * BLK, *xj = xk + j * BLK;
                    for (int i = 0; i < n; i++) {
                        const scalar_t vi = vj[i], ui = uj[i], x = xj[i];
                        const int fire = x > 0;
                        /* the OR passes the step's spike gradient to sub-step j iff no other sub-step fired */
                        const int alone = (cnt[i] - (fire ? (scalar_t)1 : (scalar_t)0)) == 0;
                        const scalar_t gsh = (alone & (x < w) & (-x < w)) ? gS[i] : (scalar_t)0;
                        scalar_t g;
                        MDN_ADJOINT_SFX(i, vi, ui, fire, gsh, g);
                        gI[i] += g;
                    }
                }
                for (int i = 0; i < n; i++) gx[i] = sig ? (gI[i] * (1 - I[i])) * I[i] : gI[i];
            }
        }
        double *gp = A->gp + (size_t)tid * 6 * N;  /* this thread's [6, N] sums */
        k = base % N;
        for (int i = 0; i < n; i++) {
            A->gv0[base + i] = gv[i]; A->gu0[base + i] = gu[i];
            gp[k] += (double)dt * ga[i]; gp[N + k] += (double)(dt * pa[i]) * gb[i]; gp[2 * N + k] += gc[i];
            gp[3 * N + k] += gd[i]; gp[4 * N + k] += gth[i]; gp[5 * N + k] += gsc[i];
            if (++k == N) k = 0;
        }
    }
    free(seg);
    free(vk);
}

int mdn_bwd_SFX(const scalar_t *I, const scalar_t *ck,
                const scalar_t *a, const scalar_t *b, const scalar_t *c, const scalar_t *d, const scalar_t *th,
                const scalar_t *sc, const scalar_t *gs, const scalar_t *gvtr, const scalar_t *gutr,
                const scalar_t *gvT, const scalar_t *guT, scalar_t *gx, scalar_t *gv0, scalar_t *gu0, double *gp,
                int64_t T, int64_t M, int64_t N, int64_t K, double dt, double width, int substeps, int sigmoid,
                int nthreads) {
    mdn_bwd_args_SFX A = {I, ck, a, b, c, d, th, sc, gs, gvtr, gutr, gvT, guT, gx, gv0, gu0, gp,
                          T, M, N, K, (scalar_t)dt, (scalar_t)width, substeps, sigmoid};
    parallel_for(mdn_bwd_range_SFX, &A, M, nthreads);
    return 0;
}

/* ---------------- 1st-order neuron: V' = g V + I ---------------- */
typedef struct {
    const scalar_t *I, *v0, *g, *th, *r, *sc;
    scalar_t *spk, *vT, *vtr, *ck;
    int64_t T, M, N, K;
} fo_fwd_args_SFX;

static void fo_fwd_range_SFX(const void *p, int64_t e0, int64_t e1, int tid) {
    const fo_fwd_args_SFX *A = (const fo_fwd_args_SFX *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K;
    scalar_t v[BLK], pg[BLK], pth[BLK], pr[BLK], psc[BLK];
    (void)tid;
    for (int64_t base = e0; base < e1; base += BLK) {
        const int n = (int)(e1 - base < BLK ? e1 - base : BLK);
        int64_t k = base % N;
        for (int i = 0; i < n; i++) {
            pg[i] = A->g[k]; pth[i] = A->th[k]; pr[i] = A->r[k]; psc[i] = A->sc[k]; v[i] = A->v0[base + i];
            if (++k == N) k = 0;
        }
        for (int64_t t = 0; t < T; t++) {
            const int64_t o = t * M + base;
            const scalar_t *restrict I = A->I + o;
            scalar_t *restrict spk = A->spk + o;
            if (t % K == 0) memcpy(A->ck + (t / K) * M + base, v, n * sizeof(scalar_t));
            for (int i = 0; i < n; i++) {
                const scalar_t vp = pg[i] * v[i] + I[i];
                const scalar_t s = (vp - pth[i]) > 0 ? (scalar_t)1 : (scalar_t)0;
                v[i] = s > 0 ? pr[i] : vp;
                spk[i] = s * psc[i];
            }
            if (A->vtr) memcpy(A->vtr + o, v, n * sizeof(scalar_t));
        }
        memcpy(A->vT + base, v, n * sizeof(scalar_t));
    }
}

int fo_fwd_SFX(const scalar_t *I, const scalar_t *v0, const scalar_t *g, const scalar_t *th, const scalar_t *r,
               const scalar_t *sc, scalar_t *spk, scalar_t *vT, scalar_t *vtr, scalar_t *ck,
               int64_t T, int64_t M, int64_t N, int64_t K, int nthreads) {
    fo_fwd_args_SFX A = {I, v0, g, th, r, sc, spk, vT, vtr, ck, T, M, N, K};
    parallel_for(fo_fwd_range_SFX, &A, M, nthreads);
    return 0;
}

typedef struct {
    const scalar_t *I, *ck, *g, *th, *r, *sc, *gs, *gvtr, *gvT;
    scalar_t *gx, *gv0; double *gp;
    int64_t T, M, N, K; scalar_t width; int sigmoid;
} fo_bwd_args_SFX;

static void fo_bwd_range_SFX(const void *p, int64_t e0, int64_t e1, int tid) {
    const fo_bwd_args_SFX *A = (const fo_bwd_args_SFX *)p;
    const int64_t T = A->T, M = A->M, N = A->N, K = A->K; const scalar_t w = A->width; const int sig = A->sigmoid;
    scalar_t v[BLK], gv[BLK], zero[BLK], pg[BLK], pth[BLK], pr[BLK], psc[BLK];
    scalar_t gg[BLK], gth[BLK], gr[BLK], gsc[BLK];
    scalar_t *seg = (scalar_t *)malloc((size_t)K * BLK * sizeof(scalar_t));
    if (!seg) abort();
    memset(zero, 0, sizeof(zero));
    for (int64_t base = e0; base < e1; base += BLK) {
        const int n = (int)(e1 - base < BLK ? e1 - base : BLK);
        int64_t k = base % N;
        for (int i = 0; i < n; i++) {
            pg[i] = A->g[k]; pth[i] = A->th[k]; pr[i] = A->r[k]; psc[i] = A->sc[k];
            gv[i] = A->gvT ? A->gvT[base + i] : 0; gg[i] = gth[i] = gr[i] = gsc[i] = 0;
            if (++k == N) k = 0;
        }
        for (int64_t t0 = ((T - 1) / K) * K; t0 >= 0; t0 -= K) {
            const int64_t t1 = t0 + K < T ? t0 + K : T;
            memcpy(v, A->ck + (t0 / K) * M + base, n * sizeof(scalar_t));
            for (int64_t t = t0; t < t1; t++) {  /* recompute the segment, bitwise as the forward did */
                const scalar_t *restrict I = A->I + t * M + base;
                memcpy(seg + (t - t0) * BLK, v, n * sizeof(scalar_t));
                for (int i = 0; i < n; i++) {
                    const scalar_t vp = pg[i] * v[i] + I[i];
                    v[i] = (vp - pth[i]) > 0 ? pr[i] : vp;
                }
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t o = t * M + base;
                const scalar_t *restrict I = A->I + o, *restrict sv = seg + (t - t0) * BLK;
                const scalar_t *restrict gs = A->gs ? A->gs + o : zero;
                scalar_t *restrict gx = A->gx + o;
                if (A->gvtr) for (int i = 0; i < n; i++) gv[i] += A->gvtr[o + i];
                for (int i = 0; i < n; i++) {
                    const scalar_t vi = sv[i], Ii = I[i];
                    const scalar_t x = (pg[i] * vi + Ii) - pth[i];
                    const scalar_t s = x > 0 ? (scalar_t)1 : (scalar_t)0;
                    const scalar_t h = (scalar_t)((x < w) & (-x < w));
                    const scalar_t gsh = (gs[i] * psc[i]) * h, gvi = gv[i];
                    const scalar_t gvp = gvi * (1 - s) + gsh;
                    gr[i] += gvi * s; gth[i] -= gsh; gg[i] += gvp * vi; gsc[i] += gs[i] * s;
                    gv[i] = gvp * pg[i];
                    gx[i] = sig ? (gvp * (1 - Ii)) * Ii : gvp;
                }
            }
        }
        double *gp = A->gp + (size_t)tid * 4 * N;  /* this thread's [4, N] sums */
        k = base % N;
        for (int i = 0; i < n; i++) {
            A->gv0[base + i] = gv[i];
            gp[k] += gg[i]; gp[N + k] += gth[i]; gp[2 * N + k] += gr[i]; gp[3 * N + k] += gsc[i];
            if (++k == N) k = 0;
        }
    }
    free(seg);
}

int fo_bwd_SFX(const scalar_t *I, const scalar_t *ck, const scalar_t *g, const scalar_t *th, const scalar_t *r,
               const scalar_t *sc, const scalar_t *gs, const scalar_t *gvtr, const scalar_t *gvT,
               scalar_t *gx, scalar_t *gv0, double *gp, int64_t T, int64_t M, int64_t N, int64_t K, double width,
               int sigmoid, int nthreads) {
    fo_bwd_args_SFX A = {I, ck, g, th, r, sc, gs, gvtr, gvT, gx, gv0, gp, T, M, N, K, (scalar_t)width, sigmoid};
    parallel_for(fo_bwd_range_SFX, &A, M, nthreads);
    return 0;
}
"""

#: float dtype -> (C type, symbol suffix)
_TYPES = {torch.float32: ("float", "_f32"), torch.float64: ("double", "_f64")}
DTYPES = tuple(_TYPES)
SOURCE = _PRELUDE + "".join(_TEMPLATE.replace("scalar_t", c).replace("_SFX", sfx) for c, sfx in _TYPES.values())
#: -ffp-contract=off: no fused multiply-add, so every operation rounds as PyTorch's eager kernels do.
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-pthread")
#: tried first: OpenMP threads from the libgomp PyTorch has loaded (one pool, no competing spinners);
#: without an OpenMP-capable compiler the kernels start their own pthreads
OPENMP = ("-fopenmp",)
#: below this many element-steps one thread is faster than starting more
_PARALLEL_MIN_WORK = 1 << 16
#: steps per checkpoint segment: the backward recomputes a segment in a per-thread buffer of
#: 2 x SEGMENT x BLK values (cache-resident) before running its adjoint
SEGMENT = 32

_lock = threading.Lock()
_state: dict[str, object] = {}


def cache_dir() -> Path:
    """Where built libraries are kept: ``$MDN_SNNTORCH_CACHE`` or ``~/.cache/mdn_snntorch``."""
    return Path(os.environ.get("MDN_SNNTORCH_CACHE") or Path.home() / ".cache" / "mdn_snntorch")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _build(cc: str, flags: tuple[str, ...]) -> Path:
    """Compile :data:`SOURCE` with ``flags`` (or reuse the cached build) and return the library's path."""
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    key = hashlib.sha256("\0".join([SOURCE, cc, version, *flags, platform.machine(), _cpu_flags()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"mdn_cpu_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src, lib = Path(tmp) / "mdn_cpu.c", Path(tmp) / "mdn_cpu.so"
        src.write_text(SOURCE)
        subprocess.run([cc, *flags, str(src), "-o", str(lib)], check=True, capture_output=True, text=True, timeout=300)
        os.replace(lib, out)  # atomic: concurrent builders all end with one complete file
    return out


def _load(cc: str) -> ctypes.CDLL:
    """Build with OpenMP, else without; load and declare the library."""
    try:
        path = _build(cc, CFLAGS + OPENMP)
    except subprocess.SubprocessError:
        path = _build(cc, CFLAGS)
    lib = ctypes.CDLL(str(path))
    _declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, dbl, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for _, sfx in _TYPES.values():
        getattr(lib, "mdn_fwd" + sfx).argtypes = [p] * 15 + [i64, i64, i64, i64, dbl, i32, i32]
        getattr(lib, "mdn_bwd" + sfx).argtypes = [p] * 17 + [i64, i64, i64, i64, dbl, dbl, i32, i32, i32]
        getattr(lib, "fo_fwd" + sfx).argtypes = [p] * 10 + [i64, i64, i64, i64, i32]
        getattr(lib, "fo_bwd" + sfx).argtypes = [p] * 12 + [i64, i64, i64, i64, dbl, i32, i32]


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; ``None`` if they cannot be built here
    (no compiler, a failed build, or ``MDN_SNNTORCH_NO_CEXT=1``). The outcome is remembered."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]  # type: ignore[return-value]
        cc = _compiler()
        if os.environ.get("MDN_SNNTORCH_NO_CEXT", "") not in ("", "0") or cc is None:
            _state["lib"] = None
            return None
        try:
            lib = _load(cc)
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            warnings.warn(
                f"mdn_snntorch: building the CPU kernels failed, using the PyTorch loop instead: {detail[:500]}",
                RuntimeWarning,
                stacklevel=2,
            )
            lib = None
        _state["lib"] = lib
        return lib


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t


def _threads(work: int) -> int:
    return torch.get_num_threads() if work >= _PARALLEL_MIN_WORK else 1


def _fn(name: str, dtype: torch.dtype):
    return getattr(library(), name + _TYPES[dtype][1])


def mdn_forward(
    x: Tensor, v0: Tensor, u0: Tensor, params: Tensor, dt: float, substeps: int, sigmoid: bool, traces: bool, every: int
):
    """Forward over ``x [T, M]`` from ``v0, u0 [M]`` with ``params = (a, b, c, d, V_th, scale) [6, N]``, all
    contiguous; the current is ``I = sigmoid(x)`` if ``sigmoid`` else ``x``; the spikes are ``S * scale``.

    Returns ``(spikes, v_T, u_T, v_trace, u_trace, I, checkpoints)``; the traces are empty unless asked
    for; ``checkpoints [ceil(T / every), 2, M]`` holds ``(V, U)`` before steps ``0, every, 2 every, ...``.
    """
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    spk, ck = torch.empty_like(I), I.new_empty(-(-T // every), 2, M)
    vT, uT = torch.empty_like(v0), torch.empty_like(v0)
    vtr, utr = (torch.empty_like(I), torch.empty_like(I)) if traces else (None, None)
    _fn("mdn_fwd", I.dtype)(
        *map(_ptr, (I, v0, u0, *params.unbind(0), spk, vT, uT, vtr, utr, ck)),
        T,
        M,
        params.shape[1],
        every,
        dt / substeps,
        substeps,
        _threads(T * M * substeps),
    )
    return spk, vT, uT, _or_empty(vtr, I), _or_empty(utr, I), I, ck


def mdn_backward(I, ck, params, gs, gvtr, gutr, gvT, guT, dt: float, substeps: int, width: float, sigmoid: bool, every: int):
    """Backward of :func:`mdn_forward`; gradient arguments may be ``None`` (zero).

    Returns ``(g_input, g_v0, g_u0, g_params [6, N] float64)``.
    """
    T, M = I.shape
    N, threads = params.shape[1], _threads(T * M * (2 * substeps + 1))
    gx, gv0, gu0 = torch.empty_like(I), I.new_empty(M), I.new_empty(M)
    gp = torch.zeros(threads, 6, N, dtype=torch.float64)
    _fn("mdn_bwd", I.dtype)(
        *map(_ptr, (I, ck, *params.unbind(0), gs, gvtr, gutr, gvT, guT, gx, gv0, gu0, gp)),
        T,
        M,
        N,
        every,
        dt / substeps,
        width,
        substeps,
        int(sigmoid),
        threads,
    )
    return gx, gv0, gu0, gp.sum(0)


def first_order_forward(x: Tensor, v0: Tensor, params: Tensor, sigmoid: bool, traces: bool, every: int):
    """Forward of the 1st-order neuron; ``params = (g, V_th, V_reset, scale) [4, N]``.
    Returns ``(spikes, v_T, v_trace, I, checkpoints [ceil(T / every), M])``."""
    I = torch.sigmoid(x) if sigmoid else x
    T, M = I.shape
    spk, ck, vT = torch.empty_like(I), I.new_empty(-(-T // every), M), torch.empty_like(v0)
    vtr = torch.empty_like(I) if traces else None
    _fn("fo_fwd", I.dtype)(
        *map(_ptr, (I, v0, *params.unbind(0), spk, vT, vtr, ck)),
        T,
        M,
        params.shape[1],
        every,
        _threads(T * M),
    )
    return spk, vT, _or_empty(vtr, I), I, ck


def first_order_backward(I, ck, params, gs, gvtr, gvT, width: float, sigmoid: bool, every: int):
    """Backward of :func:`first_order_forward`: ``(g_input, g_v0, g_params [4, N] float64)``."""
    T, M = I.shape
    N, threads = params.shape[1], _threads(T * M * 2)
    gx, gv0 = torch.empty_like(I), I.new_empty(M)
    gp = torch.zeros(threads, 4, N, dtype=torch.float64)
    _fn("fo_bwd", I.dtype)(
        *map(_ptr, (I, ck, *params.unbind(0), gs, gvtr, gvT, gx, gv0, gp)),
        T,
        M,
        N,
        every,
        width,
        int(sigmoid),
        threads,
    )
    return gx, gv0, gp.sum(0)
