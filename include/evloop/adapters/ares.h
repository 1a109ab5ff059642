/*
 * evloop/adapters/ares.h: asynchronous DNS look-ups with c-ares on an evloop loop, through its
 * socket-state callback and ares_process_fd(), as Node drives c-ares on libuv.
 *
 *     evl_ares_t *resolver;
 *     struct ares_options opts = {0};                  // any options, any mask
 *     int rc = evl_ares_new(loop, &opts, 0, &resolver); // 0 or a negative errno
 *     ares_gethostbyname(evl_ares_channel(resolver), "example.org", AF_INET, on_host, arg);
 *     evl_run(loop, EVL_RUN_DEFAULT);                  // on_host runs from the loop
 *     evl_ares_free(resolver);                         // pending look-ups end with ARES_EDESTRUCTION
 *
 * Header-only, so libevloop.so does not depend on c-ares: build with
 * `pkg-config --cflags --libs evloop libcares`. Call ares_library_init() first where your c-ares
 * needs it. One evl_poll_t per socket c-ares opens (it reports them through
 * ARES_OPT_SOCK_STATE_CB, which this glue sets; do not set your own) and one evl_timer_t for
 * the channel's time-outs and retries. The loop stays alive while a look-up is pending and not
 * after.
 */
#ifndef EVLOOP_ADAPTERS_ARES_H
#define EVLOOP_ADAPTERS_ARES_H

#include <errno.h>
#include <stdlib.h>
#include <sys/time.h>

#include <ares.h>
#include <evloop.h>
#include <evloop/adapters/watch_set.h>

typedef struct {
    /* The watchers of c-ares' sockets, and who holds this resolver (watch_set.h). */
    evl_watch_set_t watches;
    /* NULL once evl_ares_free() has destroyed it. */
    ares_channel channel;
    evl_timer_t *timer;
    /* Inside ares_process_fd(): a look-up's callback is running or may run. */
    unsigned int processing;
    /* evl_ares_free() was called; the channel is destroyed once c-ares has returned. */
    int freeing;
} evl_ares_t;

/* While sockets are open, the timer comes back at least this often: a query c-ares sends on a
 * socket that is already open tells the glue nothing, and its time-out must still be seen. */
#define EVL_ARES__RECHECK_MS 1000

static void evl_ares__on_timeout(evl_timer_t *timer, void *data);

/* Sets the timer to c-ares' next deadline. With no look-up pending (ares_timeout() says none)
 * the timer does not keep the loop alive. */
static void evl_ares__schedule(evl_ares_t *r) {
    struct timeval tv;
    if (r->channel == NULL || r->freeing) return;
    if (ares_timeout(r->channel, NULL, &tv) != NULL) {
        uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
        if (ms > EVL_ARES__RECHECK_MS) ms = EVL_ARES__RECHECK_MS;
        (void)evl_timer_start(r->timer, evl_ares__on_timeout, ms, 0);
        (void)evl_ref((evl_handle_t *)r->timer);
    } else if (r->watches.head != NULL) {
        (void)evl_timer_start(r->timer, evl_ares__on_timeout, EVL_ARES__RECHECK_MS, 0);
        (void)evl_unref((evl_handle_t *)r->timer);
    } else {
        (void)evl_timer_stop(r->timer);
    }
}

static void evl_ares__destroy(evl_ares_t *r);

/* One step of c-ares (ARES_SOCKET_BAD for a side with nothing to do), then the next deadline. The
 * resolver is held across the step: a look-up's callback may call evl_ares_free(), which c-ares
 * does not allow to destroy the channel from inside it, so the destruction waits until here. */
static void evl_ares__process(evl_ares_t *r, ares_socket_t readable, ares_socket_t writable) {
    if (r->channel == NULL || r->freeing) return;
    evl_watch_set_hold(&r->watches);
    r->processing++;
    ares_process_fd(r->channel, readable, writable);
    r->processing--;
    if (r->freeing && r->processing == 0)
        evl_ares__destroy(r);
    else
        evl_ares__schedule(r);
    evl_watch_set_release(&r->watches);
}

