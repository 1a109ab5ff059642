/*
 * Differential tests: random sequences of fd-watcher and timer operations run on evloop (each
 * backend) and on libuv, the oracle; every return code, every state and every callback's
 * outcome must agree.
 *
 *   diff_libuv [--seeds N] [--first S] [--minutes M] [--jobs J] [--verbose]
 *
 * A seed fixes the whole sequence. Each sequence alternates a batch of operations with a run
 * phase; what is compared:
 *   - the return code of every operation, mapped to errno names;
 *   - after each phase, per watcher: the bytes its callbacks read, whether they saw end of file,
 *     and the readiness kinds (readable, writable, disconnect: of those it asked for) reported;
 *     per timer: whether it is active, its repeat, and how many times it fired;
 *   - the order in which timers started in one batch fired.
 * Level-triggered readiness is the contract: a callback reads at most a few bytes, and each
 * phase runs enough iterations to drain what the peers wrote, so the totals do not depend on
 * how many iterations a backend takes to re-arm.
 *
 * Closes with "N passed, N failed"; a failure prints the seed and the first difference.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evloop.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define PAIRS 4
#define TIMERS 6
#define OPS_PER_BATCH 8
#define PHASES 6
#define CHUNK 7          /* bytes a readable callback reads at most */
#define MAX_WRITE 24     /* bytes a peer writes at most per operation */
#define PHASE_ITERATIONS 64
#define PHASE_HORIZON_MS 45

enum impl { IMPL_EVLOOP_EPOLL, IMPL_EVLOOP_URING, IMPL_LIBUV };
static const char *impl_names[] = {"evloop-epoll", "evloop-uring", "libuv"};

/* ---------- what a run records ---------- */

struct watcher_obs {
    long bytes;
    int eof;
    unsigned kinds; /* EVL_READABLE/WRITABLE/DISCONNECT seen, masked by what was asked */
};

struct timer_obs {
    int fires;
    int active;
    uint64_t repeat;
};

#define TRACE_MAX 4096
struct trace {
    long items[TRACE_MAX];
    int len;
    char what[TRACE_MAX][48];
};

static void record(struct trace *t, const char *what, long v) {
    if (t->len >= TRACE_MAX) return;
    snprintf(t->what[t->len], sizeof t->what[0], "%s", what);
    t->items[t->len++] = v;
}

/* ---------- random numbers ---------- */

static uint64_t rng;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static unsigned pick(unsigned n) {
    return (unsigned)(next_rand() % n);
}

/* ---------- one model, two loops ---------- */

struct pair {
    int fds[2]; /* [0] is watched, [1] is the peer the script writes from */
    int peer_open;
    unsigned asked; /* events the current watcher asked for */
    struct watcher_obs obs;
};

struct timer_slot {
    int exists;
    int action;   /* what its callback does (see on_timer_common) */
    int target;   /* timer the action applies to */
    struct timer_obs obs;
    int batch_order; /* 1 if started in the current batch (order is compared) */
};

struct world {
    enum impl impl;
    struct pair pairs[PAIRS];
    struct timer_slot timers[TIMERS];
    struct trace trace;
    /* evloop */
    evl_loop_t *el;
    evl_poll_t *ew[PAIRS];
    evl_timer_t *et[TIMERS];
    /* libuv */
    uv_loop_t ul;
    uv_poll_t *uw[PAIRS];
    uv_timer_t *ut[TIMERS];
    int phase_fires;
};

static struct world *current;

static void on_readiness(struct world *w, int i, int status, unsigned events) {
    struct pair *p = &w->pairs[i];
    if (status < 0) {
        record(&w->trace, "poll error", status);
        return;
    }
    p->obs.kinds |= events & p->asked & (EVL_READABLE | EVL_WRITABLE | EVL_DISCONNECT);
    if (events & EVL_READABLE) {
        char buf[CHUNK];
        ssize_t n = read(p->fds[0], buf, sizeof buf);
        if (n > 0) p->obs.bytes += n;
        if (n == 0) p->obs.eof = 1;
    }
}

/* Timer callback actions. */
enum { ACT_NONE, ACT_STOP_OTHER, ACT_CLOSE_SELF, ACT_AGAIN_SELF, ACT_RESTART_SELF, ACT_COUNT };

static int do_timer_start(struct world *w, int i, uint64_t timeout, uint64_t repeat);
static int do_timer_stop(struct world *w, int i);
static int do_timer_again(struct world *w, int i);
static int do_timer_close(struct world *w, int i);

