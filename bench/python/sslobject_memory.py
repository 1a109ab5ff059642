"""What the ssl module alone keeps per server-side TLS connection, for bench/python_tls.py: the
objects every MemoryBIO-based loop holds (asyncio's, uvloop's, evloop's), with no loop and no
socket.

usage: sslobject_memory.py CERTFILE KEYFILE [N]

Completes N handshakes in memory between server SSLObjects (a context as
ssl.create_default_context(Purpose.CLIENT_AUTH) makes, with the certificate) and clients, frees
the clients and prints the bytes per kept server side (its SSLObject and two MemoryBIOs, after
the handshake and the session tickets): glibc's count of allocated bytes (mallinfo2) before and
after, which leaves out what the allocator keeps free, so it is a lower bound of the resident
memory it takes.
"""
import ctypes
import gc
import ssl
import sys


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def allocated(libc):
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def handshaken(server_ctx, client_ctx):
    """A server side (SSLObject, incoming, outgoing) after a full handshake, and its client."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out)
    for _ in range(8):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    if server.version() is None or client.version() is None:
        raise RuntimeError("in-memory handshake did not complete")
    try:
        client.read(1)  # takes the session tickets the server sent after the handshake
    except ssl.SSLWantReadError:
        pass
    return (server, s_in, s_out), client


def main(cert, key, n):
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    warm = [handshaken(server_ctx, client_ctx) for _ in range(50)]
    del warm
    gc.collect()
    before = allocated(libc)
    servers, clients = [], []
    for _ in range(n):
        server, client = handshaken(server_ctx, client_ctx)
        servers.append(server)
        clients.append(client)
    clients.clear()
    gc.collect()
    print(f"RESULT bytes={(allocated(libc) - before) / n:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2000)
