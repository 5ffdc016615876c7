"""One keep-alive HTTP/1.1 connection that sends pre-serialised requests: the HTTP users' transport.

Why not FastHttpUser's own client for the inference task: measured here against a live Triton
(seedcnn, batch 1), geventhttpclient's ``urlopen`` costs 0.38-0.58 ms of client CPU per request
and this connection 0.14-0.17 ms. At concurrency 1 on a small CPU that difference sits on the
critical path of every request and shows up as lower throughput than Triton's C++ load generator
reaches on the same server. A load test sends the same few requests again and again, so each one
is serialised once (``serialize_request``) and written with one ``sendall``; the response is
parsed with byte searches.

What it speaks: HTTP/1.1 with ``Content-Length`` or chunked bodies, ``Connection: close`` and
HTTP/1.0 replies (the socket is reopened for the next request), ``http`` and ``https`` (like
Locust's FastHttpUser, TLS certificates are not checked unless ``insecure`` is False). One request
at a time; no retries (a retry would hide a failure inside one longer request). Any transport or
protocol fault closes the socket and raises ``HttpTransportError``; the next request reconnects.
The sockets are gevent's once locust is imported (it monkey-patches the standard library).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

BLOCK = 256 * 1024
MAX_HEAD = 64 * 1024
CRLF = b"\r\n"


class HttpTransportError(Exception):
    """The request did not get a complete HTTP response (refused, reset, closed, timed out)."""

    def __init__(self, message: str, kind: str = "connection") -> None:
        super().__init__(message)
        self.kind = kind  # connection | timeout


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a base URL points: scheme, host, port and path prefix (a reverse proxy's, or '')."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def serialize_request(
    endpoint: Endpoint, method: str, path: str, headers: dict[str, str], body: bytes
) -> bytes:
    """The whole request, head and body, as sent on the wire."""
    lines = [f"{method} {endpoint.prefix}{path} HTTP/1.1", f"Host: {endpoint.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class KeepAliveConnection:
    """A lazily opened, reused connection to one endpoint; ``request`` sends and reads one reply."""

    def __init__(
        self,
        endpoint: Endpoint,
        connect_timeout_s: float = 10.0,
        timeout_s: float = 30.0,
        insecure: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.insecure = insecure
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def request(self, data: bytes) -> HttpResponse:
        """Send one serialised request and return its response; raises HttpTransportError."""
        self.send(data)
        return self.read_response()

    def send(self, data: bytes) -> None:
        """Put one serialised request on the wire (connecting first if need be)."""
        with self._closing_on_fault():
            (self._sock or self._connect()).sendall(data)

    def read_response(self) -> HttpResponse:
        """The response to the request last sent."""
        if self._sock is None:
            raise HttpTransportError("no request is outstanding on this connection")
        with self._closing_on_fault():
            response, keep_alive = self._read_response(self._sock)
        if not keep_alive:
            self.close()
        return response

    @contextlib.contextmanager
    def _closing_on_fault(self) -> Iterator[None]:
        """Any fault leaves the connection in an unknown state: close it, say what happened."""
        try:
            yield
        except (OSError, ValueError) as exc:  # socket errors, timeouts, TLS faults, bad framing
            self.close()
            kind = "timeout" if isinstance(exc, TimeoutError) else "connection"
            raise HttpTransportError(f"{type(exc).__name__}: {exc}", kind) from exc
        except HttpTransportError:
            self.close()
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def _connect(self) -> socket.socket:
        address = (self.endpoint.host, self.endpoint.port)
        sock = socket.create_connection(address, timeout=self.connect_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.endpoint.scheme == "https":
            context = ssl.create_default_context()
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=self.endpoint.host)
        sock.settimeout(self.timeout_s)
        self._sock = sock
        return sock

    def _read_response(self, sock: socket.socket) -> tuple[HttpResponse, bool]:
        while True:  # skip interim 1xx replies
            version, status, reason, headers = self._read_head(sock)
            if status >= 200:
                break
        if headers.get("transfer-encoding", "").lower().endswith("chunked"):
            body = self._read_chunked(sock)
            framed = True
        elif "content-length" in headers:
            body = self._read_exactly(sock, int(headers["content-length"]))
            framed = True
        else:  # the body runs until the server closes the connection
            body = self._read_to_close(sock)
            framed = False
        connection = headers.get("connection", "").lower()
        keep_alive = framed and (
            connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
        )
        return HttpResponse(status, reason, headers, body), keep_alive

    def _read_head(self, sock: socket.socket) -> tuple[str, int, str, dict[str, str]]:
        end = self._fill_until(sock, b"\r\n\r\n", "the response header")
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status_line, *fields = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise HttpTransportError(f"not an HTTP response: {status_line[:80]!r}")
        headers = {}
        for field in fields:
            name, sep, value = field.partition(":")
            if not sep:
                raise HttpTransportError(f"malformed response header line {field[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return version, int(code), reason, headers

    def _fill_until(self, sock: socket.socket, marker: bytes, what: str) -> int:
        """Read until ``marker`` is in the buffer; its offset."""
        start = 0
        while (found := self._buffer.find(marker, start)) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise HttpTransportError(f"{what} is longer than {MAX_HEAD} bytes")
            start = max(0, len(self._buffer) - len(marker) + 1)
            self._recv_more(sock, what)
        return found

    def _read_exactly(self, sock: socket.socket, size: int) -> bytes:
        while len(self._buffer) < size:
            self._recv_more(sock, f"the response body ({len(self._buffer)} of {size} bytes read)")
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        return body

    def _read_chunked(self, sock: socket.socket) -> bytes:
        parts = []
        while True:
            end = self._fill_until(sock, CRLF, "a chunk size line")
            size = int(bytes(self._buffer[:end]).split(b";")[0].strip(), 16)
            del self._buffer[: end + 2]
            if size == 0:  # trailers (usually none) end with an empty line
                while (end := self._fill_until(sock, CRLF, "the chunked trailer")) > 0:
                    del self._buffer[: end + 2]
                del self._buffer[:2]
                return b"".join(parts)
            parts.append(self._read_exactly(sock, size + 2)[:size])

    def _read_to_close(self, sock: socket.socket) -> bytes:
        while chunk := sock.recv(BLOCK):
            self._buffer += chunk
        body = bytes(self._buffer)
        self._buffer.clear()
        return body

    def _recv_more(self, sock: socket.socket, what: str) -> None:
        chunk = sock.recv(BLOCK)
        if not chunk:
            raise HttpTransportError(f"the server closed the connection while sending {what}")
        self._buffer += chunk