static void on_timer_common(struct world *w, int i) {
    struct timer_slot *t = &w->timers[i];
    t->obs.fires++;
    if (t->batch_order) record(&w->trace, "fired", i);
    w->phase_fires++;
    switch (t->action) {
    case ACT_STOP_OTHER:
        if (w->timers[t->target].exists) record(&w->trace, "cb stop", do_timer_stop(w, t->target));
        break;
    case ACT_CLOSE_SELF:
        record(&w->trace, "cb close", do_timer_close(w, i));
        break;
    case ACT_AGAIN_SELF:
        record(&w->trace, "cb again", do_timer_again(w, i));
        break;
    case ACT_RESTART_SELF:
        /* Once, beyond the phase: it fires in a later phase, whatever the timing. */
        t->action = ACT_NONE;
        t->batch_order = 0;
        record(&w->trace, "cb restart", do_timer_start(w, i, 1000, 0));
        break;
    default:
        break;
    }
}

/* evloop side */
static void e_poll_cb(evl_poll_t *p, int status, unsigned events, void *data) {
    (void)p;
    on_readiness(current, (int)(intptr_t)data, status, events);
}
static void e_timer_cb(evl_timer_t *t, void *data) {
    (void)t;
    on_timer_common(current, (int)(intptr_t)data);
}
/* libuv side */
static void u_poll_cb(uv_poll_t *p, int status, int events) {
    unsigned ev = 0;
    if (events & UV_READABLE) ev |= EVL_READABLE;
    if (events & UV_WRITABLE) ev |= EVL_WRITABLE;
    if (events & UV_DISCONNECT) ev |= EVL_DISCONNECT;
    on_readiness(current, (int)(intptr_t)p->data, status, ev);
}
static void u_timer_cb(uv_timer_t *t) {
    on_timer_common(current, (int)(intptr_t)t->data);
}
static void u_free_on_close(uv_handle_t *h) {
    free(h);
}

/* Return codes normalised to negative errno on both sides (libuv's are negative errno too). */

static int do_poll_start(struct world *w, int i, unsigned events) {
    struct pair *p = &w->pairs[i];
    if (w->impl == IMPL_LIBUV) {
        if (!w->uw[i]) {
            w->uw[i] = calloc(1, sizeof *w->uw[i]);
            int r = uv_poll_init(&w->ul, w->uw[i], p->fds[0]);
            if (r) return r;
            w->uw[i]->data = (void *)(intptr_t)i;
        }
        int uev = (events & EVL_READABLE ? UV_READABLE : 0) | (events & EVL_WRITABLE ? UV_WRITABLE : 0) |
                  (events & EVL_DISCONNECT ? UV_DISCONNECT : 0);
        p->asked = events;
        return uv_poll_start(w->uw[i], uev, u_poll_cb);
    }
    if (!w->ew[i]) {
        int r = evl_poll_init(w->el, &w->ew[i], p->fds[0], (void *)(intptr_t)i);
        if (r) return r;
    }
    p->asked = events;
    return evl_poll_start(w->ew[i], events, e_poll_cb);
}

static int do_poll_stop(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) return w->uw[i] ? uv_poll_stop(w->uw[i]) : -EBADF;
    return w->ew[i] ? evl_poll_stop(w->ew[i]) : -EBADF;
}

static int do_poll_close(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) {
        if (!w->uw[i]) return -EBADF;
        uv_close((uv_handle_t *)w->uw[i], u_free_on_close);
        w->uw[i] = NULL;
        return 0;
    }
    if (!w->ew[i]) return -EBADF;
    int r = evl_close((evl_handle_t *)w->ew[i], NULL);
    w->ew[i] = NULL;
    return r;
}

