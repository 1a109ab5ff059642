/* evloop/adapters/ares.h against a real DNS server (dnsmasq) on loopback:
 *   test_ares BACKEND PORT
 * The server answers hostN.evloop.test (N < 1000) with 10.0.N/250.N%250+1 from its hosts file
 * and NXDOMAIN for any other name under evloop.test. Thousands of look-ups run with up to 64 in
 * flight, and every address is checked; an unknown name is ARES_ENOTFOUND; a server that never
 * answers gives ARES_ETIMEOUT; evl_ares_free from inside a callback ends the rest with
 * ARES_EDESTRUCTION or their answer, each once; the test ends with the fds it began with. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evloop/adapters/ares.h>

#include "common.h"

#define NAMES 1000
#define LOOKUPS 5000
#define IN_FLIGHT 64

static evl_ares_t *resolver;
static int issued, answered, not_found;

static void lookup(int i);

static void on_host(void *arg, int status, int timeouts, struct hostent *host) {
    int i = (int)(intptr_t)arg;
    (void)timeouts;
    if (i < 0) {
        CHECK(status == ARES_ENOTFOUND, "unknown name: %s", ares_strerror(status));
        not_found++;
    } else {
        int n = i % NAMES;
        CHECK(status == ARES_SUCCESS, "host%d: %s", n, ares_strerror(status));
        char want[32], got[INET_ADDRSTRLEN];
        snprintf(want, sizeof want, "10.0.%d.%d", n / 250, n % 250 + 1);
        CHECK(host->h_addrtype == AF_INET && host->h_addr_list[0] != NULL, "host%d: no address", n);
        inet_ntop(AF_INET, host->h_addr_list[0], got, sizeof got);
        CHECK(strcmp(got, want) == 0, "host%d: %s, expected %s", n, got, want);
        answered++;
    }
    if (issued < LOOKUPS) lookup(issued);
}

static void lookup(int i) {
    char name[64];
    issued++;
    if (i % 500 == 499) {
        snprintf(name, sizeof name, "nobody%d.evloop.test", i);
        ares_gethostbyname(evl_ares_channel(resolver), name, AF_INET, on_host, (void *)(intptr_t)-1);
        return;
    }
    snprintf(name, sizeof name, "host%d.evloop.test", i % NAMES);
    ares_gethostbyname(evl_ares_channel(resolver), name, AF_INET, on_host, (void *)(intptr_t)i);
}

/* Options that send every query to 127.0.0.1:port, with no search domains and no hosts file. */
static evl_ares_t *resolver_for(evl_loop_t *loop, int port, int timeout_ms, int tries) {
    struct ares_options opts;
    memset(&opts, 0, sizeof opts);
    opts.flags = ARES_FLAG_NOSEARCH;
    opts.timeout = timeout_ms;
    opts.tries = tries;
    opts.lookups = (char *)"b";
    opts.ndomains = 0;
    evl_ares_t *r;
    int rc = evl_ares_new(loop, &opts,
                          ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS, &r);
    CHECK(rc == 0, "evl_ares_new: %s", evl_err_name(rc));
    char server[64];
    snprintf(server, sizeof server, "127.0.0.1:%d", port);
    CHECK(ares_set_servers_ports_csv(evl_ares_channel(r), server) == ARES_SUCCESS, "set servers");
    return r;
}

static int timed_out, destroyed;

static void on_silence(void *arg, int status, int timeouts, struct hostent *host) {
    (void)arg;
    (void)host;
    CHECK(status == ARES_ETIMEOUT && timeouts >= 1, "silent server: %s", ares_strerror(status));
    timed_out++;
}