static void evl_ares__on_timeout(evl_timer_t *timer, void *data) {
    (void)timer;
    evl_ares__process((evl_ares_t *)data, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void evl_ares__on_ready(evl_poll_t *poll, int status, unsigned int events, void *data) {
    evl_watch_t *w = (evl_watch_t *)data;
    (void)poll;
    /* An error or hang-up: c-ares' own read meets the socket's error and fails over. */
    int bad = status < 0 || (events & (EVL_POLL_ERROR | EVL_DISCONNECT));
    ares_socket_t fd = w->fd;
    evl_ares__process((evl_ares_t *)w->set->owner, (bad || (events & EVL_READABLE)) ? fd : ARES_SOCKET_BAD,
                      (events & EVL_WRITABLE) ? fd : ARES_SOCKET_BAD);
}

/* ARES_OPT_SOCK_STATE_CB: c-ares opened, changed or (neither readable nor writable) is about to
 * close `fd`. A watcher that cannot be made leaves the socket unwatched: c-ares' time-out then
 * fails the look-up over to the next try. */
static void evl_ares__on_socket_state(void *data, ares_socket_t fd, int readable, int writable) {
    evl_ares_t *r = (evl_ares_t *)data;
    evl_watch_t *w = evl_watch_find(&r->watches, fd);
    if (!readable && !writable) {
        if (w != NULL) evl_watch_remove(w);
        return;
    }
    if (w == NULL && (w = evl_watch_add(&r->watches, fd)) == NULL) return;
    (void)evl_poll_start(w->poll, (readable ? EVL_READABLE : 0) | (writable ? EVL_WRITABLE : 0),
                         evl_ares__on_ready);
    evl_ares__schedule(r);
}

static void evl_ares__on_timer_closed(evl_handle_t *handle, void *data) {
    (void)handle;
    evl_watch_set_release(&((evl_ares_t *)data)->watches);
}

/* c-ares' status codes (ARES_E*) as negative errno values, for evl_ares_new(). */
static inline int evl_ares__errno(int status) {
    switch (status) {
    case ARES_ENOMEM: return -ENOMEM;
    case ARES_ENOTINITIALIZED: return -EAGAIN;
    default: return -EINVAL;
    }
}

/*
 * A c-ares channel driven by `loop`, made with ares_init_options(`options`, `optmask`) plus this
 * glue's socket-state callback. Returns 0 with the resolver in `*out`; -EINVAL for a NULL loop,
 * options or out, or options c-ares refuses (or that set ARES_OPT_SOCK_STATE_CB); -ENOMEM;
 * -EAGAIN when c-ares needs ares_library_init() first; or evl_timer_init's error.
 */
static inline int evl_ares_new(evl_loop_t *loop, const struct ares_options *options, int optmask,
                               evl_ares_t **out) {
    if (loop == NULL || options == NULL || out == NULL || (optmask & ARES_OPT_SOCK_STATE_CB))
        return -EINVAL;
    evl_ares_t *r = (evl_ares_t *)calloc(1, sizeof *r);
    if (r == NULL) return -ENOMEM;
    int rc = evl_timer_init(loop, &r->timer, r);
    if (rc < 0) {
        free(r);
        return rc;
    }
    evl_watch_set_init(&r->watches, loop, r);
    evl_watch_set_hold(&r->watches); /* the timer */
    struct ares_options opts = *options;
    opts.sock_state_cb = evl_ares__on_socket_state;
    opts.sock_state_cb_data = r;
    int status = ares_init_options(&r->channel, &opts, optmask | ARES_OPT_SOCK_STATE_CB);
    if (status != ARES_SUCCESS) {
        r->channel = NULL;
        (void)evl_close((evl_handle_t *)r->timer, evl_ares__on_timer_closed);
        evl_watch_set_release(&r->watches);
        return evl_ares__errno(status);
    }
    *out = r;
    return 0;
}

/* The channel to pass to ares_gethostbyname(), ares_getaddrinfo(), ares_query()...; NULL after
 * evl_ares_free() or for NULL. */
static inline ares_channel evl_ares_channel(evl_ares_t *r) {
    return r != NULL && !r->freeing ? r->channel : NULL;
}

/* Pending look-ups' callbacks run inside ares_destroy() with ARES_EDESTRUCTION; c-ares closes its
 * sockets there too, through the socket-state callback. */
static void evl_ares__destroy(evl_ares_t *r) {
    ares_destroy(r->channel);
    r->channel = NULL;
    while (r->watches.head != NULL) evl_watch_remove(r->watches.head);
    (void)evl_close((evl_handle_t *)r->timer, evl_ares__on_timer_closed);
    evl_watch_set_release(&r->watches);
}

/*
 * Destroys the channel (pending look-ups' callbacks run with ARES_EDESTRUCTION) and closes the
 * watchers and the timer; their close callbacks free the resolver, so run the loop once more.
 * From inside a look-up's callback, the channel is destroyed as soon as c-ares returns, so answers
 * it had already read in that step still complete normally. -EINVAL
 * for NULL or a resolver already being freed.
 */
static inline int evl_ares_free(evl_ares_t *r) {
    if (r == NULL || r->channel == NULL || r->freeing) return -EINVAL;
    r->freeing = 1;
    if (r->processing == 0) evl_ares__destroy(r);
    return 0;
}

#endif
