/* Fireside's thread pool and the team barrier of a forward pass, without OpenMP.
 *
 * A pool holds n_threads - 1 worker threads for its whole life (one per ForwardContext); the thread
 * that calls fs_pool_run is member 0 of the team. fs_pool_run(pool, fn, arg) has every member call
 * fn(arg, team) once and returns when all have returned: llama.cpp's threadpool running one graph
 * (ggml/src/ggml-cpu/ggml-cpu.c, ggml_graph_compute_thread / ggml_barrier). Inside fn the members
 * run the same sequence of ops; each op takes its share (fs_team_range, or fs_team_next for dynamic
 * scheduling) and ends with fs_team_sync, a barrier.
 *
 * Waiting: a member that finds nothing to do spins a few tens of microseconds (the gaps between ops
 * are microseconds) and then sleeps, so a member whose partner was descheduled by a busy machine gives
 * its core away. Sleeping is a futex on Linux, WaitOnAddress on Windows (8 and later), and a mutex +
 * condition variable elsewhere (macOS, the BSDs; also on any OS when built with -DFS_WAIT_PORTABLE,
 * which tests/test_pool.py does to test it on Linux).
 *
 * Every function is safe to call without the GIL. Results of the ops never depend on the number of
 * threads: each output element is computed by the same code whichever member computes it.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The members of one running job. */
typedef struct fs_team {
    _Atomic int arrived;    /* members at the current barrier */
    _Atomic unsigned gen;   /* barrier generation: bumped by the last member to arrive */
    _Atomic int sleepers;   /* members asleep on gen */
    _Atomic int64_t next;   /* work-item counter of fs_team_next; reset to 0 by every barrier */
    int n;                  /* members */
    char pad[64];           /* keeps whatever follows off the barrier's cache line */
} fs_team;

/* A team of n members with no pool behind it (n = 1: the caller alone, as fs_matmul with one thread). */
void fs_team_init(fs_team *t, int n);

/* Barrier: returns once every member of the team has called it (the same number of times). Also
 * resets the fs_team_next counter, so each dynamically scheduled loop must end with one. */
void fs_team_sync(fs_team *t);

/* This thread's index in the team it is running in, 0 .. team->n - 1 (0 outside any job). */
int fs_team_tid(void);

/* [lo, hi) of n items for this member (contiguous static split, as OpenMP schedule(static)). */
void fs_team_range(const fs_team *t, int64_t n, int64_t *lo, int64_t *hi);

/* Dynamic scheduling: the next unclaimed item index of the current loop (0, 1, 2 ... across the
 * members); the loop ends when it returns >= its item count, and must be followed by fs_team_sync. */
int64_t fs_team_next(fs_team *t);

typedef struct fs_pool fs_pool;

/* The work of one job, called once by every member. */
typedef void (*fs_job_fn)(void *arg, fs_team *team);

/* A pool of n_threads members (the caller plus n_threads - 1 workers started now). If the OS refuses
 * a thread, the pool has fewer members (fs_pool_size); NULL only if memory runs out. n_threads < 1 is
 * taken as 1. */
fs_pool *fs_pool_new(int n_threads);

/* Stops and joins the workers and frees the pool. NULL is allowed. */
void fs_pool_free(fs_pool *p);

/* Members of the pool (1 .. n_threads). */
int fs_pool_size(const fs_pool *p);

/* Runs fn(arg, team) on every member and returns when all are done. One job at a time per pool:
 * concurrent callers are serialized. */
void fs_pool_run(fs_pool *p, fs_job_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* FS_POOL_H */
