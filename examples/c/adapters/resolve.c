/* c-ares on evloop: looks up every name at once and prints its IPv4 addresses.
 *   resolve [--server IP:PORT] NAME...
 * Build: cc resolve.c $(pkg-config --cflags --libs evloop libcares) */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <evloop/adapters/ares.h>

static int failures;

static void on_host(void *name, int status, int timeouts, struct hostent *host) {
    (void)timeouts;
    if (status != ARES_SUCCESS) {
        printf("%s: %s\n", (const char *)name, ares_strerror(status));
        failures++;
        return;
    }
    printf("%s:", (const char *)name);
    for (char **a = host->h_addr_list; *a != NULL; a++) {
        char text[INET_ADDRSTRLEN];
        printf(" %s", inet_ntop(AF_INET, *a, text, sizeof text));
    }
    printf("\n");
}

int main(int argc, char **argv) {
    int first = 1;
    const char *server = NULL;
    if (argc > 2 && strcmp(argv[1], "--server") == 0) {
        server = argv[2];
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: resolve [--server IP:PORT] NAME...\n");
        return 2;
    }
    ares_library_init(ARES_LIB_INIT_ALL);
    evl_loop_t *loop;
    int rc = evl_loop_new(&loop, EVL_BACKEND_AUTO);
    if (rc < 0) {
        fprintf(stderr, "evl_loop_new: %s\n", evl_strerror(rc));
        return 1;
    }
    struct ares_options options;
    memset(&options, 0, sizeof options);
    evl_ares_t *resolver;
    if ((rc = evl_ares_new(loop, &options, 0, &resolver)) < 0) {
        fprintf(stderr, "evl_ares_new: %s\n", evl_strerror(rc));
        return 1;
    }
    if (server != NULL && ares_set_servers_ports_csv(evl_ares_channel(resolver), server) != ARES_SUCCESS) {
        fprintf(stderr, "bad server: %s\n", server);
        return 2;
    }
    for (int i = first; i < argc; i++)
        ares_gethostbyname(evl_ares_channel(resolver), argv[i], AF_INET, on_host, argv[i]);
    evl_run(loop, EVL_RUN_DEFAULT); /* returns when every look-up has ended */
    evl_ares_free(resolver);
    evl_run(loop, EVL_RUN_DEFAULT); /* the glue's close callbacks */
    evl_loop_free(loop);
    ares_library_cleanup();
    return failures == 0 ? 0 : 1;
}
