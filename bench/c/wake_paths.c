/*
 * wake_paths: the kernel's ways to wake a thread sleeping in io_uring_enter from another thread,
 * measured bare (no event loop), for issue 28's choice of evloop's cross-thread wake-up:
 *
 *   wake_paths MODE SECONDS
 *     eventfd   the sleeper's ring has a read of its eventfd armed; the waker write()s it
 *               (what evloop does today, and libuv's uv_async_send with epoll instead of a ring)
 *     msg_ring  the waker posts a completion into the sleeper's ring with IORING_OP_MSG_RING
 *               from a ring of its own (one io_uring_enter per wake-up)
 *     futex     the sleeper's ring has IORING_OP_FUTEX_WAIT armed on a word; the waker sets the
 *               word and calls futex(FUTEX_WAKE) (Linux 6.7+)
 *     epoll     the sleeper waits in epoll_wait on an eventfd; the waker write()s it (libuv's path)
 *
 * Two threads pinned to CPUs 0 and 1 bounce a wake-up back and forth for SECONDS; each side
 * sleeps in the kernel between wake-ups (DEFER_TASKRUN rings, as evloop's). Prints the round
 * trips' p50/p99/p999 in microseconds and the sleeper-side system calls per wake-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "threads.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#define FUTEX2_SIZE_U32_ 0x02
#define FUTEX2_PRIVATE_ 128
#define MAX_SAMPLES 2000000

enum mode { EVENTFD, MSG_RING, FUTEX, EPOLL };

struct side {
    struct io_uring ring;
    int efd, epfd;
    _Atomic uint32_t word; /* futex mode: 1 once woken */
    uint64_t sleeper_calls, wakes;
    int cpu;
};

static enum mode mode;
static struct side sides[2];
static _Atomic int stop;
static uint64_t *samples;
static size_t nsamples;
static double seconds;



static void arm(struct side *s) {
    static uint64_t sink[2];
    if (mode == MSG_RING) return; /* completions arrive unasked */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (mode == EVENTFD) {
        io_uring_prep_read(sqe, s->efd, &sink[s->cpu], 8, 0);
    } else if (mode == FUTEX) {
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_FUTEX_WAIT;
        sqe->fd = FUTEX2_SIZE_U32_ | FUTEX2_PRIVATE_;
        sqe->addr = (uint64_t)(uintptr_t)&s->word;
        sqe->off = 0; /* addr2: sleep while the word is 0 */
        sqe->addr3 = 0xffffffffu;
    }
    sqe->user_data = 1;
}

/* Sleeps until woken; returns 0, or -1 on an error. */
static int sleep_until_woken(struct side *s) {
    if (mode == EPOLL) {
        struct epoll_event ev;
        int n;
        do {
            n = epoll_wait(s->epfd, &ev, 1, 1000);
            s->sleeper_calls++;
            if (atomic_load(&stop)) return -1;
        } while (n == 0);
        uint64_t v;
        s->sleeper_calls++;
        s->wakes++;
        return read(s->efd, &v, 8) == 8 ? 0 : -1;
    }
    for (;;) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 1};
        int r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        s->sleeper_calls++;
        if (atomic_load(&stop)) return -1;
        if (r == -ETIME || r == -EINTR) continue;
        if (r < 0) {
            fprintf(stderr, "wait: %s\n", strerror(-r));
            return -1;
        }
        int res = cqe->res;
        uint64_t user_data = cqe->user_data;
        io_uring_cqe_seen(&s->ring, cqe);
        if (mode == FUTEX) {
            if (res < 0 && res != -EAGAIN) {
                fprintf(stderr, "futex wait: %s\n", strerror(-res));
                return -1;
            }
            if (atomic_load(&s->word) == 0) {
                /* A FUTEX_WAKE that arrived late: the waker set the word for an earlier round,
                   which this side saw at once (EAGAIN) and finished; its wake then ended this
                   round's wait. Not a wake-up: wait again. */
                arm(s);
                continue;
            }
            atomic_store(&s->word, 0);
        } else if (mode == EVENTFD && res != 8) {
            fprintf(stderr, "eventfd read: %d\n", res);
            return -1;
        } else if (mode == MSG_RING && (res != 1 || user_data != 1)) {
            fprintf(stderr, "msg_ring completion: res %d user_data %llu\n", res, (unsigned long long)user_data);
            return -1;
        }
        s->wakes++;
        arm(s);
        return 0;
    }
}

