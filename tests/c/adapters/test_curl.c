/* evloop/adapters/curl.h against a real HTTP server (nginx) on loopback:
 *   test_curl BACKEND PORT CLOSED_PORT
 * The server's root holds small.txt ("hello from nginx\n") and blob.bin (1 MiB, byte i is
 * (i * 7 + 3) & 0xff). Thousands of transfers run, 32 at a time, on kept-alive connections:
 * every body and status is checked; a missing file is a 404; a closed port fails to connect;
 * a transfer is removed half-way; the test ends with the fds it began with. */
#include <errno.h>
#include <stdint.h>

#include <evloop/adapters/curl.h>

#include "common.h"

#define TRANSFERS 3000
#define PARALLEL 32
#define BLOB (1 << 20)
#define SMALL_BODY "hello from nginx\n"

typedef enum { SMALL, BLOB_FILE, MISSING, REFUSED, ABANDONED } kind_t;

typedef struct {
    kind_t kind;
    size_t got;
    int mismatch;
    char small[64];
} transfer_t;

static CURLM *multi;
static int port, closed_port;
static int started, finished, blobs, missing, refused;
static evl_curl_t *glue;

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
    transfer_t *t = userp;
    size_t len = size * n;
    if (t->kind == BLOB_FILE) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)data[i] != (unsigned char)(((t->got + i) * 7 + 3) & 0xff)) t->mismatch = 1;
    } else if (t->got + len < sizeof t->small) {
        memcpy(t->small + t->got, data, len);
    } else {
        t->mismatch = 1;
    }
    t->got += len;
    return len;
}

static void start_transfer(kind_t kind) {
    transfer_t *t = calloc(1, sizeof *t);
    t->kind = kind;
    char url[128];
    const char *path = kind == SMALL ? "small.txt" : kind == BLOB_FILE ? "blob.bin" : kind == MISSING ? "missing" : "blob.bin";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", kind == REFUSED ? closed_port : port, path);
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    CHECK(curl_multi_add_handle(multi, easy) == CURLM_OK, "add_handle");
    started++;
}

static kind_t next_kind(int i) {
    if (i % 100 == 7) return BLOB_FILE;
    if (i % 250 == 11) return MISSING;
    return SMALL;
}

static void on_done(CURL *easy, CURLcode result, void *user_data) {
    transfer_t *t;
    long status = 0;
    CHECK(user_data == &glue, "user_data not passed through");
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    switch (t->kind) {
    case SMALL:
        CHECK(result == CURLE_OK && status == 200 && !t->mismatch && t->got == strlen(SMALL_BODY) &&
                  memcmp(t->small, SMALL_BODY, t->got) == 0,
              "small.txt: %s, status %ld, %zu bytes", curl_easy_strerror(result), status, t->got);
        break;
    case BLOB_FILE:
        CHECK(result == CURLE_OK && status == 200 && !t->mismatch && t->got == BLOB,
              "blob.bin: %s, status %ld, %zu bytes, mismatch %d", curl_easy_strerror(result), status,
              t->got, t->mismatch);
        blobs++;
        break;
    case MISSING:
        CHECK(result == CURLE_OK && status == 404, "missing: %s, status %ld", curl_easy_strerror(result),
              status);
        missing++;
        break;
    case REFUSED:
        CHECK(result == CURLE_COULDNT_CONNECT, "closed port: %s", curl_easy_strerror(result));
        refused++;
        break;
    case ABANDONED:
        fail("the transfer to be removed finished first: %s, %zu bytes", curl_easy_strerror(result), t->got);
    }
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    free(t);
    finished++;
    if (started < TRANSFERS) start_transfer(next_kind(started));
}

/* Removes a blob transfer once part of it has arrived: its socket must go quietly. After its
 * first chunk the transfer pauses, so it cannot finish before the timer removes it. */
static CURL *abandoned;
static size_t on_partial(char *data, size_t size, size_t n, void *userp) {
    (void)data;
    transfer_t *t = userp;
    if (t->got > 0) return CURL_WRITEFUNC_PAUSE;
    t->got += size * n;
    return size * n;
}
static void check_partial(evl_timer_t *timer, void *data) {
    transfer_t *t = data;
    if (t->got == 0) return; /* not yet: the timer repeats */
    curl_multi_remove_handle(multi, abandoned);
    curl_easy_cleanup(abandoned);
    abandoned = NULL;
    evl_close((evl_handle_t *)timer, NULL);
}

int main(int argc, char **argv) {
    test_name = "curl";
    answer_probe(argc, argv);
    if (argc != 4) fail("usage: test_curl uring|epoll PORT CLOSED_PORT");
    int backend = backend_from(argv[1]);
    port = atoi(argv[2]);
    closed_port = atoi(argv[3]);
    CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, "curl_global_init");
    int fds_before = open_fds();
    evl_loop_t *loop;
    CHECK(evl_loop_new(&loop, backend) == 0, "loop");
    evl_timer_t *watchdog = start_watchdog(loop, 120);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)PARALLEL);

    CHECK(evl_curl_new(NULL, multi, on_done, NULL, &glue) == -EINVAL, "NULL loop must be -EINVAL");
    CHECK(evl_curl_new(loop, multi, NULL, NULL, &glue) == -EINVAL, "NULL callback must be -EINVAL");
    CHECK(evl_curl_new(loop, multi, on_done, &glue, &glue) == 0, "evl_curl_new");

    start_transfer(REFUSED);
    for (int i = 0; i < PARALLEL; i++) start_transfer(next_kind(started));
    run_until_done(loop);
    CHECK(finished == TRANSFERS && refused == 1, "%d of %d transfers finished", finished, TRANSFERS);
    CHECK(blobs == TRANSFERS / 100 && missing > 0, "%d blobs, %d 404s", blobs, missing);

    /* A transfer removed half-way. */
    transfer_t partial = {.kind = ABANDONED};
    abandoned = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/blob.bin", port);
    curl_easy_setopt(abandoned, CURLOPT_URL, url);
    curl_easy_setopt(abandoned, CURLOPT_WRITEFUNCTION, on_partial);
    curl_easy_setopt(abandoned, CURLOPT_WRITEDATA, &partial);
    curl_easy_setopt(abandoned, CURLOPT_PRIVATE, &partial);
    curl_multi_add_handle(multi, abandoned);
    evl_timer_t *poke;
    CHECK(evl_timer_init(loop, &poke, &partial) == 0, "timer");
    CHECK(evl_timer_start(poke, check_partial, 1, 1) == 0, "timer start");
    run_until_done(loop);
    CHECK(abandoned == NULL && partial.got > 0 && partial.got < BLOB, "abandoned transfer: %zu bytes",
          partial.got);

    CHECK(evl_curl_free(glue) == 0, "evl_curl_free");
    curl_multi_cleanup(multi);
    finish_loop(loop, watchdog);
    CHECK(open_fds() == fds_before, "%d fds open at the end, %d at the start", open_fds(), fds_before);
    curl_global_cleanup();
    printf("curl on %s: %d transfers checked (%d of 1 MiB, %d 404s), refused, abandoned: ok\n", argv[1],
           finished, blobs, missing);
    return 0;
}
