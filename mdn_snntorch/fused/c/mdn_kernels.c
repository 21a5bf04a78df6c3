/* CPU kernels of the fused time loop of mdn_snntorch (loaded with ctypes by mdn_snntorch/fused/c_kernels.py).

   The dtype-generic kernels are in mdn_kernels_impl.h, included below once per floating type; each
   exported function carries the type's suffix (mdn_fwd_f32, mdn_fwd_f64, ...). Build with
   -ffp-contract=off (no fused multiply-add: every + and * rounds as PyTorch's eager ops do, see
   docs/model.md#tolerances), optionally -fopenmp. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>

/* elements per block: the threads take blocks of the elements in turn, the time loop inside each block */
#define BLK 512
#define MAX_THREADS 256

/* The blocks of one call: block j covers [j BLK, min((j + 1) BLK, len)); next is the first block not yet taken. */
typedef struct { _Atomic int64_t next; int64_t nblk, len; } sched_t;

/* Take the next block [*e0, *e1); 0 when none is left. Threads take blocks as they finish the previous one
   (dynamic scheduling), so a thread that shares its core with another process delays the call by at most the
   block it is working on, instead of holding up its fixed share of the work. Which thread runs a block never
   changes a result: every output is written per element (parameter sums: per element, then per neuron in a
   fixed order), so the results are the same for any number of threads. */
static inline int next_block(sched_t *s, int64_t *e0, int64_t *e1) {
    const int64_t j = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
    if (j >= s->nblk) return 0;
    *e0 = j * BLK;
    *e1 = (j + 1) * BLK < s->len ? (j + 1) * BLK : s->len;
    return 1;
}

/* Whether a block of n elements from neuron k needs the parameters gathered (and what is derived from them)
   again, after a block of *n0 from neuron *k0: not when every parameter is one value (all_shared) or the
   block starts at the same neuron with the same length. Records k and n as the last block's. */
static inline int block_changed(int all_shared, int64_t k, int n, int64_t *k0, int *n0) {
    const int changed = n != *n0 || (!all_shared && k != *k0);
    *k0 = k;
    *n0 = n;
    return changed;
}

typedef void (*range_fn)(const void *args, sched_t *s);

/* Run fn on min(nthreads, blocks) threads, each taking blocks of [0, len) with next_block until none is left.
   With OpenMP, the threads are those of the OpenMP runtime already loaded by PyTorch (the same libgomp), so the
   kernels share PyTorch's thread pool instead of competing with it; without, they are pthreads started here. */
static int plan(sched_t *s, int64_t len, int nthreads) {
    s->nblk = (len + BLK - 1) / BLK;
    s->len = len;
    atomic_init(&s->next, 0);
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads > s->nblk) nthreads = (int)s->nblk;
    return nthreads < 1 ? 1 : nthreads;
}

#ifdef _OPENMP
#include <omp.h>
static void parallel_for(range_fn fn, const void *args, int64_t len, int nthreads) {
    sched_t s;
    nthreads = plan(&s, len, nthreads);
    if (nthreads <= 1) { fn(args, &s); return; }
    #pragma omp parallel num_threads(nthreads)
    fn(args, &s);
}
#else
typedef struct { range_fn fn; const void *args; sched_t *s; } job_t;

static void *run_job(void *p) { job_t *j = (job_t *)p; j->fn(j->args, j->s); return NULL; }

static void parallel_for(range_fn fn, const void *args, int64_t len, int nthreads) {
    sched_t s;
    nthreads = plan(&s, len, nthreads);
    if (nthreads <= 1) { fn(args, &s); return; }
    job_t jobs[MAX_THREADS]; pthread_t tid[MAX_THREADS]; int started[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) { jobs[i].fn = fn; jobs[i].args = args; jobs[i].s = &s; }
    for (int i = 1; i < nthreads; i++) started[i] = pthread_create(&tid[i], NULL, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);  /* blocks a thread that failed to start are taken by the others */
    for (int i = 1; i < nthreads; i++) if (started[i]) pthread_join(tid[i], NULL);
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
