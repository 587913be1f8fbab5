/* Stress check of cython_kernels/fs_pool.c, built and run by tests/test_pool.py (once with the OS's
 * wait-on-address, once with -DFS_WAIT_PORTABLE, the mutex + condition variable path of macOS).
 *
 * For 1..4 members and many jobs: every member runs every job exactly once (per-member counters);
 * fs_team_sync is a real barrier (each member writes its slot, syncs, then reads every other slot of
 * the same round); fs_team_next hands out each item of a loop exactly once and restarts at 0 after the
 * barrier; fs_team_range covers [0, n) without overlap; jobs separated by sleeps longer than the spin
 * exercise the sleep and wake-up path; two threads sharing one pool are serialized. Prints "ok" and
 * exits 0, or prints the first failure and exits 1. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_pool.h"

#define MAX_MEMBERS 8
#define ROUNDS 8
#define ITEMS 37

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { if (failures++ < 5) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } } while (0)

struct job {
    _Atomic long runs[MAX_MEMBERS];          /* jobs each member ran */
    _Atomic int slot[MAX_MEMBERS];           /* round number each member last wrote */
    _Atomic int claimed[ROUNDS][ITEMS];      /* fs_team_next claims per item */
    _Atomic int covered[ITEMS];              /* fs_team_range coverage */
    _Atomic int inside;                      /* members inside a job right now */
    long job_id;
    int expect_n;
};

static void job_fn(void *arg, fs_team *team) {
    struct job *j = arg;
    const int tid = fs_team_tid();
    CHECK(tid >= 0 && tid < team->n, "tid %d out of [0, %d)", tid, team->n);
    CHECK(team->n == j->expect_n, "team of %d, expected %d", team->n, j->expect_n);
    atomic_fetch_add(&j->inside, 1);
    atomic_fetch_add(&j->runs[tid], 1);
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(&j->slot[tid], (int)(j->job_id * ROUNDS + r));
        for (int64_t item; (item = fs_team_next(team)) < ITEMS;) atomic_fetch_add(&j->claimed[r][item], 1);
        fs_team_sync(team);
        for (int m = 0; m < team->n; m++)
            CHECK(atomic_load(&j->slot[m]) == (int)(j->job_id * ROUNDS + r),
                  "job %ld round %d: member %d saw member %d at %d after the barrier", j->job_id, r, tid, m,
                  atomic_load(&j->slot[m]));
        fs_team_sync(team); /* nobody writes the next round before everyone has read this one */
    }
    int64_t lo, hi;
    fs_team_range(team, ITEMS, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&j->covered[i], 1);
    fs_team_sync(team);
    CHECK(atomic_load(&j->inside) == team->n, "job %ld: %d members inside, expected %d", j->job_id,
          atomic_load(&j->inside), team->n);
}

static void check_job(struct job *j) {
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < ITEMS; i++)
            CHECK(atomic_load(&j->claimed[r][i]) == 1, "job %ld round %d: item %d claimed %d times", j->job_id, r, i,
                  atomic_load(&j->claimed[r][i]));
    for (int i = 0; i < ITEMS; i++)
        CHECK(atomic_load(&j->covered[i]) == 1, "job %ld: range item %d covered %d times", j->job_id, i,
              atomic_load(&j->covered[i]));
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void run_jobs(fs_pool *p, int n, long count, long first_id) {
    for (long k = 0; k < count; k++) {
        struct job j;
        memset(&j, 0, sizeof j);
        j.job_id = first_id + k;
        j.expect_n = n;
        fs_pool_run(p, job_fn, &j);
        check_job(&j);
        for (int m = 0; m < n; m++) CHECK(atomic_load(&j.runs[m]) == 1, "member %d ran a job %ld times", m, j.runs[m]);
        if (k % 50 == 0) sleep_us(2000); /* longer than the spin: the members go to sleep */
    }
}

struct sharer {
    fs_pool *p;
    int n;
    long first_id;
};

static void *share_main(void *a) {
    struct sharer *s = a;
    run_jobs(s->p, s->n, 100, s->first_id);
    return NULL;
}

int main(void) {
    for (int n = 1; n <= 4; n++) {
        fs_pool *p = fs_pool_new(n);
        CHECK(p != NULL && fs_pool_size(p) == n, "pool of %d has %d members", n, p ? fs_pool_size(p) : -1);
        run_jobs(p, n, 400, 0);
        /* two threads submitting to one pool: jobs are serialized, each still complete */
        pthread_t t1, t2;
        struct sharer s1 = {p, n, 100000}, s2 = {p, n, 200000};
        pthread_create(&t1, NULL, share_main, &s1);
        pthread_create(&t2, NULL, share_main, &s2);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        fs_pool_free(p);
    }
    fs_pool_free(NULL);
    fs_team alone;
    fs_team_init(&alone, 0);
    CHECK(alone.n == 1, "fs_team_init(0) gave %d members", alone.n);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    puts("ok");
    return 0;
}
