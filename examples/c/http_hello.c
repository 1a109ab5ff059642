/*
 * http_hello: a minimal HTTP/1.1 keep-alive responder that wrk can drive.
 *
 *   http_hello [PORT]          (default 8080; Ctrl-C or SIGTERM stops it)
 *   wrk -t1 -c100 -d5s http://127.0.0.1:8080/
 *
 * Answers every request ("...\r\n\r\n") with a fixed 200 response; pipelined requests get one
 * response each. A connection sending more than 8 KiB without finishing a request is closed.
 */
#include <arpa/inet.h>
#include <evloop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER 8192

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    "Hello, world!";

struct conn {
    char pending[MAX_HEADER]; /* the start of a request split across reads */
    size_t len;
};

/* Counts complete requests in `buf` (header terminators), carrying a partial one over. */
static int count_requests(struct conn *c, const char *buf, size_t n) {
    int requests = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->len == MAX_HEADER) return -1;
        c->pending[c->len++] = buf[i];
        if (c->len >= 4 && memcmp(c->pending + c->len - 4, "\r\n\r\n", 4) == 0) {
            requests++;
            c->len = 0;
        }
    }
    return requests;
}

static void on_closed(evl_handle_t *h, void *user_data) {
    (void)h;
    free(user_data);
}

static void on_read(evl_stream_t *s, ssize_t nread, const char *buf, void *user_data) {
    struct conn *c = user_data;
    int requests = nread > 0 ? count_requests(c, buf, (size_t)nread) : -1;
    if (requests < 0) {
        evl_close((evl_handle_t *)s, on_closed);
        return;
    }
    for (int i = 0; i < requests; i++) {
        evl_buf_t b = {RESPONSE, sizeof RESPONSE - 1};
        if (evl_write(s, &b, 1, NULL, NULL) < 0) {
            evl_close((evl_handle_t *)s, on_closed);
            return;
        }
    }
}

static void on_connection(evl_stream_t *listener, evl_stream_t *conn, int status, void *user_data) {
    (void)listener;
    (void)user_data;
    if (status < 0) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        evl_close((evl_handle_t *)conn, NULL);
        return;
    }
    evl_handle_set_data((evl_handle_t *)conn, c);
    evl_tcp_nodelay(conn, 1);
    evl_read_start(conn, on_read);
}

static void on_signal(evl_signal_t *sig, int signum, void *user_data) {
    (void)sig;
    (void)signum;
    evl_stop((evl_loop_t *)user_data);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    evl_loop_t *loop;
    if (evl_loop_new(&loop, EVL_BACKEND_AUTO) < 0) return 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    evl_stream_t *server;
    int r = evl_tcp_bind(loop, &server, (struct sockaddr *)&addr, sizeof addr, 0, NULL);
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
    printf("http_hello on http://127.0.0.1:%d/ (%s backend)\n", port, evl_backend_name(loop));
    fflush(stdout);
    evl_run(loop, EVL_RUN_DEFAULT);
    return 0;
}
