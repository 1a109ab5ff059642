"""evloop's asyncio event loop.

`EventLoop` puts evloop's native `Core` (scheduling, timers, fd readiness, stream, UDP and pipe
transports, in Rust) in front of asyncio's own Unix loop in the method resolution order: what the
core does not provide (servers' accept loop, Unix datagram transports, signals, the executor, name
resolution) is asyncio's code running on the core's fd watchers. TLS is native (`_evloop.TlsProtocol`,
asyncio's `sslproto` state machine in Rust) over the native stream transports.
"""

import asyncio
import contextvars
import errno
import functools
import os
import selectors
import socket
import ssl
import stat
import sys
import weakref
from asyncio import base_events, constants, exceptions, sslproto, transports, trsock, unix_events
from asyncio.log import logger

from . import _evloop

__all__ = ("EventLoop", "EventLoopPolicy", "new_event_loop", "install", "run")


class _CoreSelector(selectors._BaseSelectorImpl):
    """asyncio's selector bookkeeping (keys, data) with readiness from the core's fd watchers.

    The loop never calls `select`: it waits in the core, which also holds each key's data
    (asyncio's reader and writer handles) and queues them itself when their fd is ready.
    """

    def __init__(self, core):
        super().__init__()
        self._core = weakref.ref(core)

    def register(self, fileobj, events, data=None):
        key = super().register(fileobj, events, data)
        try:
            self._core()._watch_fd(key.fd, events, data)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        core = self._core()
        if core is not None and not core.is_closed():
            core._unwatch_fd(key.fd)
        return key

    def modify(self, fileobj, events, data=None):
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events or data != key.data:
            self._core()._watch_fd(key.fd, events, data)
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        return key

    def select(self, timeout=None):
        raise RuntimeError("evloop's loop waits in its core; its selector is never polled")

    def close(self):
        core = self._core()
        if core is not None and not core.is_closed():
            for fd in list(self._fd_to_key):
                core._unwatch_fd(fd)
        super().close()


class StreamTransportType(transports._FlowControlMixin, asyncio.Transport):
    """What evloop's native stream transports present as their class.

    They are `_evloop.StreamTransport` objects, which cannot derive from `asyncio.Transport`
    (a native class and `__slots__` layouts cannot be combined); they report this subclass as
    `__class__`, so `isinstance(transport, asyncio.Transport)` holds, as for asyncio's own.
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("stream transports are made by the event loop")


_evloop._set_transport_class(StreamTransportType)


class DatagramTransportType(transports._FlowControlMixin, asyncio.DatagramTransport):
    """What evloop's native UDP transports (`_evloop.DatagramTransport`) present as their class,
    so `isinstance(transport, asyncio.DatagramTransport)` holds."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("datagram transports are made by the event loop")


_evloop._set_datagram_transport_class(DatagramTransportType)


class ReadPipeTransportType(asyncio.ReadTransport):
    """What evloop's native read pipe transports (`_evloop.PipeTransport`) present as their class."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("pipe transports are made by the event loop")


class WritePipeTransportType(transports._FlowControlMixin, asyncio.WriteTransport):
    """What evloop's native write pipe transports (`_evloop.PipeTransport`) present as their class."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise TypeError("pipe transports are made by the event loop")


_evloop._set_pipe_transport_classes(ReadPipeTransportType, WritePipeTransportType)


class SSLTransportType(sslproto._SSLProtocolTransport):
    """What evloop's TLS transports (`_evloop.TlsTransport`) present as their class, so
    `isinstance` checks against asyncio's `_SSLProtocolTransport` and `asyncio.Transport` hold."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("TLS transports are made by the event loop")


_evloop._set_tls_transport_class(SSLTransportType)


# asyncio 3.11 added the TLS shutdown timeout (and rewrote sslproto, which evloop's TLS follows on
# every version); before it, the default is the one 3.11 chose.
_SSL_SHUTDOWN_TIMEOUT = getattr(constants, "SSL_SHUTDOWN_TIMEOUT", 30.0)
_SERVING_TAKES_SHUTDOWN_TIMEOUT = sys.version_info >= (3, 11)


def _handshake_done(loop, protocol, transport, waiter):
    """The end of an accepted TLS connection's handshake: on failure the transport is closed,
    and in debug mode the error is reported, as asyncio's accept does."""
    if not waiter.cancelled() and waiter.exception() is None:
        return
    transport.close()
    if loop.get_debug() and not waiter.cancelled():
        loop.call_exception_handler({
            "message": "Error on transport creation for incoming connection",
            "exception": waiter.exception(),
            "protocol": protocol,
            "transport": transport,
        })


