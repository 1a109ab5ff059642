/* libcurl's multi interface on evloop: fetches every URL at once and prints each status.
 *   http_get URL...
 * Build: cc http_get.c $(pkg-config --cflags --libs evloop libcurl) */
#include <stdio.h>

#include <evloop/adapters/curl.h>

static int failures;

static size_t count_bytes(char *data, size_t size, size_t n, void *total) {
    (void)data;
    *(size_t *)total += size * n;
    return size * n;
}

static void on_done(CURL *easy, CURLcode result, void *multi) {
    char *url;
    long status = 0;
    size_t *bytes;
    curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&bytes);
    if (result == CURLE_OK) {
        printf("%s: %ld, %zu bytes\n", url, status, *bytes);
    } else {
        printf("%s: %s\n", url, curl_easy_strerror(result));
        failures++;
    }
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: http_get URL...\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    evl_loop_t *loop;
    int rc = evl_loop_new(&loop, EVL_BACKEND_AUTO);
    if (rc < 0) {
        fprintf(stderr, "evl_loop_new: %s\n", evl_strerror(rc));
        return 1;
    }
    CURLM *multi = curl_multi_init();
    evl_curl_t *glue;
    if ((rc = evl_curl_new(loop, multi, on_done, multi, &glue)) < 0) {
        fprintf(stderr, "evl_curl_new: %s\n", evl_strerror(rc));
        return 1;
    }
    size_t bytes[argc];
    for (int i = 1; i < argc; i++) {
        bytes[i] = 0;
        CURL *easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, argv[i]);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, count_bytes);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &bytes[i]);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, &bytes[i]);
        curl_multi_add_handle(multi, easy);
    }
    evl_run(loop, EVL_RUN_DEFAULT); /* returns when every transfer is done */
    evl_curl_free(glue);
    curl_multi_cleanup(multi);
    evl_run(loop, EVL_RUN_DEFAULT); /* the glue's close callbacks */
    evl_loop_free(loop);
    curl_global_cleanup();
    return failures == 0 ? 0 : 1;
}
