/* hiredis on evloop: pipelines 1,000 INCRs on one connection and prints the counter.
 *   redis_counter [HOST [PORT]]          (default 127.0.0.1 6379)
 * Build: cc redis_counter.c $(pkg-config --cflags --libs evloop hiredis) */
#include <stdio.h>
#include <stdlib.h>

#include <evloop/adapters/hiredis.h>

static void on_connect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) fprintf(stderr, "connect: %s\n", ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) fprintf(stderr, "disconnected: %s\n", ac->errstr);
}

static void on_incr(redisAsyncContext *ac, void *r, void *last) {
    redisReply *reply = r;
    if (reply == NULL) return; /* the connection failed; on_connect said why */
    if (reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "INCR: %s\n", reply->str);
        redisAsyncDisconnect(ac);
    } else if (last != NULL) {
        printf("evloop:example:counter = %lld\n", reply->integer);
        redisAsyncDisconnect(ac);
    }
}

int main(int argc, char **argv) {
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 6379;
    evl_loop_t *loop;
    int rc = evl_loop_new(&loop, EVL_BACKEND_AUTO);
    if (rc < 0) {
        fprintf(stderr, "evl_loop_new: %s\n", evl_strerror(rc));
        return 1;
    }
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (ac == NULL || ac->err) {
        fprintf(stderr, "redisAsyncConnect: %s\n", ac ? ac->errstr : "out of memory");
        return 1;
    }
    if ((rc = evl_redis_attach(loop, ac)) < 0) {
        fprintf(stderr, "evl_redis_attach: %s\n", evl_strerror(rc));
        return 1;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    for (int i = 0; i < 1000; i++)
        redisAsyncCommand(ac, on_incr, i == 999 ? (void *)ac : NULL, "INCR evloop:example:counter");
    evl_run(loop, EVL_RUN_DEFAULT); /* returns once the connection is gone */
    return evl_loop_free(loop) == 0 ? 0 : 1;
}
