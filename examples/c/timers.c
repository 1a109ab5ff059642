/*
 * timers: one-shot and repeating timers, restart with evl_timer_again, and close; the slow
 * ticker lives in memory the program owns (evl_handle_size + evl_timer_init_in), freed in its
 * close callback.
 *
 *   timers
 *
 * Prints when each timer fires, then exits once no timer is left.
 */
#include <evloop.h>
#include <stdio.h>
#include <stdlib.h>

struct ticker {
    const char *name;
    int remaining;
    int in_caller_memory;
};

static void free_in_close(evl_handle_t *handle, void *user_data) {
    (void)user_data;
    free(handle); /* the library is done with caller memory once its close callback runs */
}

static void on_tick(evl_timer_t *timer, void *user_data) {
    struct ticker *t = user_data;
    evl_loop_t *loop = evl_handle_get_loop((evl_handle_t *)timer);
    printf("%6llu ms  %s\n", (unsigned long long)evl_now(loop), t->name);
    if (--t->remaining == 0) /* closing from its own callback is fine */
        evl_close((evl_handle_t *)timer, t->in_caller_memory ? free_in_close : NULL);
}

static void on_once(evl_timer_t *timer, void *user_data) {
    evl_timer_t *slow = user_data;
    printf("%6llu ms  one-shot: restarting the slow ticker's interval\n",
           (unsigned long long)evl_now(evl_handle_get_loop((evl_handle_t *)timer)));
    evl_timer_again(slow);
    evl_close((evl_handle_t *)timer, NULL);
}

int main(void) {
    evl_loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) < 0) return 1;
    struct ticker fast = {"fast ticker (every 50 ms)", 6, 0}, slow = {"slow ticker (every 120 ms)", 3, 1};
    evl_timer_t *t_fast, *t_once;
    evl_timer_init(loop, &t_fast, &fast);
    evl_timer_start(t_fast, on_tick, 50, 50);
    /* The size is asked at run time: it is not part of the ABI. */
    evl_timer_t *t_slow = malloc(evl_handle_size(EVL_HANDLE_TIMER));
    if (!t_slow || evl_timer_init_in(loop, t_slow, &slow) < 0) return 1;
    evl_timer_start(t_slow, on_tick, 120, 120);
    evl_timer_init(loop, &t_once, t_slow);
    evl_timer_start(t_once, on_once, 100, 0);
    evl_run(loop, EVL_RUN_DEFAULT); /* returns when every timer is closed */
    return evl_loop_free(loop) == 0 ? 0 : 1;
}
