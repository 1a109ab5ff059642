"""Shared fixtures: every test that touches a loop runs on asyncio's own loop (the oracle) and
on evloop's, each backend; certificates and TLS contexts for the TLS tests."""

import asyncio
import datetime
import os
import ssl
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import evloop  # noqa: E402

BACKENDS = ("uring", "epoll")


def _loop_factories():
    yield "asyncio", asyncio.new_event_loop
    for b in BACKENDS:
        yield f"evloop-{b}", (lambda b=b: evloop.EventLoop(backend=b))


LOOP_KINDS = list(_loop_factories())


@pytest.fixture(params=[f for _, f in LOOP_KINDS], ids=[n for n, _ in LOOP_KINDS])
def loop(request):
    lp = request.param()
    asyncio.set_event_loop(lp)
    yield lp
    if not lp.is_closed():
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()
    asyncio.set_event_loop(None)


@pytest.fixture(params=BACKENDS)
def evloop_loop(request):
    """evloop only (for evloop's own API: backend, fs)."""
    lp = evloop.EventLoop(backend=request.param)
    asyncio.set_event_loop(lp)
    yield lp
    if not lp.is_closed():
        lp.close()
    asyncio.set_event_loop(None)


def _write_cert(directory, name, *, days_valid=(-1, 1)):
    """A self-signed certificate for `localhost` valid from now + days_valid[0] to now +
    days_valid[1]; returns (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days_valid[0]))
        .not_valid_after(now + datetime.timedelta(days=days_valid[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, f"{name}-cert.pem")
    key_path = os.path.join(directory, f"{name}-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_files():
    with tempfile.TemporaryDirectory() as d:
        yield {"good": _write_cert(d, "good"), "expired": _write_cert(d, "expired", days_valid=(-3, -1))}


@pytest.fixture(scope="module")
def tls_contexts(tls_files):
    """Server and client contexts for a self-signed certificate the client trusts."""
    cert, key = tls_files["good"]
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client
