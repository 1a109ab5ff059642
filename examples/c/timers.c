/*
 * timers: one-shot and repeating timers, restart with evl_timer_again, and close.
 *
 *   timers
 *
 * Prints when each timer fires, then exits once no timer is left.
 */
#include <evloop.h>
#include <stdio.h>

struct ticker {
    const char *name;
    int remaining;
};

static void on_tick(evl_timer_t *timer, void *user_data) {
    struct ticker *t = user_data;
    evl_loop_t *loop = evl_handle_get_loop((evl_handle_t *)timer);
    printf("%6llu ms  %s\n", (unsigned long long)evl_now(loop), t->name);
    if (--t->remaining == 0) evl_close((evl_handle_t *)timer, NULL); /* closing from its own callback is fine */
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
    struct ticker fast = {"fast ticker (every 50 ms)", 6}, slow = {"slow ticker (every 120 ms)", 3};
    evl_timer_t *t_fast, *t_slow, *t_once;
    evl_timer_init(loop, &t_fast, &fast);
    evl_timer_start(t_fast, on_tick, 50, 50);
    evl_timer_init(loop, &t_slow, &slow);
    evl_timer_start(t_slow, on_tick, 120, 120);
    evl_timer_init(loop, &t_once, t_slow);
    evl_timer_start(t_once, on_once, 100, 0);
    evl_run(loop, EVL_RUN_DEFAULT); /* returns when every timer is closed */
    return evl_loop_free(loop) == 0 ? 0 : 1;
}
