/*
 * File-read benchmark for libuv: the same work as bench/src/bin/files.rs (open, read to EOF in
 * 64 KiB reads, close; at most INFLIGHT files in flight; PASSES passes) with uv_fs_* on libuv's
 * thread pool.
 *
 *   uv_files DIR [PASSES] [INFLIGHT]
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

struct job {
    uv_fs_t req;
    uv_file fd;
    int64_t offset;
    char buf[64 * 1024];
};

static char **paths;
static size_t npaths, next_path, done;
static unsigned long long total_bytes;
static uv_loop_t *loop;

static void start_next(struct job *j);

static void on_close(uv_fs_t *req) {
    struct job *j = req->data;
    uv_fs_req_cleanup(req);
    done++;
    start_next(j);
}

static void on_read(uv_fs_t *req) {
    struct job *j = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n > 0) {
        total_bytes += (unsigned long long)n;
        j->offset += n;
        uv_buf_t b = uv_buf_init(j->buf, sizeof j->buf);
        uv_fs_read(loop, &j->req, j->fd, &b, 1, j->offset, on_read);
        return;
    }
    if (n < 0) {
        fprintf(stderr, "read: %s\n", uv_strerror((int)n));
        exit(1);
    }
    uv_fs_close(loop, &j->req, j->fd, on_close);
}

static void on_open(uv_fs_t *req) {
    struct job *j = req->data;
    if (req->result < 0) {
        fprintf(stderr, "open: %s\n", uv_strerror((int)req->result));
        exit(1);
    }
    j->fd = (uv_file)req->result;
    uv_fs_req_cleanup(req);
    j->offset = 0;
    uv_buf_t b = uv_buf_init(j->buf, sizeof j->buf);
    uv_fs_read(loop, &j->req, j->fd, &b, 1, 0, on_read);
}

static void start_next(struct job *j) {
    if (next_path == npaths) return;
    j->req.data = j;
    uv_fs_open(loop, &j->req, paths[next_path++], O_RDONLY, 0, on_open);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: uv_files DIR [PASSES] [INFLIGHT]\n");
        return 2;
    }
    int passes = argc > 2 ? atoi(argv[2]) : 3, inflight = argc > 3 ? atoi(argv[3]) : 256;
    DIR *d = opendir(argv[1]);
    if (!d) return 1;
    struct dirent *e;
    size_t cap = 1024;
    paths = malloc(cap * sizeof *paths);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (npaths == cap) paths = realloc(paths, (cap *= 2) * sizeof *paths);
        size_t len = strlen(argv[1]) + strlen(e->d_name) + 2;
        paths[npaths] = malloc(len);
        snprintf(paths[npaths++], len, "%s/%s", argv[1], e->d_name);
    }
    closedir(d);
    qsort(paths, npaths, sizeof *paths, by_name);
    loop = uv_default_loop();
    struct job *jobs = calloc((size_t)inflight, sizeof *jobs);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    uint64_t t0 = uv_hrtime();
    size_t files = 0;
    for (int p = 0; p < passes; p++) {
        next_path = done = 0;
        for (int i = 0; i < inflight; i++) start_next(&jobs[i]);
        uv_run(loop, UV_RUN_DEFAULT);
        if (done != npaths) return 1;
        files += done;
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    printf("RESULT impl=libuv-%s files=%zu bytes=%llu seconds=%.4f files_per_s=%.0f cpu_us_per_file=%.3f\n",
           uv_version_string(), files, total_bytes, secs, (double)files / secs, cpu / (double)files);
    return 0;
}
