"""Scheduling, the loop's life cycle, errors and threads: each test runs on asyncio's own loop
(the oracle) and on evloop's, on both backends (the `loop` fixture)."""

import asyncio
import contextvars
import logging
import os
import signal
import socket
import threading
import time

import pytest

import evloop


def test_call_soon_runs_in_order_with_args(loop):
    seen = []
    for i in range(5):
        loop.call_soon(seen.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [0, 1, 2, 3, 4]


def test_a_cancelled_handle_does_not_run(loop):
    seen = []
    h = loop.call_soon(seen.append, "no")
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == []


def test_callbacks_queued_by_callbacks_wait_for_the_next_iteration(loop):
    seen = []

    def first():
        seen.append("first")
        loop.call_soon(seen.append, "later")

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen[:2] == ["first", "second"]
    loop.run_until_complete(asyncio.sleep(0))
    assert "later" in seen


def test_callbacks_run_in_their_context(loop):
    var = contextvars.ContextVar("var", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_later(0.001, lambda: seen.append(var.get()), context=ctx)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert seen == ["inner", "outer", "inner"]


def test_timers_fire_in_deadline_order_and_not_early(loop):
    seen = []
    start = loop.time()
    for delay in (0.03, 0.01, 0.02):
        loop.call_later(delay, lambda d=delay: seen.append((d, loop.time() - start)))
    loop.run_until_complete(asyncio.sleep(0.1))
    assert [d for d, _ in seen] == [0.01, 0.02, 0.03]
    for d, elapsed in seen:
        assert elapsed >= d - 0.001
    h = loop.call_at(loop.time() + 10, lambda: None)
    assert abs(h.when() - (start + 10)) < 1.0
    h.cancel()


def test_cancelled_timers_do_not_fire(loop):
    seen = []
    handles = [loop.call_later(0.01, seen.append, i) for i in range(100)]
    for h in handles[::2]:
        h.cancel()
    loop.run_until_complete(asyncio.sleep(0.05))
    assert seen == list(range(1, 100, 2))


def test_a_timer_due_now_runs_on_the_next_iteration(loop):
    seen = []
    loop.call_later(0, seen.append, "zero")
    loop.call_later(-5, seen.append, "past")
    loop.run_until_complete(asyncio.sleep(0.01))
    assert sorted(seen) == ["past", "zero"]


def test_call_soon_threadsafe_wakes_a_sleeping_loop(loop):
    fut = loop.create_future()

    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, threading.get_ident())

    t = threading.Thread(target=worker)
    started = time.monotonic()
    t.start()
    result = loop.run_until_complete(asyncio.wait_for(fut, 10))
    t.join()
    assert result == t.ident
    assert time.monotonic() - started < 5


def test_many_threads_calling_soon_threadsafe_lose_nothing(loop):
    count = 0
    done = loop.create_future()
    total = 4 * 2000

    def bump():
        nonlocal count
        count += 1
        if count == total:
            done.set_result(None)

    def worker():
        for _ in range(2000):
            loop.call_soon_threadsafe(bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    loop.run_until_complete(asyncio.wait_for(done, 30))
    for t in threads:
        t.join()
    assert count == total


def test_an_exception_in_a_callback_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def boom():
        raise ValueError("boom")

    loop.call_soon(boom)
    loop.call_later(0.001, boom)
    loop.run_until_complete(asyncio.sleep(0.02))
    assert len(contexts) == 2
    for ctx in contexts:
        assert isinstance(ctx["exception"], ValueError)
        assert "Exception in callback" in ctx["message"]
        assert "handle" in ctx


def test_keyboard_interrupt_in_a_callback_leaves_the_loop(loop):
    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    # The loop still works.
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def test_sigint_while_waiting_raises_keyboard_interrupt(loop):
    # The loop waits in the kernel with nothing to do; a SIGINT arrives from a thread.
    def send():
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=send)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(asyncio.sleep(30))
    t.join()


def test_stop_and_run_forever(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0.001, 5)) == 5


def test_misuse_of_a_running_or_closed_loop_raises(loop):
    async def inner():
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            loop.run_until_complete(coro)
        coro.close()
        with pytest.raises(RuntimeError):
            loop.close()
        return True

    assert loop.run_until_complete(inner())
    loop.close()
    loop.close()  # closing twice is allowed
    assert loop.is_closed()
    with pytest.raises(RuntimeError):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError):
        loop.call_later(1, lambda: None)
    with pytest.raises(RuntimeError):
        loop.call_soon_threadsafe(lambda: None)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(coro)
    coro.close()


def run_in_a_thread(loop, worker):
    """Runs `worker` on a thread of its own while the loop keeps turning, until it returns."""

    async def main():
        t = threading.Thread(target=worker)
        t.start()
        while t.is_alive():
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())


def test_debug_mode_refuses_calls_from_a_foreign_thread(loop):
    loop.set_debug(True)
    errors = []

    def worker():
        try:
            loop.call_soon(lambda: None)
        except RuntimeError as e:
            errors.append(e)

    run_in_a_thread(loop, worker)
    assert len(errors) == 1
    assert "thread" in str(errors[0])


