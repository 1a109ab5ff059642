/*
 * echo_server: echoes everything it receives.
 *
 *   echo_server [PORT]          (default 7000; Ctrl-C or SIGTERM stops it)
 *
 * Shows the usual shape of an evloop server: bind + listen, one read callback per connection
 * that writes back what it got, and signal watchers that stop the loop.
 */
#include <arpa/inet.h>
#include <evloop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_read(evl_stream_t *conn, ssize_t nread, const char *buf, void *user_data) {
    (void)user_data;
    if (nread > 0) {
        /* The read buffer is lent for this call only; evl_write copies what it cannot send now. */
        evl_buf_t reply = {buf, (size_t)nread};
        if (evl_write(conn, &reply, 1, NULL, NULL) < 0) evl_close((evl_handle_t *)conn, NULL);
    } else {
        /* EVL_EOF or an error such as -ECONNRESET: the connection is over. */
        evl_close((evl_handle_t *)conn, NULL);
    }
}

static void on_connection(evl_stream_t *listener, evl_stream_t *conn, int status, void *user_data) {
    (void)listener;
    (void)user_data;
    if (status < 0) return; /* e.g. -EMFILE: the listener keeps going */
    evl_tcp_nodelay(conn, 1);
    evl_read_start(conn, on_read);
}

static void on_signal(evl_signal_t *sig, int signum, void *user_data) {
    (void)sig;
    (void)signum;
    evl_stop((evl_loop_t *)user_data);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 7000;
    evl_loop_t *loop;
    int r = evl_loop_new(&loop, EVL_BACKEND_AUTO);
    if (r < 0) {
        fprintf(stderr, "evl_loop_new: %s\n", evl_strerror(r));
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_stream_t *server;
    r = evl_tcp_bind(loop, &server, (struct sockaddr *)&addr, sizeof addr, 0, NULL);
    if (r == 0) r = evl_listen(server, 1024, on_connection);
    if (r < 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, evl_strerror(r));
        return 1;
    }
    evl_signal_t *sigint, *sigterm;
    evl_signal_init(loop, &sigint, loop);
    evl_signal_start(sigint, on_signal, SIGINT);
    evl_signal_init(loop, &sigterm, loop);
    evl_signal_start(sigterm, on_signal, SIGTERM);
    printf("echo server on 127.0.0.1:%d (%s backend)\n", port, evl_backend_name(loop));
    fflush(stdout);
    evl_run(loop, EVL_RUN_DEFAULT);
    /* Stopped: close the listener and the watchers and let their close callbacks run; open
     * connections end with the process. */
    evl_close((evl_handle_t *)server, NULL);
    evl_close((evl_handle_t *)sigint, NULL);
    evl_close((evl_handle_t *)sigterm, NULL);
    evl_run(loop, EVL_RUN_NOWAIT);
    return 0;
}
