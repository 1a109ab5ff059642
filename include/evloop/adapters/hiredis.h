/*
 * evloop/adapters/hiredis.h: drive a hiredis asynchronous connection (redisAsyncContext) from an
 * evloop loop, as hiredis' own adapters/libuv.h does for libuv.
 *
 *     redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", 6379);
 *     if (ac->err) ...;
 *     int rc = evl_redis_attach(loop, ac);      // 0, or a negative errno
 *     redisAsyncSetConnectCallback(ac, on_connect);
 *     redisAsyncCommand(ac, on_reply, privdata, "SET %s %s", key, value);
 *     evl_run(loop, EVL_RUN_DEFAULT);
 *
 * Header-only: it uses hiredis' event hooks (addRead/delRead/addWrite/delWrite/cleanup) and one
 * evl_poll_t per connection, so libevloop.so does not depend on hiredis. Build with
 * `pkg-config --cflags --libs evloop hiredis`.
 *
 * Life cycle: the watcher is closed by hiredis' cleanup hook, which hiredis calls when the
 * connection is freed (redisAsyncDisconnect, redisAsyncFree, or an error); its memory is freed by
 * the watcher's close callback, so the loop must run once more after that. A watcher that is
 * watching keeps the loop alive, one that is idle does not: evl_run(EVL_RUN_DEFAULT) returns once
 * every connection has disconnected.
 *
 * Not covered: hiredis 1.x's scheduleTimer hook (connect and command timeouts). hiredis 0.14, the
 * version this adapter is tested with, has no such hook; with 1.x a timeout set through
 * redisAsyncSetTimeout is not enforced by this adapter.
 */
#ifndef EVLOOP_ADAPTERS_HIREDIS_H
#define EVLOOP_ADAPTERS_HIREDIS_H

#include <errno.h>
#include <stdlib.h>

#include <evloop.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

typedef struct {
    /* NULL once hiredis has called cleanup: the connection is gone. */
    redisAsyncContext *context;
    evl_poll_t *poll;
    /* EVL_READABLE | EVL_WRITABLE, as hiredis last asked. */
    unsigned int events;
} evl_redis_events_t;

static void evl_redis__on_ready(evl_poll_t *poll, int status, unsigned int events, void *data) {
    evl_redis_events_t *e = (evl_redis_events_t *)data;
    (void)poll;
    /* A failed watch, an error or a hang-up: let hiredis' own read or write meet the socket's
     * error, which it reports to the connect or disconnect callback. */
    if (status < 0 || (events & (EVL_POLL_ERROR | EVL_DISCONNECT))) events |= e->events;
    if (e->context != NULL && (events & EVL_READABLE)) redisAsyncHandleRead(e->context);
    /* The read may have freed the connection (cleanup sets context to NULL). */
    if (e->context != NULL && (events & EVL_WRITABLE)) redisAsyncHandleWrite(e->context);
}

static void evl_redis__watch(evl_redis_events_t *e, unsigned int add, unsigned int remove) {
    unsigned int next = (e->events | add) & ~remove;
    if (next == e->events) return;
    e->events = next;
    /* Neither call can fail on a live watcher of an fd only this connection watches; a poll the
     * kernel refuses comes back through evl_redis__on_ready with status < 0. */
    if (next != 0)
        (void)evl_poll_start(e->poll, next, evl_redis__on_ready);
    else
        (void)evl_poll_stop(e->poll);
}

static void evl_redis__add_read(void *data) {
    evl_redis__watch((evl_redis_events_t *)data, EVL_READABLE, 0);
}

static void evl_redis__del_read(void *data) {
    evl_redis__watch((evl_redis_events_t *)data, 0, EVL_READABLE);
}

static void evl_redis__add_write(void *data) {
    evl_redis__watch((evl_redis_events_t *)data, EVL_WRITABLE, 0);
}

static void evl_redis__del_write(void *data) {
    evl_redis__watch((evl_redis_events_t *)data, 0, EVL_WRITABLE);
}

static void evl_redis__on_close(evl_handle_t *handle, void *data) {
    (void)handle;
    free(data);
}

static void evl_redis__cleanup(void *data) {
    evl_redis_events_t *e = (evl_redis_events_t *)data;
    e->context = NULL;
    (void)evl_close((evl_handle_t *)e->poll, evl_redis__on_close);
}

/*
 * Attaches `ac` to `loop`. Returns 0, -EINVAL for a NULL argument, -EEXIST if `ac` is already
 * attached to a loop (this one or any other library's), -ENOMEM, or evl_poll_init's error for
 * the connection's socket (-EBADF if the connection failed before it had one: check ac->err).
 */
static inline int evl_redis_attach(evl_loop_t *loop, redisAsyncContext *ac) {
    if (loop == NULL || ac == NULL) return -EINVAL;
    if (ac->ev.data != NULL) return -EEXIST;
    evl_redis_events_t *e = (evl_redis_events_t *)calloc(1, sizeof *e);
    if (e == NULL) return -ENOMEM;
    int rc = evl_poll_init(loop, &e->poll, ac->c.fd, e);
    if (rc < 0) {
        free(e);
        return rc;
    }
    e->context = ac;
    ac->ev.addRead = evl_redis__add_read;
    ac->ev.delRead = evl_redis__del_read;
    ac->ev.addWrite = evl_redis__add_write;
    ac->ev.delWrite = evl_redis__del_write;
    ac->ev.cleanup = evl_redis__cleanup;
    ac->ev.data = e;
    return 0;
}

#endif