def test_debug_mode_can_be_set_from_another_thread_and_call_soon_is_then_refused(loop):
    results = {}

    def worker():
        loop.set_debug(True)
        results["debug"] = loop.get_debug()
        for name, call in [("call_soon", lambda: loop.call_soon(print)),
                           ("call_later", lambda: loop.call_later(60, print)),
                           ("call_at", lambda: loop.call_at(loop.time() + 60, print))]:
            try:
                call()
                results[name] = "accepted"
            except RuntimeError as e:
                results[name] = str(e)
        loop.set_debug(False)

    run_in_a_thread(loop, worker)
    assert results["debug"] is True
    for name in ("call_soon", "call_later", "call_at"):
        assert "thread" in results[name], (name, results[name])
    assert not loop.get_debug()


def test_call_soon_from_another_thread_runs_with_debug_off(loop):
    ran = []

    def worker(fut):
        loop.call_soon(ran.append, threading.get_ident())
        loop.call_soon_threadsafe(fut.set_result, None)

    async def main():
        fut = loop.create_future()
        t = threading.Thread(target=worker, args=(fut,))
        t.start()
        await asyncio.wait_for(fut, 10)
        t.join()
        # asyncio queues the callback without waking the loop: give it an iteration.
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert len(ran) == 1 and ran[0] != threading.get_ident()


def test_timers_from_another_thread_run_with_debug_off(loop):
    ran = []

    def worker(done):
        loop.call_later(0.01, ran.append, "later")
        cancelled = loop.call_later(0.01, ran.append, "cancelled")
        cancelled.cancel()
        loop.call_at(loop.time() + 0.02, done.set)

    async def main():
        done = asyncio.Event()
        # Event.set from the timer runs on the loop's thread.
        t = threading.Thread(target=worker, args=(done,))
        t.start()
        # asyncio does not wake a sleeping loop for them: keep it turning.
        for _ in range(1000):
            if done.is_set():
                break
            await asyncio.sleep(0.01)
        t.join()

    loop.run_until_complete(main())
    assert ran == ["later"]


def test_debug_mode_reports_slow_callbacks(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(asyncio.sleep(0.01))
    assert any("Executing" in r.getMessage() and "took" in r.getMessage() for r in caplog.records)


def test_tasks_names_contexts_and_task_factory(loop):
    var = contextvars.ContextVar("v", default=0)
    ctx = contextvars.copy_context()
    ctx.run(var.set, 7)

    async def read():
        return var.get()

    t = loop.create_task(read(), name="reader")
    assert t.get_name() == "reader"
    assert loop.run_until_complete(t) == 0
    if hasattr(asyncio.Task, "get_context"):  # context= is 3.11+
        assert loop.run_until_complete(loop.create_task(read(), context=ctx)) == 7
    made = []

    def factory(lp, coro, **kw):
        made.append(coro)
        return asyncio.Task(coro, loop=lp, **kw)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    assert loop.run_until_complete(loop.create_task(read())) == 0
    assert len(made) == 1
    loop.set_task_factory(None)


def test_executor_and_name_resolution(loop):
    async def main():
        assert await loop.run_in_executor(None, sum, [1, 2, 3]) == 6
        infos = await loop.getaddrinfo("localhost", 80, type=1)
        assert infos and all(len(i) == 5 for i in infos)
        host, port = await loop.getnameinfo(("127.0.0.1", 80))
        assert port in ("80", "http")
        await loop.shutdown_default_executor()

    loop.run_until_complete(main())


def test_async_generators_are_finalized(loop):
    finalized = []

    async def gen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def main():
        g = gen()
        assert await g.__anext__() == 1

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert finalized == [True]


def test_signal_handlers(loop):
    got = []

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        with pytest.raises((ValueError, RuntimeError)):
            loop.add_signal_handler(signal.SIGKILL, lambda: None)

    loop.run_until_complete(main())
    assert got == ["usr1"]


def test_entry_points():
    async def main():
        return asyncio.get_running_loop()

    for backend in ("uring", "epoll"):
        lp = evloop.run(main(), backend=backend)
        assert isinstance(lp, evloop.EventLoop)
        assert lp.backend == backend and lp.is_closed()
    if hasattr(asyncio, "Runner"):  # 3.11+
        with asyncio.Runner(loop_factory=evloop.new_event_loop) as runner:
            assert isinstance(runner.run(main()), evloop.EventLoop)
    old = asyncio.get_event_loop_policy()
    try:
        evloop.install()
        made = asyncio.new_event_loop()
        assert isinstance(made, evloop.EventLoop)
        made.close()
        lp = asyncio.run(main())
        assert isinstance(lp, evloop.EventLoop)
    finally:
        asyncio.set_event_loop_policy(old)


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError):
        evloop.EventLoop(backend="kqueue")


