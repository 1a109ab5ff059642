/*
 * cat: prints files to stdout with evloop's file operations. Each file is opened, then read
 * in 64 KiB chunks at increasing offsets, and each chunk is written to stdout before the next
 * read starts; files are printed one after another. With io_uring every step is a ring
 * operation; with epoll it runs on the thread pool.
 *
 *   cat FILE...
 *
 * Exits 1 if any file could not be read (after printing the error), else 0.
 */
#include <evloop.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

struct cat {
    evl_loop_t *loop;
    char **files;
    int count, next, fd, failed;
    int64_t offset;
    char buf[64 * 1024];
};

static void open_next(struct cat *c);

static void on_closed(evl_loop_t *l, ssize_t result, void *data) {
    (void)l;
    (void)result;
    open_next(data);
}

static void on_read(evl_loop_t *l, ssize_t n, void *data) {
    struct cat *c = data;
    if (n > 0) {
        fwrite(c->buf, 1, (size_t)n, stdout);
        c->offset += n;
        evl_fs_read(l, c->fd, c->buf, sizeof c->buf, c->offset, on_read, c);
        return;
    }
    if (n < 0) {
        fprintf(stderr, "cat: %s: %s\n", c->files[c->next - 1], evl_strerror((int)n));
        c->failed = 1;
    }
    evl_fs_close(l, c->fd, on_closed, c);
}

static void on_open(evl_loop_t *l, ssize_t fd, void *data) {
    struct cat *c = data;
    if (fd < 0) {
        fprintf(stderr, "cat: %s: %s\n", c->files[c->next - 1], evl_strerror((int)fd));
        c->failed = 1;
        open_next(c);
        return;
    }
    c->fd = (int)fd;
    c->offset = 0;
    evl_fs_read(l, c->fd, c->buf, sizeof c->buf, 0, on_read, c);
}

static void open_next(struct cat *c) {
    if (c->next == c->count) return; /* nothing left in flight: evl_run returns */
    int r = evl_fs_open(c->loop, c->files[c->next++], O_RDONLY, 0, on_open, c);
    if (r < 0) {
        fprintf(stderr, "cat: %s: %s\n", c->files[c->next - 1], evl_strerror(r));
        c->failed = 1;
        open_next(c);
    }
}

int main(int argc, char **argv) {
    static struct cat c;
    if (argc < 2) {
        fprintf(stderr, "usage: cat FILE...\n");
        return 2;
    }
    if (evl_loop_new(&c.loop, EVL_BACKEND_AUTO) < 0) return 1;
    c.files = argv + 1;
    c.count = argc - 1;
    open_next(&c);
    evl_run(c.loop, EVL_RUN_DEFAULT);
    fflush(stdout);
    evl_loop_free(c.loop);
    return c.failed;
}
