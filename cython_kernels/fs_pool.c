/* Implementation of fs_pool.h: threads, the team barrier and the OS's wait-on-address.
 *
 * The barrier is a counter and a generation (the sense-reversing barrier of Mellor-Crummey and Scott,
 * "Algorithms for scalable synchronization on shared-memory multiprocessors", 1991), as ggml_barrier
 * in llama.cpp's ggml/src/ggml-cpu/ggml-cpu.c, plus a sleep after a short spin. Workers wait for jobs
 * the same way, on a job generation.
 */
#include "fs_pool.h"

#include <limits.h>
#include <stdlib.h>

/* Pause instructions to spin before sleeping: some tens of microseconds. */
#define FS_SPIN 2000

#ifdef _MSC_VER
#define FS_THREAD_LOCAL __declspec(thread)
#else
#define FS_THREAD_LOCAL _Thread_local /* C11; also MinGW's GCC, which ignores __declspec(thread) */
#endif

/* ---- threads and sleeping, per OS ------------------------------------------------------------- */

#ifdef _WIN32
#include <windows.h>
#include <process.h>
typedef HANDLE fs_thread;
typedef SRWLOCK fs_lock;
static void lock_init(fs_lock *l) { InitializeSRWLock(l); }
static void lock_free(fs_lock *l) { (void)l; }
static void lock_take(fs_lock *l) { AcquireSRWLockExclusive(l); }
static void lock_drop(fs_lock *l) { ReleaseSRWLockExclusive(l); }
#else
#include <pthread.h>
typedef pthread_t fs_thread;
typedef pthread_mutex_t fs_lock;
static void lock_init(fs_lock *l) { pthread_mutex_init(l, NULL); }
static void lock_free(fs_lock *l) { pthread_mutex_destroy(l); }
static void lock_take(fs_lock *l) { pthread_mutex_lock(l); }
static void lock_drop(fs_lock *l) { pthread_mutex_unlock(l); }
#endif

/* wait_on(addr, val): sleep while *addr == val (may return early: callers loop). wake_all(addr): wake
 * every thread sleeping on addr. Callers change *addr before waking. */
#if defined(__linux__) && !defined(FS_WAIT_PORTABLE)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
static void wait_on(_Atomic unsigned *addr, unsigned val) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void wake_all(_Atomic unsigned *addr) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#elif defined(_WIN32) && !defined(FS_WAIT_PORTABLE)
/* WaitOnAddress / WakeByAddressAll: Windows 8 and later, in Synchronization.lib. */
#ifdef _MSC_VER
#pragma comment(lib, "synchronization.lib")
#endif
static void wait_on(_Atomic unsigned *addr, unsigned val) {
    WaitOnAddress((volatile VOID *)addr, &val, sizeof val, INFINITE);
}
static void wake_all(_Atomic unsigned *addr) { WakeByAddressAll((PVOID)addr); }
#else
/* A mutex and condition variable shared by every address (a one-slot "parking lot"): the waiter
 * re-reads *addr under the mutex and the waker takes the mutex after changing it, so no wake-up is
 * lost; a wake-up meant for another address is only a spurious one. */
#ifdef _WIN32
static SRWLOCK park_lock = SRWLOCK_INIT;
static CONDITION_VARIABLE park_cond = CONDITION_VARIABLE_INIT;
static void wait_on(_Atomic unsigned *addr, unsigned val) {
    AcquireSRWLockExclusive(&park_lock);
    while (atomic_load(addr) == val) SleepConditionVariableSRW(&park_cond, &park_lock, INFINITE, 0);
    ReleaseSRWLockExclusive(&park_lock);
}
static void wake_all(_Atomic unsigned *addr) {
    (void)addr;
    AcquireSRWLockExclusive(&park_lock);
    WakeAllConditionVariable(&park_cond);
    ReleaseSRWLockExclusive(&park_lock);
}
#else
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static void wait_on(_Atomic unsigned *addr, unsigned val) {
    pthread_mutex_lock(&park_lock);
    while (atomic_load(addr) == val) pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
}
static void wake_all(_Atomic unsigned *addr) {
    (void)addr;
    pthread_mutex_lock(&park_lock);
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
}
#endif
#endif

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("yield");
#elif defined(_MSC_VER)
    YieldProcessor();
#endif
}

/* Waits until *gen differs from `seen`: spin, then sleep, counting itself in *sleepers while asleep
 * so the thread that changes *gen knows whether a wake-up is needed. */
static void await_change(_Atomic unsigned *gen, _Atomic int *sleepers, unsigned seen) {
    for (int i = 0; i < FS_SPIN; i++) {
        if (atomic_load_explicit(gen, memory_order_acquire) != seen) return;
        cpu_relax();
    }
    /* seq_cst: either the changing thread sees sleepers > 0 and wakes us, or we see the new value */
    atomic_fetch_add(sleepers, 1);
    while (atomic_load(gen) == seen) wait_on(gen, seen);
    atomic_fetch_sub(sleepers, 1);
}

/* Changes *gen and wakes its sleepers, if any. */
static void bump(_Atomic unsigned *gen, _Atomic int *sleepers) {
    atomic_fetch_add(gen, 1u);
    if (atomic_load(sleepers) > 0) wake_all(gen);
}