def test_a_timer_that_came_due_while_callbacks_ran_is_not_delayed(loop):
    # The timer is already due when the next iteration starts; the loop must not then block
    # until its next deadline (a minute away) before running it.
    far = loop.call_later(60, lambda: None)
    fut = loop.create_future()

    def slow():
        loop.call_later(0.01, fut.set_result, "ran")
        time.sleep(0.05)

    loop.call_soon(slow)
    started = time.monotonic()
    assert loop.run_until_complete(asyncio.wait_for(fut, 30)) == "ran"
    assert time.monotonic() - started < 10
    far.cancel()


def test_a_timer_cancelled_from_another_thread_does_not_run(loop):
    seen = []
    h = loop.call_later(0.05, seen.append, "no")
    t = threading.Thread(target=h.cancel)
    t.start()
    t.join()
    assert h.cancelled()
    loop.run_until_complete(asyncio.sleep(0.1))
    assert seen == []


# The order asyncio gives one iteration: the callbacks that were ready before it polled run
# ahead of what the poll brings. A task started by run_until_complete makes its future before a
# datagram or a chunk that was already waiting is delivered (CPython 3.13's
# test_datagram_send_to_non_listening_address relies on it).


class NextDelivery:
    """Hands what a protocol is given next to the task awaiting `next_one()`, through a future
    made only when that task starts waiting."""

    future = None

    def deliver(self, item):
        self.future.set_result(item)

    async def next_one(self):
        self.future = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(self.future, 10)
        finally:
            self.future = None


def test_a_waiting_datagram_comes_after_the_task_that_waits_for_it(loop):
    class Waiter(asyncio.DatagramProtocol, NextDelivery):
        def datagram_received(self, data, addr):
            self.deliver(data)

    def endpoint():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return loop.run_until_complete(loop.create_datagram_endpoint(Waiter, sock=sock))

    (t1, p1), (t2, p2) = endpoint(), endpoint()
    for i in range(3):
        # Sent while the loop is not running: the datagram waits in the socket.
        t1.sendto(b"%d" % i, t2.get_extra_info("sockname"))
        assert loop.run_until_complete(p2.next_one()) == b"%d" % i
        t2.sendto(b"back %d" % i, t1.get_extra_info("sockname"))
        assert loop.run_until_complete(p1.next_one()) == b"back %d" % i
    t1.close()
    t2.close()
    loop.run_until_complete(asyncio.sleep(0))


def test_waiting_stream_data_comes_after_the_task_that_waits_for_it(loop):
    class Waiter(asyncio.Protocol, NextDelivery):
        def data_received(self, data):
            self.deliver(data)

    a, b = socket.socketpair()
    transport, protocol = loop.run_until_complete(loop.create_connection(Waiter, sock=a))
    for i in range(3):
        b.sendall(b"chunk %d" % i)
        assert loop.run_until_complete(protocol.next_one()) == b"chunk %d" % i
    transport.close()
    b.close()
    loop.run_until_complete(asyncio.sleep(0))


def test_a_zero_delay_timer_runs_before_what_was_scheduled_after_it(loop):
    # uvicorn's pattern: a callback arms call_later(0, close) and wakes a task; the task then
    # yields once (sleep(0)) and expects the timer to have run. In asyncio the timer is due in
    # the next iteration's batch, so it runs before anything scheduled during that batch.
    order = []

    async def main():
        woken = loop.create_future()

        def arm():
            loop.call_later(0, order.append, "timer")
            woken.set_result(None)

        loop.call_soon(arm)
        await woken
        order.append("task resumed")
        await asyncio.sleep(0)
        order.append("task after one yield")

    loop.run_until_complete(main())
    assert order == ["task resumed", "timer", "task after one yield"]


def test_readiness_then_due_timers_then_what_they_scheduled(loop):
    # One asyncio iteration runs the readiness callbacks its poll found, then the timers that
    # came due, in one batch; what they schedule runs after both.
    a, b = socket.socketpair()
    order = []
    try:

        def on_readable():
            loop.remove_reader(a.fileno())
            order.append("reader")
            loop.call_soon(order.append, "scheduled by the reader")

        def on_timer():
            order.append("timer")
            loop.call_soon(order.append, "scheduled by the timer")

        async def main():
            b.send(b"x")
            loop.call_later(0, on_timer)
            loop.add_reader(a.fileno(), on_readable)
            while len(order) < 4:
                await asyncio.sleep(0.001)

        loop.run_until_complete(asyncio.wait_for(main(), 30))
        assert order == ["reader", "timer", "scheduled by the reader", "scheduled by the timer"]
    finally:
        a.close()
        b.close()


def test_transport_methods_can_be_replaced_on_the_instance(loop):
    # As on asyncio's transports (which have a __dict__): aiohttp's suite patches
    # transport.write with unittest.mock to simulate a reset.
    from unittest import mock

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        with mock.patch.object(transport, "write", side_effect=ConnectionResetError) as write:
            with pytest.raises(ConnectionResetError):
                transport.write(b"x")
            assert write.call_count == 1
        transport.write(b"after")  # the class's method again
        b.settimeout(10)
        assert b.recv(10) == b"after"
        udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        udp.custom_attribute = 1
        assert udp.custom_attribute == 1
        transport.close()
        udp.close()
        b.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
