/*
 * bare_echo: echo servers written straight on the kernel's readiness interfaces, in the style
 * the project's background articles describe, to show how each one's cost grows with the number
 * of connections it watches:
 *
 *   bare_echo PORT epoll    level-triggered epoll: the kernel keeps the interest set and
 *                           reports only ready descriptors (cost grows with ready work)
 *   bare_echo PORT poll     poll(2): the whole pollfd array goes to the kernel and is scanned
 *                           on every call (cost grows with every connection, idle or not)
 *   bare_echo PORT select   select(2): the same with fd_set bitmaps, limited to FD_SETSIZE
 *
 * Single-threaded, non-blocking, one recv and one send per readiness; listens on 127.0.0.1.
 * Runs until SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 20000

static volatile sig_atomic_t stop;
static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0) {
        perror("bind/listen");
        exit(1);
    }
    return fd;
}

/* Echoes what one recv gets; returns 0 when the connection is done (EOF or error). */
static int echo_once(int fd) {
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) {
                /* A large message can outgrow the socket's send buffer; the ping-pong peer is
                 * reading it, so wait here for room rather than keep a queue (small messages
                 * never get here). */
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                if (poll(&p, 1, 5000) <= 0) return 0;
                continue;
            }
            if (w <= 0) return 0;
            off += w;
        }
        return 1;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
}

static int accept_one(int lfd) {
    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= MAX_FDS) {
        close(c);
        return -1;
    }
    return c;
}

static void run_epoll(int lfd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[1024];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stop) {
        int n = epoll_wait(ep, evs, 1024, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept_one(lfd)) >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else if (!echo_once(fd)) {
                close(fd); /* closing removes it from the epoll set */
            }
        }
    }
}

static void run_poll(int lfd) {
    static struct pollfd fds[MAX_FDS];
    int n = 1;
    fds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    while (!stop) {
        if (poll(fds, (nfds_t)n, 1000) <= 0) continue;
        int count = n;
        for (int i = 0; i < count; i++) { /* every watched descriptor is looked at */
            if (!fds[i].revents) continue;
            if (fds[i].fd == lfd) {
                int c;
                while (n < MAX_FDS && (c = accept_one(lfd)) >= 0) fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            } else if (!echo_once(fds[i].fd)) {
                close(fds[i].fd);
                fds[i].fd = -1; /* poll ignores negative fds; compacted below */
            }
        }
        int j = 0;
        for (int i = 0; i < n; i++)
            if (fds[i].fd >= 0) fds[j++] = fds[i];
        n = j;
    }
}

static void run_select(int lfd) {
    static int conns[FD_SETSIZE];
    int n = 0;
    while (!stop) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(lfd, &rd);
        int maxfd = lfd;
        for (int i = 0; i < n; i++) { /* the set is rebuilt from every connection each time */
            FD_SET(conns[i], &rd);
            if (conns[i] > maxfd) maxfd = conns[i];
        }
        struct timeval tv = {.tv_sec = 1};
        if (select(maxfd + 1, &rd, NULL, NULL, &tv) <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (FD_ISSET(conns[i], &rd) && !echo_once(conns[i])) {
                close(conns[i]);
                conns[i--] = conns[--n];
            }
        }
        if (FD_ISSET(lfd, &rd)) {
            int c;
            while ((c = accept_one(lfd)) >= 0) {
                if (c >= FD_SETSIZE || n >= FD_SETSIZE) { /* select cannot watch it */
                    close(c);
                    continue;
                }
                conns[n++] = c;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT epoll|poll|select\n", argv[0]);
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_on(atoi(argv[1]));
    if (!strcmp(argv[2], "epoll")) run_epoll(lfd);
    else if (!strcmp(argv[2], "poll")) run_poll(lfd);
    else if (!strcmp(argv[2], "select")) run_select(lfd);
    else return 2;
    return 0;
}