static int do_timer_start(struct world *w, int i, uint64_t timeout, uint64_t repeat) {
    if (w->impl == IMPL_LIBUV) return uv_timer_start(w->ut[i], u_timer_cb, timeout, repeat);
    return evl_timer_start(w->et[i], e_timer_cb, timeout, repeat);
}
static int do_timer_stop(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) return uv_timer_stop(w->ut[i]);
    return evl_timer_stop(w->et[i]);
}
static int do_timer_again(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) return uv_timer_again(w->ut[i]);
    return evl_timer_again(w->et[i]);
}
static int do_timer_set_repeat(struct world *w, int i, uint64_t r) {
    if (w->impl == IMPL_LIBUV) {
        uv_timer_set_repeat(w->ut[i], r);
        return 0;
    }
    return evl_timer_set_repeat(w->et[i], r);
}
static int do_timer_close(struct world *w, int i) {
    w->timers[i].exists = 0;
    if (w->impl == IMPL_LIBUV) {
        uv_close((uv_handle_t *)w->ut[i], u_free_on_close);
        w->ut[i] = NULL;
        return 0;
    }
    int r = evl_close((evl_handle_t *)w->et[i], NULL);
    w->et[i] = NULL;
    return r;
}
static int timer_active(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) return uv_is_active((uv_handle_t *)w->ut[i]) != 0;
    return evl_is_active((evl_handle_t *)w->et[i]) == 1;
}
static uint64_t timer_repeat(struct world *w, int i) {
    if (w->impl == IMPL_LIBUV) return uv_timer_get_repeat(w->ut[i]);
    return evl_timer_get_repeat(w->et[i]);
}
static int do_timer_init(struct world *w, int i) {
    w->timers[i].exists = 1;
    memset(&w->timers[i].obs, 0, sizeof w->timers[i].obs);
    if (w->impl == IMPL_LIBUV) {
        w->ut[i] = calloc(1, sizeof *w->ut[i]);
        w->ut[i]->data = (void *)(intptr_t)i;
        return uv_timer_init(&w->ul, w->ut[i]);
    }
    return evl_timer_init(w->el, &w->et[i], (void *)(intptr_t)i);
}

static void run_nowait(struct world *w) {
    if (w->impl == IMPL_LIBUV) {
        uv_run(&w->ul, UV_RUN_NOWAIT);
    } else {
        evl_run(w->el, EVL_RUN_NOWAIT);
    }
}

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs a phase: enough iterations to drain what the peers wrote, and long enough (in time) for
 * every timer due within the horizon to fire. */
static void run_phase(struct world *w) {
    uint64_t until = wall_ms() + PHASE_HORIZON_MS;
    for (int i = 0; i < PHASE_ITERATIONS; i++) run_nowait(w);
    while (wall_ms() < until) {
        usleep(2000);
        run_nowait(w);
    }
    for (int i = 0; i < PHASE_ITERATIONS; i++) run_nowait(w);
}

static const uint64_t timeouts[] = {0, 1, 5, 10, 20, 30, 5000, (uint64_t)1 << 40, UINT64_MAX};
static const uint64_t repeats[] = {0, 0, 0, 100000, UINT64_MAX, (uint64_t)1 << 63};
static const unsigned event_sets[] = {EVL_READABLE,
                                      EVL_WRITABLE,
                                      EVL_READABLE | EVL_WRITABLE,
                                      EVL_READABLE | EVL_DISCONNECT,
                                      EVL_DISCONNECT,
                                      0};

static void snapshot(struct world *w) {
    char what[48];
    for (int i = 0; i < PAIRS; i++) {
        struct pair *p = &w->pairs[i];
        snprintf(what, sizeof what, "w%d bytes", i);
        record(&w->trace, what, p->obs.bytes);
        snprintf(what, sizeof what, "w%d eof", i);
        record(&w->trace, what, p->obs.eof);
        snprintf(what, sizeof what, "w%d kinds", i);
        record(&w->trace, what, (long)p->obs.kinds);
        memset(&p->obs, 0, sizeof p->obs);
    }
    for (int i = 0; i < TIMERS; i++) {
        struct timer_slot *t = &w->timers[i];
        snprintf(what, sizeof what, "t%d fires", i);
        record(&w->trace, what, t->exists || t->obs.fires ? t->obs.fires : -1);
        t->obs.fires = 0;
        if (!t->exists) continue;
        snprintf(what, sizeof what, "t%d active", i);
        record(&w->trace, what, timer_active(w, i));
        snprintf(what, sizeof what, "t%d repeat", i);
        record(&w->trace, what, (long)timer_repeat(w, i));
    }
}

