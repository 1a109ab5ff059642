/*
 * signals: signal watchers as loop callbacks.
 *
 *   signals        then: kill -HUP <pid>; kill -USR1 <pid>; Ctrl-C (or kill -TERM) to quit
 *
 * SIGHUP and SIGUSR1 are reported; SIGINT or SIGTERM closes every watcher, which ends the loop.
 * When the last watcher of a signal closes, the signal's previous disposition comes back.
 */
#include <evloop.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static evl_signal_t *watchers[4];
static const int signums[4] = {SIGHUP, SIGUSR1, SIGINT, SIGTERM};

static void on_signal(evl_signal_t *sig, int signum, void *user_data) {
    (void)sig;
    (void)user_data;
    if (signum == SIGINT || signum == SIGTERM) {
        printf("got %s: closing the watchers\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
        for (int i = 0; i < 4; i++) evl_close((evl_handle_t *)watchers[i], NULL);
        return;
    }
    printf("got %s\n", signum == SIGHUP ? "SIGHUP" : "SIGUSR1");
    fflush(stdout);
}

int main(void) {
    evl_loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) < 0) return 1;
    for (int i = 0; i < 4; i++) {
        evl_signal_init(loop, &watchers[i], NULL);
        evl_signal_start(watchers[i], on_signal, signums[i]);
    }
    printf("pid %d: send SIGHUP or SIGUSR1; SIGINT or SIGTERM quits\n", (int)getpid());
    fflush(stdout);
    evl_run(loop, EVL_RUN_DEFAULT);
    return evl_loop_free(loop) == 0 ? 0 : 1;
}
