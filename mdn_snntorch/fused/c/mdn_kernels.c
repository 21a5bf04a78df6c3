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

/* The blocks of one call over [0, len), laid out on rows of `row` elements (the neurons: element e is neuron
   e % row), so that no block runs over the end of a row unless it holds whole rows: a row of at least BLK
   elements is cut into per_row blocks of at most size = ceil(row / per_row) <= BLK; shorter rows go
   size / row whole rows to a block (size = row (BLK / row)). A block within one row reads each per-neuron
   parameter where it lies; a block of whole rows sees the same neurons from its start, so their values are
   gathered once. Block j is [r span + i size, min(.. + size, r span + span, len)) with r = j / per_row,
   i = j % per_row (span: the row, or the rows of one block). next is the first block not yet taken. */
typedef struct { _Atomic int64_t next; int64_t nblk, len, span, per_row, size; } sched_t;

/* Take the next block [*e0, *e1); 0 when none is left. Threads take blocks as they finish the previous one
   (dynamic scheduling), so a thread that shares its core with another process delays the call by at most the
   block it is working on, instead of holding up its fixed share of the work. Which thread runs a block never
   changes a result: every output is written per element (parameter sums: per element, then per neuron in a
   fixed order), so the results are the same for any number of threads. */
static inline int next_block(sched_t *s, int64_t *e0, int64_t *e1) {
    const int64_t j = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
    if (j >= s->nblk) return 0;
    const int64_t r0 = (j / s->per_row) * s->span, b = r0 + (j % s->per_row) * s->size, e = b + s->size;
    const int64_t stop = r0 + s->span < s->len ? r0 + s->span : s->len;
    *e0 = b;
    *e1 = e < stop ? e : stop;
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

/* call(und, sig, sums) with each of the three flags a constant 0 or 1, so that the backward's element loops are
   compiled once per combination: the undetached reset's term, the sigmoid's factor and the parameter sums cost
   nothing where they are off (a flag read at run time inside a vector loop turns into both branches computed and
   one selected). */
#define WITH_FLAGS(call, und, sig, sums)                                                                      \
    do {                                                                                                      \
        if (und) {                                                                                            \
            if (sig) { if (sums) call(1, 1, 1); else call(1, 1, 0); }                                         \
            else { if (sums) call(1, 0, 1); else call(1, 0, 0); }                                             \
        } else {                                                                                              \
            if (sig) { if (sums) call(0, 1, 1); else call(0, 1, 0); }                                         \
            else { if (sums) call(0, 0, 1); else call(0, 0, 0); }                                             \
        }                                                                                                     \
    } while (0)

/* call(cx, cv) with each flag a constant 0 or 1: the single step's forward loop compiled once per pair of counts
   asked for (the input's non-finite values, the membrane's), as WITH_FLAGS does for the backward. */
#define WITH_COUNTS(call, cx, cv)                                                                             \
    do {                                                                                                      \
        if (cx) { if (cv) call(1, 1); else call(1, 0); }                                                      \
        else { if (cv) call(0, 1); else call(0, 0); }                                                         \
    } while (0)

typedef void (*range_fn)(const void *args, sched_t *s);

/* Run fn on min(nthreads, blocks) threads, each taking blocks of [0, len) (on rows of `row` elements, see
   sched_t) with next_block until none is left. With OpenMP, the threads are those of the OpenMP runtime already
   loaded by PyTorch (the same libgomp), so the kernels share PyTorch's thread pool instead of competing with it;
   without, they are pthreads started here. */
static int plan(sched_t *s, int64_t len, int64_t row, int nthreads) {
    if (row < 1) row = 1;
    s->per_row = row < BLK ? 1 : (row + BLK - 1) / BLK;
    s->span = row < BLK ? (BLK / row) * row : row;
    s->size = row < BLK ? s->span : (row + s->per_row - 1) / s->per_row;
    s->nblk = (len / s->span) * s->per_row + (len % s->span + s->size - 1) / s->size;
    s->len = len;
    atomic_init(&s->next, 0);
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads > s->nblk) nthreads = (int)s->nblk;
    return nthreads < 1 ? 1 : nthreads;
}

#ifdef _OPENMP
#include <omp.h>
static void parallel_for(range_fn fn, const void *args, int64_t len, int64_t row, int nthreads) {
    sched_t s;
    nthreads = plan(&s, len, row, nthreads);
    if (nthreads <= 1) { fn(args, &s); return; }
    #pragma omp parallel num_threads(nthreads)
    fn(args, &s);
}
#else
typedef struct { range_fn fn; const void *args; sched_t *s; } job_t;

static void *run_job(void *p) { job_t *j = (job_t *)p; j->fn(j->args, j->s); return NULL; }

static void parallel_for(range_fn fn, const void *args, int64_t len, int64_t row, int nthreads) {
    sched_t s;
    nthreads = plan(&s, len, row, nthreads);
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