/* One whole sequence for `seed` on implementation `impl`; 0 if the loop could not start. */
static int run_sequence(struct world *w, enum impl impl, uint64_t seed) {
    memset(w, 0, sizeof *w);
    w->impl = impl;
    current = w;
    if (impl == IMPL_LIBUV) {
        uv_loop_init(&w->ul);
    } else if (evl_loop_new(&w->el, impl == IMPL_EVLOOP_URING ? EVL_BACKEND_URING : EVL_BACKEND_EPOLL) != 0) {
        return 0;
    }
    for (int i = 0; i < PAIRS; i++) {
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, w->pairs[i].fds);
        w->pairs[i].peer_open = 1;
    }
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int phase = 0; phase < PHASES; phase++) {
        for (int i = 0; i < TIMERS; i++) w->timers[i].batch_order = 0;
        for (int op = 0; op < OPS_PER_BATCH; op++) {
            int i = (int)pick(PAIRS), ti = (int)pick(TIMERS);
            int has_watcher = impl == IMPL_LIBUV ? w->uw[i] != NULL : w->ew[i] != NULL;
            switch (pick(12)) {
            case 0:
            case 1: {
                char what[48];
                unsigned ev = event_sets[pick(6)];
                snprintf(what, sizeof what, "poll start w%d %u", i, ev);
                record(&w->trace, what, do_poll_start(w, i, ev));
                break;
            }
            case 2:
                record(&w->trace, "poll stop", has_watcher ? do_poll_stop(w, i) : 0);
                record(&w->trace, "  of", i);
                break;
            case 3:
                if (has_watcher) {
                    /* close, then watch the same fd again at once */
                    record(&w->trace, "poll close", do_poll_close(w, i));
                    record(&w->trace, "  of", i);
                    if (pick(2)) record(&w->trace, "poll rewatch", do_poll_start(w, i, event_sets[pick(5)]));
                }
                break;
            case 4:
            case 5: {
                struct pair *p = &w->pairs[i];
                if (p->peer_open) {
                    char buf[MAX_WRITE];
                    size_t n = 1 + pick(MAX_WRITE);
                    memset(buf, 'a' + i, n);
                    record(&w->trace, "peer write", (long)write(p->fds[1], buf, n));
                    record(&w->trace, "  to", i);
                }
                break;
            }
            case 6:
                if (w->pairs[i].peer_open && pick(3) == 0) {
                    close(w->pairs[i].fds[1]);
                    w->pairs[i].peer_open = 0;
                    record(&w->trace, "peer close", i);
                }
                break;
            case 7:
            case 8: {
                if (!w->timers[ti].exists) record(&w->trace, "timer init", do_timer_init(w, ti));
                struct timer_slot *t = &w->timers[ti];
                t->action = (int)pick(ACT_COUNT);
                t->target = (int)pick(TIMERS);
                uint64_t timeout = timeouts[pick(sizeof timeouts / sizeof timeouts[0])];
                uint64_t repeat = repeats[pick(sizeof repeats / sizeof repeats[0])];
                t->batch_order = repeat == 0 && t->action != ACT_AGAIN_SELF;
                record(&w->trace, "timer start", do_timer_start(w, ti, timeout, repeat));
                record(&w->trace, "  of", ti);
                break;
            }
            case 9:
                if (w->timers[ti].exists) {
                    switch (pick(3)) {
                    case 0:
                        record(&w->trace, "timer stop", do_timer_stop(w, ti));
                record(&w->trace, "  of", ti);
                        break;
                    case 1:
                        w->timers[ti].batch_order = 0;
                        record(&w->trace, "timer again", do_timer_again(w, ti));
                record(&w->trace, "  of", ti);
                        break;
                    default:
                        record(&w->trace, "timer set_repeat",
                               do_timer_set_repeat(w, ti, repeats[pick(sizeof repeats / sizeof repeats[0])]));
                    }
                }
                break;
            case 10:
                if (w->timers[ti].exists && pick(3) == 0) {
                    record(&w->trace, "timer close", do_timer_close(w, ti));
                    record(&w->trace, "  of", ti);
                }
                break;
            default:
                if (!w->timers[ti].exists) record(&w->trace, "timer init", do_timer_init(w, ti));
                break;
            }
        }
        run_phase(w);
        snapshot(w);
    }
    /* Tear down: close everything, run until nothing is left, free. */
    for (int i = 0; i < PAIRS; i++) {
        if (impl == IMPL_LIBUV ? w->uw[i] != NULL : w->ew[i] != NULL) do_poll_close(w, i);
    }
    for (int i = 0; i < TIMERS; i++)
        if (w->timers[i].exists) do_timer_close(w, i);
    if (impl == IMPL_LIBUV) {
        record(&w->trace, "run", uv_run(&w->ul, UV_RUN_DEFAULT));
        record(&w->trace, "loop close", uv_loop_close(&w->ul));
    } else {
        record(&w->trace, "run", evl_run(w->el, EVL_RUN_DEFAULT));
        record(&w->trace, "loop close", evl_loop_free(w->el));
    }
    for (int i = 0; i < PAIRS; i++) {
        close(w->pairs[i].fds[0]);
        if (w->pairs[i].peer_open) close(w->pairs[i].fds[1]);
    }
    return 1;
}