static void on_freed(void *arg, int status, int timeouts, struct hostent *host) {
    evl_ares_t **r = arg;
    (void)timeouts;
    (void)host;
    if (*r != NULL) {
        /* The first answer frees the resolver from inside its callback. */
        CHECK(status == ARES_SUCCESS, "look-up before the free: %s", ares_strerror(status));
        CHECK(evl_ares_free(*r) == 0, "evl_ares_free from a callback");
        CHECK(evl_ares_free(*r) == -EINVAL, "a second evl_ares_free must be -EINVAL");
        *r = NULL;
    } else {
        /* An answer c-ares had already read in the same step still completes; the others end
         * with ARES_EDESTRUCTION when the channel is destroyed. Each ends once. */
        CHECK(status == ARES_EDESTRUCTION || status == ARES_SUCCESS, "look-up pending at the free: %s",
              ares_strerror(status));
        destroyed++;
    }
}

int main(int argc, char **argv) {
    test_name = "c-ares";
    answer_probe(argc, argv);
    if (argc != 3) fail("usage: test_ares uring|epoll PORT");
    int backend = backend_from(argv[1]);
    int port = atoi(argv[2]);
    CHECK(ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS, "ares_library_init");
    int fds_before = open_fds();
    evl_loop_t *loop;
    CHECK(evl_loop_new(&loop, backend) == 0, "loop");
    evl_timer_t *watchdog = start_watchdog(loop, 120);

    struct ares_options opts;
    memset(&opts, 0, sizeof opts);
    evl_ares_t *r;
    CHECK(evl_ares_new(NULL, &opts, 0, &r) == -EINVAL, "NULL loop must be -EINVAL");
    CHECK(evl_ares_new(loop, &opts, ARES_OPT_SOCK_STATE_CB, &r) == -EINVAL,
          "a socket-state callback of the caller's must be -EINVAL");

    resolver = resolver_for(loop, port, 2000, 3);
    for (int i = 0; i < IN_FLIGHT; i++) lookup(i);
    run_until_done(loop);
    CHECK(answered + not_found == LOOKUPS && not_found == LOOKUPS / 500,
          "%d answers, %d not found, of %d", answered, not_found, LOOKUPS);
    CHECK(evl_ares_free(resolver) == 0, "evl_ares_free");

    /* A server that never answers: a UDP socket nobody reads. */
    int silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    CHECK(bind(silent, (struct sockaddr *)&sin, sizeof sin) == 0, "bind");
    CHECK(getsockname(silent, (struct sockaddr *)&sin, &len) == 0, "getsockname");
    evl_ares_t *quiet = resolver_for(loop, ntohs(sin.sin_port), 300, 2);
    ares_gethostbyname(evl_ares_channel(quiet), "host1.evloop.test", AF_INET, on_silence, NULL);
    ares_gethostbyname(evl_ares_channel(quiet), "host2.evloop.test", AF_INET, on_silence, NULL);
    run_until_done(loop);
    CHECK(timed_out == 2, "%d of 2 look-ups timed out", timed_out);
    CHECK(evl_ares_free(quiet) == 0, "evl_ares_free");
    close(silent);

    /* Freed from inside a callback while other look-ups wait (on the silent server they would
     * wait for ever; these go to the real one and are freed by the first answer). */
    evl_ares_t *freed = resolver_for(loop, port, 2000, 3);
    evl_ares_t *handle = freed;
    ares_gethostbyname(evl_ares_channel(freed), "host3.evloop.test", AF_INET, on_freed, &handle);
    for (int i = 0; i < 5; i++)
        ares_gethostbyname(evl_ares_channel(freed), "host4.evloop.test", AF_INET, on_freed, &handle);
    run_until_done(loop);
    CHECK(handle == NULL && destroyed == 5, "free from a callback: %d look-ups ended", destroyed);

    finish_loop(loop, watchdog);
    CHECK(open_fds() == fds_before, "%d fds open at the end, %d at the start", open_fds(), fds_before);
    ares_library_cleanup();
    printf("c-ares on %s: %d look-ups checked (%d NXDOMAIN), time-out, free from a callback: ok\n",
           argv[1], LOOKUPS, not_found);
    return 0;
}
