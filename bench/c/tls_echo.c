/*
 * tls_echo: the floor under every TLS echo server in bench/python_tls.py. No Python and no event
 * loop library: one thread, level-triggered epoll, OpenSSL reading and writing the socket itself
 * (its socket BIO), the same libssl as Python's _ssl, set up as Python's
 * ssl.create_default_context(Purpose.CLIENT_AUTH) sets up a server context (release buffers,
 * moving write buffer, no compression).
 *
 *   tls_echo PORT CERTFILE KEYFILE
 *
 * Echoes every byte it decrypts on 127.0.0.1:PORT until SIGTERM. A connection whose peer closes,
 * fails its handshake or sends garbage is closed; the server goes on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
/* A peer that sends faster than it reads stops being read once this much waits for it. */
#define PENDING_LIMIT (256 * 1024)

struct conn {
    int fd;
    SSL *ssl;
    /* Decrypted bytes SSL_write has not taken yet (the socket was full). */
    unsigned char *pending;
    size_t pending_len;
    uint32_t events;
};

static int epfd;

static void die(const char *what) {
    fprintf(stderr, "tls_echo: %s: %s\n", what, strerror(errno));
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void drop(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Waits for the socket to take what is pending, and reads while little is pending. */
static void watch(struct conn *c) {
    uint32_t events = (c->pending_len > 0 ? EPOLLOUT : 0) | (c->pending_len < PENDING_LIMIT ? EPOLLIN : 0);
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* Writes what waits; returns 0 when all is written or it waits for the socket, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->pending_len > 0) {
        size_t written = 0;
        if (SSL_write_ex(c->ssl, c->pending, c->pending_len, &written) <= 0) {
            int err = SSL_get_error(c->ssl, 0);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                watch(c);
                return 0;
            }
            return -1;
        }
        memmove(c->pending, c->pending + written, c->pending_len - written);
        c->pending_len -= written;
    }
    free(c->pending);
    c->pending = NULL;
    watch(c);
    return 0;
}

/* Reads and echoes until OpenSSL wants the socket; -1 when the connection is over. */
static int serve(struct conn *c) {
    static unsigned char buf[READ_CHUNK];
    if (flush_pending(c) < 0)
        return -1;
    while (c->pending_len < PENDING_LIMIT) {
        size_t got = 0;
        if (SSL_read_ex(c->ssl, buf, sizeof buf, &got) <= 0) {
            int err = SSL_get_error(c->ssl, 0);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return 0;
            return -1;
        }
        if (c->pending_len > 0) {
            /* Keep order behind what is already waiting (at most PENDING_LIMIT + READ_CHUNK). */
            unsigned char *grown = realloc(c->pending, c->pending_len + got);
            if (!grown)
                return -1;
            c->pending = grown;
            memcpy(c->pending + c->pending_len, buf, got);
            c->pending_len += got;
            watch(c);
            continue;
        }
        size_t written = 0;
        if (SSL_write_ex(c->ssl, buf, got, &written) <= 0) {
            int err = SSL_get_error(c->ssl, 0);
            if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ)
                return -1;
            written = 0;
        }
        if (written < got) {
            c->pending = malloc(got - written);
            if (!c->pending)
                return -1;
            memcpy(c->pending, buf + written, got - written);
            c->pending_len = got - written;
            watch(c);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tls_echo PORT CERTFILE KEYFILE\n");
        return 2;
    }
    /* A peer that resets while its echo is written must not end the server. */
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        die("SSL_CTX_new");
    SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1)
        die("certificate");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0)
        die("listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    SSL *ssl = SSL_new(ctx);
                    if (!c || !ssl || SSL_set_fd(ssl, fd) != 1) {
                        SSL_free(ssl);
                        free(c);
                        close(fd);
                        continue;
                    }
                    SSL_set_accept_state(ssl);
                    c->fd = fd;
                    c->ssl = ssl;
                    c->events = EPOLLIN;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (serve(c) < 0) {
                ERR_clear_error();
                drop(c);
            }
        }
    }
}