/* ---- the team ---------------------------------------------------------------------------------- */

static FS_THREAD_LOCAL int tls_tid;

int fs_team_tid(void) { return tls_tid; }

void fs_team_init(fs_team *t, int n) {
    atomic_store(&t->arrived, 0);
    atomic_store(&t->gen, 0u);
    atomic_store(&t->sleepers, 0);
    atomic_store(&t->next, 0);
    t->n = n < 1 ? 1 : n;
}

void fs_team_sync(fs_team *t) {
    if (t->n <= 1) {
        atomic_store(&t->next, 0);
        return;
    }
    const unsigned gen = atomic_load(&t->gen);
    if (atomic_fetch_add(&t->arrived, 1) == t->n - 1) {
        /* the last to arrive: every member has finished the loop before, so the counter is free */
        atomic_store(&t->next, 0);
        atomic_store(&t->arrived, 0);
        bump(&t->gen, &t->sleepers);
        return;
    }
    await_change(&t->gen, &t->sleepers, gen);
}

void fs_team_range(const fs_team *t, int64_t n, int64_t *lo, int64_t *hi) {
    const int nth = t->n, tid = tls_tid;
    *lo = n * tid / nth;
    *hi = n * (tid + 1) / nth;
}

int64_t fs_team_next(fs_team *t) { return atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed); }

/* ---- the pool ---------------------------------------------------------------------------------- */

struct fs_pool {
    fs_team team;
    _Atomic unsigned job;   /* job generation: bumped to start a job (or to stop) */
    _Atomic int idle_sleepers;
    _Atomic int stop;
    fs_job_fn fn;           /* the current job, written before `job` is bumped */
    void *arg;
    fs_lock run_lock;       /* one job at a time */
    int n_workers;
    fs_thread *threads;
    struct worker_arg {
        fs_pool *pool;
        int tid;
    } *args;
};

static void worker_loop(fs_pool *p, int tid) {
    tls_tid = tid;
    unsigned seen = 0;
    for (;;) {
        await_change(&p->job, &p->idle_sleepers, seen);
        seen = atomic_load(&p->job);
        if (atomic_load(&p->stop)) return;
        p->fn(p->arg, &p->team);
        fs_team_sync(&p->team); /* the job's end: fs_pool_run returns after every member is here */
    }
}

#ifdef _WIN32
static unsigned __stdcall worker_main(void *a) {
    struct worker_arg *w = a;
    worker_loop(w->pool, w->tid);
    return 0;
}
static int thread_start(fs_thread *t, struct worker_arg *a) {
    *t = (HANDLE)_beginthreadex(NULL, 0, worker_main, a, 0, NULL);
    return *t != 0;
}
static void thread_join(fs_thread t) {
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
#else
static void *worker_main(void *a) {
    struct worker_arg *w = a;
    worker_loop(w->pool, w->tid);
    return NULL;
}
static int thread_start(fs_thread *t, struct worker_arg *a) { return pthread_create(t, NULL, worker_main, a) == 0; }
static void thread_join(fs_thread t) { pthread_join(t, NULL); }
#endif

fs_pool *fs_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    fs_pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    const int want = n_threads - 1;
    if (want > 0) {
        p->threads = calloc((size_t)want, sizeof *p->threads);
        p->args = calloc((size_t)want, sizeof *p->args);
        if (p->threads == NULL || p->args == NULL) {
            free(p->threads);
            free(p->args);
            free(p);
            return NULL;
        }
    }
    atomic_store(&p->job, 0u);
    atomic_store(&p->idle_sleepers, 0);
    atomic_store(&p->stop, 0);
    lock_init(&p->run_lock);
    int started = 0;
    for (; started < want; started++) {
        p->args[started].pool = p;
        p->args[started].tid = started + 1;
        if (!thread_start(&p->threads[started], &p->args[started])) break;
    }
    p->n_workers = started;
    /* the members the OS gave us; workers read the team only inside a job, which starts after this */
    fs_team_init(&p->team, started + 1);
    return p;
}

void fs_pool_free(fs_pool *p) {
    if (p == NULL) return;
    lock_take(&p->run_lock);
    atomic_store(&p->stop, 1);
    bump(&p->job, &p->idle_sleepers);
    lock_drop(&p->run_lock);
    for (int i = 0; i < p->n_workers; i++) thread_join(p->threads[i]);
    lock_free(&p->run_lock);
    free(p->threads);
    free(p->args);
    free(p);
}

int fs_pool_size(const fs_pool *p) { return p->team.n; }

void fs_pool_run(fs_pool *p, fs_job_fn fn, void *arg) {
    lock_take(&p->run_lock);
    const int outer = tls_tid;
    tls_tid = 0;
    p->fn = fn;
    p->arg = arg;
    if (p->n_workers > 0) bump(&p->job, &p->idle_sleepers); /* publishes fn and arg (seq_cst) */
    fn(arg, &p->team);
    fs_team_sync(&p->team);
    tls_tid = outer;
    lock_drop(&p->run_lock);
}
