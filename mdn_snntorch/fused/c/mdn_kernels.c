/* CPU kernels of the fused time loop of mdn_snntorch (loaded with ctypes by mdn_snntorch/fused/c_kernels.py).

   The dtype-generic kernels are in mdn_kernels_impl.h, included below once per floating type; each
   exported function carries the type's suffix (mdn_fwd_f32, mdn_fwd_f64, ...). Build with
   -ffp-contract=off (no fused multiply-add: every + and * rounds as PyTorch's eager ops do, see
   docs/model.md#tolerances), optionally -fopenmp. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

/* elements per block: each thread walks its range of elements in blocks, the time loop inside */
#define BLK 512
#define MAX_THREADS 256

typedef void (*range_fn)(const void *args, int64_t e0, int64_t e1, int tid);

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
typedef struct { range_fn fn; const void *args; int64_t e0, e1; int tid; } job_t;

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

#define scalar_t float
#define SFX(name) name##_f32
#include "mdn_kernels_impl.h"
#undef scalar_t
#undef SFX

#define scalar_t double
#define SFX(name) name##_f64
#include "mdn_kernels_impl.h"
#undef scalar_t
#undef SFX