def _set_nodelay(sock):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class EventLoop(_evloop.Core, unix_events.SelectorEventLoop):
    """An asyncio event loop on evloop (io_uring or epoll).

    `backend` ("uring", "epoll" or "auto"; default: `EVLOOP_BACKEND`, else auto) chooses the
    kernel interface; `loop.backend` says which one runs.
    """

    def __init__(self, *, backend=None):
        unix_events.SelectorEventLoop.__init__(self, _CoreSelector(self))

    def __repr__(self):
        return (
            f"<{type(self).__name__} backend={self.backend} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def set_debug(self, enabled):
        super().set_debug(enabled)
        self._set_core_debug(bool(enabled))

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        unix_events.SelectorEventLoop.close(self)
        self._close_core()

    # -- called by the core -------------------------------------------------------------

    def _process_fd_events(self, events):
        keys = self._selector._fd_to_key
        self._process_events([(keys[fd], mask) for fd, mask in events if fd in keys])

    def _log_slow_callback(self, handle, took):
        logger.warning("Executing %s took %.3f seconds", base_events._format_handle(handle), took)

    # -- transports ---------------------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        # Kept as given (asyncio keeps the caller's dict too); socket, sockname and peername
        # are computed by the transport on first request.
        _set_nodelay(sock)
        if server is not None and extra is not None and len(extra) == 1 and "peername" in extra:
            # asyncio's accept passes only the peer's address; the transport gives the same
            # answer from the socket on request, and an idle connection does not carry it.
            extra = None
        transport = _evloop.StreamTransport(self, sock, protocol, extra, server)
        self.call_soon(transport._start, waiter)
        return transport

    # -- fd watchers: asyncio's bookkeeping, with the core's handles (run natively when ready) --

    def _add_reader(self, fd, callback, *args):
        self._check_closed()
        handle = self._fd_handle(callback, args)
        key = self._selector.get_map().get(fd)
        if key is None:
            self._selector.register(fd, selectors.EVENT_READ, (handle, None))
        else:
            mask, (reader, writer) = key.events, key.data
            self._selector.modify(fd, mask | selectors.EVENT_READ, (handle, writer))
            if reader is not None:
                reader.cancel()
        return handle

    def _add_writer(self, fd, callback, *args):
        self._check_closed()
        handle = self._fd_handle(callback, args)
        key = self._selector.get_map().get(fd)
        if key is None:
            self._selector.register(fd, selectors.EVENT_WRITE, (None, handle))
        else:
            mask, (reader, writer) = key.events, key.data
            self._selector.modify(fd, mask | selectors.EVENT_WRITE, (reader, handle))
            if writer is not None:
                writer.cancel()
        return handle

    def _accept_connection(
        self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
        ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT, ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
    ):
        # asyncio's accept loop (called when the listening socket is readable), with the accept
        # and the transport made natively and no task per connection: asyncio makes a Python
        # socket, a coroutine and a task for each. Each connection's protocol and transport are
        # made in a copy of the context, as asyncio's task would make them.
        serving = (protocol_factory, sock, sslcontext, server, backlog, ssl_handshake_timeout)
        if _SERVING_TAKES_SHUTDOWN_TIMEOUT:
            serving += (ssl_shutdown_timeout,)
        if self._debug:  # asyncio logs each connection's address
            return super()._accept_connection(*serving)
        fd, family = sock.fileno(), int(sock.family)
        for _ in range(backlog):
            try:
                accepted = contextvars.copy_context().run(
                    self._accept_one, fd, family, protocol_factory, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout,
                )
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise  # the loop reports it, as asyncio's does
                # As asyncio: stop watching the socket for a while (it stays readable). Once,
                # where asyncio's loop goes on failing and reporting up to `backlog` times.
                self.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": trsock.TransportSocket(sock),
                })
                self._remove_reader(fd)
                self.call_later(constants.ACCEPT_RETRY_DELAY, self._start_serving, *serving)
                return
            if not accepted:
                return

    def _accept_one(self, fd, family, protocol_factory, sslcontext, server, ssl_handshake_timeout,
                    ssl_shutdown_timeout):
        raw = _evloop.StreamTransport._accept(self, fd, family, server)
        if raw is None:
            return False
        protocol = transport = None
        try:
            protocol = protocol_factory()
            if sslcontext:
                waiter = self.create_future()
                tls = _evloop.TlsProtocol(
                    self, protocol, sslcontext, waiter, True, None,
                    ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                )
                transport = tls._app_transport
                raw.set_protocol(tls)
                waiter.add_done_callback(functools.partial(_handshake_done, self, protocol, transport))
            else:
                transport = raw
                raw.set_protocol(protocol)
            self.call_soon(raw._start, None)
        except (SystemExit, KeyboardInterrupt):
            raw._discard()
            raise
        except BaseException as exc:
            raw._discard()
            if transport is not None and transport is not raw:
                transport.abort()
            # As asyncio's: reported in debug mode only (where this path is not taken).
            del exc
        return True

    def _make_ssl_transport(
        self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False, server_hostname=None,
        extra=None, server=None, ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
        ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
    ):
        ssl_protocol = _evloop.TlsProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        # asyncio's start_tls with evloop's TLS protocol.
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        ssl_protocol = _evloop.TlsProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False,
        )
        # Paused first, so that no data reaches the TLS protocol before its connection_made.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            # Unix datagram sockets: asyncio's transport, on the core's fd watchers.
            return super()._make_datagram_transport(sock, protocol, address, waiter, extra)
        transport = _evloop.DatagramTransport(self, sock, protocol, address, extra)
        self.call_soon(transport._start, waiter)
        return transport

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return self._make_pipe_transport(pipe, protocol, waiter, extra, writes=False)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return self._make_pipe_transport(pipe, protocol, waiter, extra, writes=True)

    def _make_pipe_transport(self, pipe, protocol, waiter, extra, *, writes):
        mode = os.fstat(pipe.fileno()).st_mode
        is_fifo, is_socket = stat.S_ISFIFO(mode), stat.S_ISSOCK(mode)
        if not (is_fifo or is_socket or stat.S_ISCHR(mode)):
            if writes:
                raise ValueError("Pipe transport is only for pipes, sockets and character devices")
            raise ValueError("Pipe transport is for pipes/sockets only.")
        # The core owns (and closes) a duplicate; the pipe object is closed after
        # connection_lost, as asyncio closes it.
        fd = os.dup(pipe.fileno())
        try:
            transport = _evloop.PipeTransport(
                self, pipe, fd, protocol, dict(extra or {}), writes, writes and (is_fifo or is_socket)
            )
        except BaseException:
            os.close(fd)
            raise
        self.call_soon(transport._start, waiter)
        return transport

    def _ensure_fd_no_transport(self, fd):
        fileno = fd if isinstance(fd, int) else int(fd.fileno())
        if self._fd_has_transport(fileno):
            raise RuntimeError(f"File descriptor {fd!r} is used by transport")
        super()._ensure_fd_no_transport(fd)

    async def _sendfile_native(self, transp, file, offset, count):
        if isinstance(transp, _evloop.StreamTransport):
            raise exceptions.SendfileNotAvailableError(
                "evloop's stream transports send files by reading and writing them (not sendfile(2))"
            )
        return await super()._sendfile_native(transp, file, offset, count)

    # -- processes: Popen starts each child, a core process handle watches its pidfd (no SIGCHLD,
    # no watcher thread) and reaps it --

    async def _make_subprocess_transport(
        self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None, **kwargs
    ):
        waiter = self.create_future()
        transport = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs,
        )
        self._watch_child(transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    def _watch_child(self, transport):
        self._watch_child_exit(transport.get_pid(), transport._process_exited)


class EventLoopPolicy(unix_events.DefaultEventLoopPolicy):
    """The default policy, making evloop loops."""

    _loop_factory = EventLoop


def new_event_loop(**kwargs):
    """A new evloop event loop (`asyncio.Runner(loop_factory=evloop.new_event_loop)`)."""
    return EventLoop(**kwargs)


def install():
    """Makes evloop the event loop asyncio creates (`asyncio.run`, `new_event_loop`)."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None, **loop_kwargs):
    """Runs the coroutine `main` on a new evloop loop, as `asyncio.run` does, and closes it."""
    factory = (lambda: EventLoop(**loop_kwargs)) if loop_kwargs else EventLoop
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    from asyncio import runners

    if asyncio.events._get_running_loop() is not None:
        raise RuntimeError("evloop.run() cannot be called from a running event loop")
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            runners._cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
