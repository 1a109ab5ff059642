/*
 * evloop/adapters/curl.h: run libcurl's multi interface on an evloop loop, through its socket API
 * (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION and curl_multi_socket_action), the way
 * libcurl's multi-uv example runs it on libuv.
 *
 *     CURLM *multi = curl_multi_init();
 *     evl_curl_t *glue;
 *     int rc = evl_curl_new(loop, multi, on_done, my_data, &glue);   // 0 or a negative errno
 *     curl_multi_add_handle(multi, easy);          // as many as you like, at any time
 *     evl_run(loop, EVL_RUN_DEFAULT);              // on_done(easy, result, my_data) per transfer
 *     evl_curl_free(glue);                         // then curl_multi_cleanup(multi)
 *
 * on_done runs once per finished transfer, from the loop. It may remove the easy handle from the
 * multi handle, clean it up, or add new transfers.
 *
 * Header-only, so libevloop.so does not depend on libcurl: build with
 * `pkg-config --cflags --libs evloop libcurl`. One evl_poll_t per socket libcurl asks to watch,
 * made on its first request and closed when libcurl says CURL_POLL_REMOVE (libcurl does so before
 * it closes a socket), and one evl_timer_t for libcurl's timeout. The loop stays alive while a
 * transfer is in progress and not after.
 */
#ifndef EVLOOP_ADAPTERS_CURL_H
#define EVLOOP_ADAPTERS_CURL_H

#include <errno.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <evloop.h>
#include <evloop/adapters/watch_set.h>

/* Receives a finished transfer: its easy handle and libcurl's result for it. */
typedef void (*evl_curl_done_cb)(CURL *easy, CURLcode result, void *user_data);

typedef struct {
    /* The watchers of libcurl's sockets, and who holds this glue (watch_set.h). */
    evl_watch_set_t watches;
    /* NULL once evl_curl_free() has detached the glue. */
    CURLM *multi;
    evl_timer_t *timer;
    evl_curl_done_cb done;
    void *user_data;
} evl_curl_t;

/* Hands each finished transfer to the owner. The message is copied first: libcurl invalidates it
 * when the owner removes the easy handle. */
static void evl_curl__report_done(evl_curl_t *g) {
    CURLMsg *msg;
    int left;
    while (g->multi != NULL && (msg = curl_multi_info_read(g->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        g->done(easy, result, g->user_data);
    }
}

/* One step of libcurl on `fd` (or its timeout, CURL_SOCKET_TIMEOUT), then its finished transfers.
 * The glue is held across the step: a done callback may call evl_curl_free(). */
static void evl_curl__act(evl_curl_t *g, curl_socket_t fd, int flags) {
    int running;
    if (g->multi == NULL) return;
    evl_watch_set_hold(&g->watches);
    curl_multi_socket_action(g->multi, fd, flags, &running);
    evl_curl__report_done(g);
    evl_watch_set_release(&g->watches);
}

static void evl_curl__on_ready(evl_poll_t *poll, int status, unsigned int events, void *data) {
    evl_watch_t *w = (evl_watch_t *)data;
    int flags = 0;
    (void)poll;
    if (status < 0 || (events & EVL_POLL_ERROR)) flags |= CURL_CSELECT_ERR;
    if (events & (EVL_READABLE | EVL_DISCONNECT)) flags |= CURL_CSELECT_IN;
    if (events & EVL_WRITABLE) flags |= CURL_CSELECT_OUT;
    evl_curl__act((evl_curl_t *)w->set->owner, w->fd, flags);
}

static void evl_curl__on_timeout(evl_timer_t *timer, void *data) {
    (void)timer;
    evl_curl__act((evl_curl_t *)data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION. Returning -1 makes libcurl fail the transfer using the socket. */
static int evl_curl__on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    evl_curl_t *g = (evl_curl_t *)userp;
    evl_watch_t *w = (evl_watch_t *)socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            curl_multi_assign(g->multi, fd, NULL);
            evl_watch_remove(w);
        }
        return 0;
    }
    if (w == NULL) {
        if ((w = evl_watch_add(&g->watches, fd)) == NULL) return -1;
        curl_multi_assign(g->multi, fd, w);
    }
    unsigned int events = ((what & CURL_POLL_IN) ? EVL_READABLE : 0) |
                          ((what & CURL_POLL_OUT) ? EVL_WRITABLE : 0);
    return evl_poll_start(w->poll, events, evl_curl__on_ready) < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible", which a 0 ms timer
 * gives on the next iteration (libcurl must not be re-entered from inside this callback). */
static int evl_curl__on_timer(CURLM *multi, long timeout_ms, void *userp) {
    evl_curl_t *g = (evl_curl_t *)userp;
    (void)multi;
    if (timeout_ms < 0) return evl_timer_stop(g->timer) < 0 ? -1 : 0;
    return evl_timer_start(g->timer, evl_curl__on_timeout, (uint64_t)timeout_ms, 0) < 0 ? -1 : 0;
}

static void evl_curl__on_timer_closed(evl_handle_t *handle, void *data) {
    (void)handle;
    evl_watch_set_release(&((evl_curl_t *)data)->watches);
}

/*
 * Drives `multi` from `loop`: `done(easy, result, user_data)` runs for each finished transfer.
 * Returns 0 with the glue in `*out`, -EINVAL for a NULL argument or a multi handle that refuses
 * the socket options, -ENOMEM, or evl_timer_init's error. One glue per multi handle: a second
 * replaces the first's callbacks.
 */
static inline int evl_curl_new(evl_loop_t *loop, CURLM *multi, evl_curl_done_cb done, void *user_data,
                               evl_curl_t **out) {
    if (loop == NULL || multi == NULL || done == NULL || out == NULL) return -EINVAL;
    evl_curl_t *g = (evl_curl_t *)calloc(1, sizeof *g);
    if (g == NULL) return -ENOMEM;
    int rc = evl_timer_init(loop, &g->timer, g);
    if (rc < 0) {
        free(g);
        return rc;
    }
    evl_watch_set_init(&g->watches, loop, g);
    evl_watch_set_hold(&g->watches); /* the timer */
    g->multi = multi;
    g->done = done;
    g->user_data = user_data;
    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, evl_curl__on_socket) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, g) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, evl_curl__on_timer) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERDATA, g) != CURLM_OK) {
        g->multi = NULL;
        (void)evl_close((evl_handle_t *)g->timer, evl_curl__on_timer_closed);
        evl_watch_set_release(&g->watches);
        return -EINVAL;
    }
    *out = g;
    return 0;
}

/*
 * Detaches the glue from its multi handle and closes its watchers and timer; their close
 * callbacks free the glue, so run the loop once more. Transfers still in the multi handle stop
 * making progress: remove them (or call curl_multi_cleanup) afterwards. -EINVAL for NULL.
 */
static inline int evl_curl_free(evl_curl_t *g) {
    if (g == NULL || g->multi == NULL) return -EINVAL;
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, NULL);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, NULL);
    while (g->watches.head != NULL) {
        curl_multi_assign(g->multi, g->watches.head->fd, NULL);
        evl_watch_remove(g->watches.head);
    }
    g->multi = NULL;
    (void)evl_close((evl_handle_t *)g->timer, evl_curl__on_timer_closed);
    evl_watch_set_release(&g->watches);
    return 0;
}

#endif
