"""TLS under the handshake: open and accept TLS connections, and say clearly why one failed.

TLS adds confidentiality; the PAKE handshake still runs inside it, so the secret is
required either way. A certificate problem surfaces as :class:`TlsHandshakeError` (a
:class:`~replobj.errors.TransportError`) naming the peer and what to check, not as a bare
``ssl.SSLError``.
"""

from __future__ import annotations

import ssl

import anyio
from anyio.abc import ByteStream, SocketStream
from anyio.streams.tls import TLSStream

from replobj.errors import TransportError

__all__ = ["TlsHandshakeError", "accept_tls", "connect"]


class TlsHandshakeError(TransportError):
    """The TLS handshake failed (certificate not trusted, wrong host name, plain peer)."""


async def connect(host: str, port: int, context: ssl.SSLContext | None) -> ByteStream:
    """Connect to ``host:port``, in TLS if ``context`` is given.

    :raises TlsHandshakeError: if the TLS handshake fails; the message says what to check.
    :raises OSError: if the connection itself fails.
    """
    if context is None:
        return await anyio.connect_tcp(host, port)
    try:
        return await anyio.connect_tcp(
            host, port, ssl_context=context, tls_standard_compatible=False
        )
    except ssl.SSLError as exc:
        raise TlsHandshakeError(
            f"TLS handshake with {host}:{port} failed: {exc}; check that client_ssl trusts "
            "the CA that signed the peer's certificate and that the certificate names "
            f"{host}, and that the peer has server_ssl set"
        ) from exc


async def accept_tls(raw: SocketStream, context: ssl.SSLContext) -> ByteStream:
    """Run the server side of TLS on an accepted connection.

    :raises TlsHandshakeError: if it fails (a plain peer, an untrusted client certificate).
    """
    try:
        return await TLSStream.wrap(
            raw, server_side=True, ssl_context=context, standard_compatible=False
        )
    except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        raise TlsHandshakeError(
            f"TLS handshake failed: {exc!r}; the peer may lack client_ssl, or its "
            "certificate is not trusted by server_ssl"
        ) from exc