static void wake(struct side *self, struct side *peer) {
    if (mode == EVENTFD || mode == EPOLL) {
        uint64_t one = 1;
        if (write(peer->efd, &one, 8) != 8) abort();
    } else if (mode == MSG_RING) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);
        /* Posts a completion with res 1 (len) and user_data 1 (data) into the peer's ring. */
        io_uring_prep_msg_ring(sqe, peer->ring.ring_fd, 1, 1, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        sqe->user_data = 2;
        io_uring_submit(&self->ring);
    } else {
        atomic_store(&peer->word, 1);
        syscall(SYS_futex, &peer->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

static pthread_barrier_t ready;

static void *run(void *arg) {
    int me = (int)(intptr_t)arg;
    struct side *s = &sides[me], *peer = &sides[1 - me];
    pin(me);
    if (mode != EPOLL) {
        /* Made on the thread that uses it: SINGLE_ISSUER binds a ring to its creator, and
           DEFER_TASKRUN (evloop's setup) runs its completions' task work only when it waits. */
        struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
        int r = io_uring_queue_init_params(64, &s->ring, &p);
        if (r < 0) {
            fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
            exit(1);
        }
        arm(s);
    }
    pthread_barrier_wait(&ready);
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    if (me == 0) {
        while (!atomic_load(&stop)) {
            uint64_t t0 = now_ns();
            wake(s, peer);
            if (sleep_until_woken(s) < 0) break;
            if (nsamples < MAX_SAMPLES) samples[nsamples++] = now_ns() - t0;
            if (now_ns() > end) {
                atomic_store(&stop, 1);
                wake(s, peer);
            }
        }
    } else {
        while (sleep_until_woken(s) == 0 && !atomic_load(&stop)) wake(s, peer);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: wake_paths eventfd|msg_ring|futex|epoll SECONDS\n");
        return 2;
    }
    const char *names[] = {"eventfd", "msg_ring", "futex", "epoll"};
    for (mode = 0; mode < 4 && strcmp(argv[1], names[mode]); mode++) {
    }
    if (mode == 4) return 2;
    seconds = atof(argv[2]);
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    for (int i = 0; i < 2; i++) {
        struct side *s = &sides[i];
        s->cpu = i;
        s->efd = eventfd(0, EFD_CLOEXEC);
        if (mode == EPOLL) {
            s->epfd = epoll_create1(EPOLL_CLOEXEC);
            struct epoll_event ev = {.events = EPOLLIN};
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev);
            continue;
        }
    }
    pthread_t threads[2];
    pthread_barrier_init(&ready, NULL, 2);
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, run, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    if (nsamples == 0) return 1;
    qsort(samples, nsamples, sizeof *samples, cmp);
    double wakes = 2.0 * (double)nsamples;
    /* Every round trip woke each side once: anything else means a wake was lost or invented. */
    if (sides[0].wakes != nsamples || sides[1].wakes < nsamples) {
        fprintf(stderr, "wakes seen: %llu and %llu for %zu round trips\n", (unsigned long long)sides[0].wakes,
                (unsigned long long)sides[1].wakes, nsamples);
        return 1;
    }
    printf("RESULT mode=%s round_trips=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f sleeper_calls_per_wake=%.2f\n",
           names[mode], nsamples, samples[nsamples / 2] / 1e3, samples[nsamples * 99 / 100] / 1e3,
           samples[nsamples * 999 / 1000] / 1e3,
           (double)(sides[0].sleeper_calls + sides[1].sleeper_calls) / wakes);
    return 0;
}