static int verbose_diff;

static int compare(const struct trace *a, const struct trace *b, uint64_t seed, const char *name) {
    int n = a->len < b->len ? a->len : b->len;
    for (int i = 0; i < n; i++) {
        if (a->items[i] != b->items[i] || strcmp(a->what[i], b->what[i]) != 0) {
            fprintf(stderr, "seed %llu: %s differs from libuv at step %d: %s = %ld, libuv %s = %ld\n",
                    (unsigned long long)seed, name, i, a->what[i], a->items[i], b->what[i], b->items[i]);
            if (verbose_diff)
                for (int j = i > 30 ? i - 30 : 0; j <= i; j++)
                    fprintf(stderr, "    %3d %-18s %ld\n", j, b->what[j], b->items[j]);
            return 0;
        }
    }
    if (a->len != b->len) {
        fprintf(stderr, "seed %llu: %s recorded %d steps, libuv %d\n", (unsigned long long)seed, name, a->len,
                b->len);
        return 0;
    }
    return 1;
}

/* Runs the seeds first, first + stride, ... (for `minutes`, or `count` of them); counts
 * agreements and differences. */
static void run_stripe(long first, long stride, long count, double minutes, int verbose, long out[2]) {
    static struct world oracle, subject;
    uint64_t start = wall_ms();
    int have_uring = 1;
    out[0] = out[1] = 0;
    for (long n = 0;; n++) {
        if (minutes > 0 ? wall_ms() - start > minutes * 60000 : n >= count) break;
        long s = first + n * stride;
        run_sequence(&oracle, IMPL_LIBUV, (uint64_t)s);
        int ok = 1;
        for (int impl = IMPL_EVLOOP_EPOLL; impl <= IMPL_EVLOOP_URING; impl++) {
            if (impl == IMPL_EVLOOP_URING && !have_uring) continue;
            if (!run_sequence(&subject, (enum impl)impl, (uint64_t)s)) {
                printf("%s unavailable: skipped\n", impl_names[impl]);
                have_uring = 0;
                continue;
            }
            ok &= compare(&subject.trace, &oracle.trace, (uint64_t)s, impl_names[impl]);
        }
        out[ok ? 0 : 1]++;
        if (verbose) printf("seed %ld: %s (%d steps)\n", s, ok ? "same" : "DIFFERENT", oracle.trace.len);
    }
}

int main(int argc, char **argv) {
    long seeds = 200, first = 1, jobs = 1;
    double minutes = 0;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc) seeds = atol(argv[++i]);
        else if (!strcmp(argv[i], "--first") && i + 1 < argc) first = atol(argv[++i]);
        else if (!strcmp(argv[i], "--minutes") && i + 1 < argc) minutes = atof(argv[++i]);
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atol(argv[++i]);
        else if (!strcmp(argv[i], "--verbose")) verbose = verbose_diff = 1;
        else {
            fprintf(stderr, "usage: %s [--seeds N] [--first S] [--minutes M] [--jobs J] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    if (jobs < 1 || jobs > 64) jobs = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t start = wall_ms();
    long totals[2] = {0, 0};
    /* Most of a sequence is spent waiting for timers: stripes of seeds run in parallel
     * processes, each reporting its counts through a pipe. */
    int pipes[64][2];
    pid_t pids[64];
    for (long j = 0; j < jobs; j++) {
        long count = seeds / jobs + (j < seeds % jobs);
        if (pipe(pipes[j]) != 0) return 2;
        pids[j] = fork();
        if (pids[j] == 0) {
            long out[2];
            run_stripe(first + j, jobs, count, minutes, verbose, out);
            if (write(pipes[j][1], out, sizeof out) != (ssize_t)sizeof out) _exit(3);
            _exit(0);
        }
        close(pipes[j][1]);
    }
    for (long j = 0; j < jobs; j++) {
        long out[2] = {0, 1};
        if (read(pipes[j][0], out, sizeof out) != (ssize_t)sizeof out) {
            fprintf(stderr, "worker %ld died\n", j);
            out[0] = 0;
            out[1] = 1;
        }
        close(pipes[j][0]);
        waitpid(pids[j], NULL, 0);
        totals[0] += out[0];
        totals[1] += out[1];
    }
    printf("diff_libuv: %ld seeds from %ld in %ld processes, %.1f s\n", totals[0] + totals[1], first, jobs,
           (wall_ms() - start) / 1000.0);
    printf("%ld passed, %ld failed\n", totals[0], totals[1]);
    return totals[1] ? 1 : 0;
}
