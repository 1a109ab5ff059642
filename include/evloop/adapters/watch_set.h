/*
 * evloop/adapters/watch_set.h: what the libcurl and c-ares adapters share (included by them; not
 * for direct use). Both libraries name the sockets they want watched as they open and close them,
 * so each adapter keeps a set of fd watchers, one per socket, owned by its client object.
 *
 * The client object is freed when the last of its holders lets go: its owner (until the adapter's
 * free function), its timer and each watcher not yet closed, since a library may drop a socket,
 * or the owner free the client, from inside a callback that is reporting on one of them.
 */
#ifndef EVLOOP_ADAPTERS_WATCH_SET_H
#define EVLOOP_ADAPTERS_WATCH_SET_H

#include <stdlib.h>

#include <evloop.h>

typedef struct evl_watch evl_watch_t;

typedef struct {
    evl_loop_t *loop;
    /* The watchers of sockets the library has open. */
    evl_watch_t *head;
    /* The client object's holders (see above); it is freed with the last. */
    unsigned int refs;
    /* The client object this set is part of, freed with free(). */
    void *owner;
} evl_watch_set_t;

struct evl_watch {
    evl_watch_set_t *set;
    int fd;
    evl_poll_t *poll;
    evl_watch_t *prev, *next;
};

static inline void evl_watch_set_init(evl_watch_set_t *set, evl_loop_t *loop, void *owner) {
    set->loop = loop;
    set->head = NULL;
    set->refs = 1; /* the owner */
    set->owner = owner;
}

static inline void evl_watch_set_hold(evl_watch_set_t *set) {
    set->refs++;
}

static inline void evl_watch_set_release(evl_watch_set_t *set) {
    if (--set->refs == 0) free(set->owner);
}

static inline evl_watch_t *evl_watch_find(evl_watch_set_t *set, int fd) {
    evl_watch_t *w = set->head;
    while (w != NULL && w->fd != fd) w = w->next;
    return w;
}

/* A new watcher of `fd` in the set, or NULL if it cannot be made (out of memory, or an fd the
 * loop refuses). It holds the client until its close callback. */
static inline evl_watch_t *evl_watch_add(evl_watch_set_t *set, int fd) {
    evl_watch_t *w = (evl_watch_t *)calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    if (evl_poll_init(set->loop, &w->poll, fd, w) < 0) {
        free(w);
        return NULL;
    }
    w->set = set;
    w->fd = fd;
    w->next = set->head;
    if (set->head != NULL) set->head->prev = w;
    set->head = w;
    evl_watch_set_hold(set);
    return w;
}

static void evl_watch__closed(evl_handle_t *handle, void *data) {
    evl_watch_t *w = (evl_watch_t *)data;
    evl_watch_set_t *set = w->set;
    (void)handle;
    free(w);
    evl_watch_set_release(set);
}

/* Takes the watcher out of the set and closes it; its memory goes in the close callback, so one
 * that is reporting right now stays valid until its callback returns. */
static inline void evl_watch_remove(evl_watch_t *w) {
    evl_watch_set_t *set = w->set;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        set->head = w->next;
    if (w->next != NULL) w->next->prev = w->prev;
    (void)evl_close((evl_handle_t *)w->poll, evl_watch__closed);
}

#endif
