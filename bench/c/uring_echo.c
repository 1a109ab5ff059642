/*
 * uring_echo: the ceiling for an io_uring echo server, written straight on liburing with
 * nothing a general loop carries: multishot accept, multishot receive into a provided-buffer
 * ring, each reply sent from the buffer it arrived in (the buffer goes back to the ring when
 * the send completes), one io_uring_enter per iteration (DEFER_TASKRUN).
 *
 *   uring_echo PORT          listens on 127.0.0.1; SIGTERM or SIGINT stops it
 *
 * A connection's sends are chained in order: a receive that arrives while an earlier send of
 * the same connection is in flight waits in a small per-connection FIFO, so bytes never
 * overtake each other (a ping-pong peer keeps it at one).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFERS 4096 /* provided buffers (a power of two) */
#define BUF_SIZE 16384
#define GROUP 0
#define MAX_FDS 65536
#define FIFO 64 /* receives waiting behind a send, per connection */

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

struct pending {
    uint16_t bid;
    uint32_t off, len;
};

struct conn {
    int open, sending;
    struct pending q[FIFO];
    unsigned head, count;
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static struct conn *conns;
static volatile sig_atomic_t stop;

static uint64_t tag(int op, int fd) { return ((uint64_t)op << 32) | (uint32_t)fd; }

static struct io_uring_sqe *sqe_get(void) {
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    if (!s) {
        io_uring_submit(&ring);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void recycle(uint16_t bid) {
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid, io_uring_buf_ring_mask(BUFFERS), 0);
    io_uring_buf_ring_advance(br, 1);
}

static void arm_recv(int fd) {
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = GROUP;
    io_uring_sqe_set_data64(s, tag(OP_RECV, fd));
}

static void send_front(int fd) {
    struct conn *c = &conns[fd];
    struct pending *p = &c->q[c->head];
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_send(s, fd, bufs + (size_t)p->bid * BUF_SIZE + p->off, p->len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, tag(OP_SEND, fd));
    c->sending = 1;
}

/* Not open and nothing in flight: the queued buffers go back and the fd closes. */
static void release(int fd) {
    struct conn *c = &conns[fd];
    for (unsigned i = 0; i < c->count; i++) recycle(c->q[(c->head + i) % FIFO].bid);
    c->count = 0;
    close(fd);
}

static void drop_conn(int fd) {
    struct conn *c = &conns[fd];
    if (!c->open) return;
    c->open = 0;
    if (!c->sending) release(fd);
}

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 7000;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    params.cq_entries = 16384;
    params.flags |= IORING_SETUP_CQSIZE;
    if (io_uring_queue_init_params(4096, &ring, &params) < 0) {
        perror("io_uring_queue_init");
        return 1;
    }
    if (posix_memalign((void **)&br, 4096, BUFFERS * sizeof(struct io_uring_buf)) != 0) return 1;
    bufs = malloc((size_t)BUFFERS * BUF_SIZE);
    conns = calloc(MAX_FDS, sizeof *conns);
    if (!bufs || !conns) return 1;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = BUFFERS, .bgid = GROUP};
    if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) {
        perror("io_uring_register_buf_ring");
        return 1;
    }
    for (int i = 0; i < BUFFERS; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BUFFERS), i);
    io_uring_buf_ring_advance(br, BUFFERS);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("listen");
        return 1;
    }
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, tag(OP_ACCEPT, lfd));

    while (!stop) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000};
        struct io_uring_cqe *cqe;
        int r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        if (r < 0 && r != -ETIME && r != -EINTR) {
            fprintf(stderr, "wait: %s\n", strerror(-r));
            return 1;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t d = io_uring_cqe_get_data64(cqe);
            int op = (int)(d >> 32), fd = (int)(uint32_t)d, res = cqe->res;
            int more = cqe->flags & IORING_CQE_F_MORE;
            if (op == OP_ACCEPT) {
                if (res >= 0 && res < MAX_FDS) {
                    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[res] = (struct conn){.open = 1};
                    arm_recv(res);
                } else if (res >= 0) {
                    close(res);
                }
                if (!more) {
                    s = sqe_get();
                    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
                    io_uring_sqe_set_data64(s, tag(OP_ACCEPT, lfd));
                }
            } else if (op == OP_RECV) {
                struct conn *c = &conns[fd];
                if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
                    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                    if (!c->open || c->count == FIFO) {
                        recycle(bid);
                        drop_conn(fd);
                    } else {
                        c->q[(c->head + c->count++) % FIFO] = (struct pending){bid, 0, (uint32_t)res};
                        if (!c->sending) send_front(fd);
                    }
                    if (!more && c->open) arm_recv(fd);
                } else if (res == -ENOBUFS && c->open) {
                    arm_recv(fd);
                } else if (!more) {
                    drop_conn(fd);
                }
            } else if (op == OP_SEND) {
                struct conn *c = &conns[fd];
                c->sending = 0;
                struct pending *p = &c->q[c->head];
                if (res > 0 && (uint32_t)res < p->len && c->open) {
                    p->off += (uint32_t)res;
                    p->len -= (uint32_t)res;
                    send_front(fd);
                } else {
                    recycle(p->bid);
                    c->head = (c->head + 1) % FIFO;
                    c->count--;
                    if (!c->open) {
                        release(fd); /* closed while this send was in flight */
                    } else if (res < 0) {
                        drop_conn(fd);
                    } else if (c->count > 0) {
                        send_front(fd);
                    }
                }
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    io_uring_queue_exit(&ring);
    return 0;
}
