/*
 * spawn: runs a command with its stdout connected to a pipe, counts the lines and bytes it
 * prints, and reports how it ended. SIGINT and SIGTERM are passed on to the child.
 *
 *   spawn COMMAND [ARG...]        e.g.  spawn ls -l /
 *
 * Exits with the child's exit code (128 + the signal if a signal ended it).
 */
#include <evloop.h>
#include <signal.h>
#include <stdio.h>

struct run {
    evl_process_t *child;
    evl_signal_t *sigint, *sigterm;
    unsigned long long bytes, lines;
    int code;
};

static void on_output(evl_stream_t *s, ssize_t n, const char *data, void *user_data) {
    struct run *r = user_data;
    if (n < 0) { /* EVL_EOF or an error: the child closed its end */
        evl_close((evl_handle_t *)s, NULL);
        return;
    }
    r->bytes += (unsigned long long)n;
    for (ssize_t i = 0; i < n; i++) r->lines += data[i] == '\n';
}

static void on_exit_(evl_process_t *p, int64_t status, int signum, void *user_data) {
    struct run *r = user_data;
    r->code = signum ? 128 + signum : (int)status;
    if (signum)
        fprintf(stderr, "spawn: pid %d killed by signal %d\n", evl_process_pid(p), signum);
    else
        fprintf(stderr, "spawn: pid %d exited with %lld\n", evl_process_pid(p), (long long)status);
    evl_close((evl_handle_t *)p, NULL);
    evl_close((evl_handle_t *)r->sigint, NULL);
    evl_close((evl_handle_t *)r->sigterm, NULL);
}

static void on_signal(evl_signal_t *s, int signum, void *user_data) {
    (void)s;
    evl_process_kill(((struct run *)user_data)->child, signum);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: spawn COMMAND [ARG...]\n");
        return 2;
    }
    evl_loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) < 0) return 1;
    struct run r = {0};
    evl_process_options_t opts = {0};
    opts.file = argv[1];
    opts.args = (const char *const *)(argv + 1);
    opts.stdio[0] = EVL_STDIO_IGNORE;
    opts.stdio[1] = EVL_STDIO_PIPE;
    opts.stdio[2] = EVL_STDIO_INHERIT;
    evl_stream_t *pipes[3];
    int err = evl_spawn(loop, &r.child, &opts, on_exit_, pipes, &r);
    if (err < 0) {
        fprintf(stderr, "spawn: %s: %s\n", argv[1], evl_strerror(err));
        evl_loop_free(loop);
        return 127;
    }
    evl_handle_set_data((evl_handle_t *)pipes[1], &r);
    evl_read_start(pipes[1], on_output);
    evl_signal_init(loop, &r.sigint, &r);
    evl_signal_start(r.sigint, on_signal, SIGINT);
    evl_signal_init(loop, &r.sigterm, &r);
    evl_signal_start(r.sigterm, on_signal, SIGTERM);
    evl_run(loop, EVL_RUN_DEFAULT);
    printf("%llu lines, %llu bytes\n", r.lines, r.bytes);
    evl_loop_free(loop);
    return r.code;
}
