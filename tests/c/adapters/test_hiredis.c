/* evloop/adapters/hiredis.h against a real redis-server on loopback:
 *   test_hiredis BACKEND PORT CLOSED_PORT
 * Several connections pipeline thousands of commands and check every reply, one value is large
 * enough to need many reads and writes, a QUIT lets the server end a connection, a refused
 * connection reports its error, and the test ends with the fds it began with. */
#include <errno.h>
#include <stdint.h>

#include <evloop/adapters/hiredis.h>
#include "common.h"

#define CONNECTIONS 4
#define ROUNDS 2500 /* per connection: SET, GET and INCR each, so 30,000 commands in all */
#define BIG (1 << 20)

typedef struct {
    int id;
    long next_incr;
    int replies;
    int connected;
    int disconnected;
    int disconnect_status;
} conn_t;

static char *big_value;
static int big_checked;

static void on_connect(const redisAsyncContext *ac, int status) {
    conn_t *c = ac->data;
    CHECK(status == REDIS_OK, "connection %d: connect: %s", c->id, ac->errstr);
    c->connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    conn_t *c = ac->data;
    c->disconnected = 1;
    c->disconnect_status = status;
}

static void on_set(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    conn_t *c = ac->data;
    (void)priv;
    CHECK(reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0,
          "connection %d: SET reply", c->id);
    c->replies++;
}

static void on_get(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    conn_t *c = ac->data;
    long i = (long)(intptr_t)priv;
    char want[64];
    snprintf(want, sizeof want, "value-%d-%ld", c->id, i);
    CHECK(reply != NULL && reply->type == REDIS_REPLY_STRING && strcmp(reply->str, want) == 0,
          "connection %d: GET %ld gave %s", c->id, i, reply && reply->str ? reply->str : "(none)");
    c->replies++;
}

static void on_incr(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    conn_t *c = ac->data;
    (void)priv;
    c->next_incr++;
    CHECK(reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == c->next_incr,
          "connection %d: INCR gave %lld, expected %ld", c->id, reply ? reply->integer : -1LL,
          c->next_incr);
    c->replies++;
}

static void on_big(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    (void)priv;
    (void)ac;
    CHECK(reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len == BIG &&
              memcmp(reply->str, big_value, BIG) == 0,
          "the 1 MiB value came back different");
    big_checked++;
}

/* The last reply of a connection: it disconnects from inside its own callback. */
static void on_last(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    (void)priv;
    CHECK(reply != NULL && reply->type == REDIS_REPLY_INTEGER, "DEL reply");
    redisAsyncDisconnect(ac);
}

static void on_quit(redisAsyncContext *ac, void *r, void *priv) {
    redisReply *reply = r;
    (void)ac;
    (void)priv;
    CHECK(reply != NULL && reply->type == REDIS_REPLY_STATUS, "QUIT reply");
}

static void on_refused(const redisAsyncContext *ac, int status) {
    int *seen = ac->data;
    CHECK(status == REDIS_ERR, "a connection to a closed port succeeded");
    *seen = 1;
}

int main(int argc, char **argv) {
    test_name = "hiredis";
    answer_probe(argc, argv);
    if (argc != 4) fail("usage: test_hiredis uring|epoll PORT CLOSED_PORT");
    int backend = backend_from(argv[1]);
    int port = atoi(argv[2]), closed_port = atoi(argv[3]);
    int fds_before = open_fds();
    evl_loop_t *loop;
    CHECK(evl_loop_new(&loop, backend) == 0, "loop");
    evl_timer_t *watchdog = start_watchdog(loop, 120);

    CHECK(evl_redis_attach(NULL, NULL) == -EINVAL, "attach(NULL) must be -EINVAL");

    big_value = malloc(BIG);
    for (int i = 0; i < BIG; i++) big_value[i] = (char)('a' + (i * 7) % 26);

    conn_t conns[CONNECTIONS];
    memset(conns, 0, sizeof conns);
    for (int c = 0; c < CONNECTIONS; c++) {
        redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
        CHECK(ac != NULL && ac->err == 0, "redisAsyncConnect: %s", ac ? ac->errstr : "NULL");
        conns[c].id = c;
        ac->data = &conns[c];
        CHECK(evl_redis_attach(loop, ac) == 0, "attach");
        CHECK(evl_redis_attach(loop, ac) == -EEXIST, "a second attach must be -EEXIST");
        redisAsyncSetConnectCallback(ac, on_connect);
        redisAsyncSetDisconnectCallback(ac, on_disconnect);
        char key[32];
        snprintf(key, sizeof key, "evloop:counter:%d", c);
        redisAsyncCommand(ac, NULL, NULL, "DEL %s", key);
        for (long i = 0; i < ROUNDS; i++) {
            redisAsyncCommand(ac, on_set, NULL, "SET evloop:key:%d:%ld value-%d-%ld", c, i, c, i);
            redisAsyncCommand(ac, on_get, (void *)(intptr_t)i, "GET evloop:key:%d:%ld", c, i);
            redisAsyncCommand(ac, on_incr, NULL, "INCR %s", key);
        }
        if (c == 0) {
            redisAsyncCommand(ac, on_set, NULL, "SET evloop:big %b", big_value, (size_t)BIG);
            redisAsyncCommand(ac, on_big, NULL, "GET evloop:big");
        }
        redisAsyncCommand(ac, on_last, NULL, "DEL %s", key);
    }
    run_until_done(loop);
    for (int c = 0; c < CONNECTIONS; c++) {
        CHECK(conns[c].connected, "connection %d never connected", c);
        CHECK(conns[c].replies == ROUNDS * 3 + (c == 0), "connection %d: %d replies", c,
              conns[c].replies);
        CHECK(conns[c].disconnected && conns[c].disconnect_status == REDIS_OK,
              "connection %d: disconnect status %d", c, conns[c].disconnect_status);
    }
    CHECK(big_checked == 1, "the 1 MiB value was not read back");

    /* The server ends the connection (QUIT): hiredis reports it, the watcher goes. */
    conn_t quitter = {.id = 9};
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
    CHECK(ac != NULL && ac->err == 0, "connect for QUIT");
    ac->data = &quitter;
    CHECK(evl_redis_attach(loop, ac) == 0, "attach for QUIT");
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncCommand(ac, on_quit, NULL, "QUIT");
    run_until_done(loop);
    CHECK(quitter.disconnected, "the server's close was not reported");

    /* Nothing listens on closed_port: the connect callback gets the error. */
    int refused = 0;
    ac = redisAsyncConnect("127.0.0.1", closed_port);
    CHECK(ac != NULL, "connect to the closed port");
    if (ac->err == 0) {
        ac->data = &refused;
        CHECK(evl_redis_attach(loop, ac) == 0, "attach to the closed port");
        redisAsyncSetConnectCallback(ac, on_refused);
        redisAsyncCommand(ac, NULL, NULL, "PING");
        run_until_done(loop);
        CHECK(refused, "the refused connection was not reported");
    } else {
        redisAsyncFree(ac); /* refused at once, before any loop */
    }

    finish_loop(loop, watchdog);
    free(big_value);
    CHECK(open_fds() == fds_before, "%d fds open at the end, %d at the start", open_fds(), fds_before);
    printf("hiredis on %s: %d connections, %d commands checked, 1 MiB value, QUIT, refused: ok\n",
           argv[1], CONNECTIONS, CONNECTIONS * ROUNDS * 3 + 2);
    return 0;
}
