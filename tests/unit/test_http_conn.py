"""The HTTP users' keep-alive transport against a real socket server on 127.0.0.1.

The server is a plain listening socket in a thread that answers each request with bytes the test
gives, so every framing case (Content-Length, chunked, close-delimited, 1xx, HTTP/1.0, a server
that hangs up) is exercised on a real TCP connection.
"""

from __future__ import annotations

import socket
import threading

import pytest

from loadtests.http_conn import Endpoint, HttpTransportError, KeepAliveConnection, serialize_request


class ScriptedServer:
    """Accepts connections; for each request read, sends the next scripted reply.

    A reply of None closes the connection instead of answering. Records every request's bytes
    and how many connections were accepted.
    """

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        buffer = b""
        while self.replies:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                rest += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
            reply = self.replies.pop(0)
            if reply is None:
                return
            conn.sendall(reply)
            if b"Connection: close" in reply or reply.startswith(b"HTTP/1.0"):
                return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def scripted():
    servers = []

    def start(replies):
        server = ScriptedServer(replies)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _connection(server: ScriptedServer, timeout_s: float = 5.0) -> KeepAliveConnection:
    return KeepAliveConnection(
        Endpoint.parse(f"http://127.0.0.1:{server.port}"), timeout_s=timeout_s
    )


def _request(server: ScriptedServer, body: bytes = b"abc") -> bytes:
    endpoint = Endpoint.parse(f"http://127.0.0.1:{server.port}")
    return serialize_request(endpoint, "POST", "/v2/models/m/infer", {"X-Test": "1"}, body)


def test_endpoint_parse_keeps_host_port_and_prefix_when_url_has_a_path():
    endpoint = Endpoint.parse("https://proxy.example:8443/triton/")
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.prefix) == (
        "https",
        "proxy.example",
        8443,
        "/triton",
    )
    assert Endpoint.parse("127.0.0.1:8000").host_header == "127.0.0.1:8000"
    assert Endpoint.parse("http://example").host_header == "example"


def test_endpoint_parse_refuses_when_scheme_is_not_http():
    with pytest.raises(ValueError, match="http:// or https://"):
        Endpoint.parse("grpc://127.0.0.1:8001")


def test_serialize_request_writes_head_length_and_body_when_given_headers():
    endpoint = Endpoint.parse("http://127.0.0.1:8000/base")
    data = serialize_request(endpoint, "POST", "/v2/x", {"A": "b"}, b"12345")
    assert data == (
        b"POST /base/v2/x HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nA: b\r\n"
        b"Content-Length: 5\r\n\r\n12345"
    )


def test_connection_reuses_one_socket_when_replies_have_content_length(scripted):
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello"
    server = scripted([reply, reply, reply])
    connection = _connection(server)
    for _ in range(3):
        response = connection.request(_request(server))
        assert (response.status, response.body, response.headers["x-y"]) == (200, b"hello", "z")
    connection.close()
    assert server.connections == 1
    assert server.requests[0].endswith(b"Content-Length: 3\r\n\r\nabc")


def test_connection_joins_chunks_when_reply_is_chunked(scripted):
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: t\r\n\r\n"
    )
    follow = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted([reply, follow])
    connection = _connection(server)
    assert connection.request(_request(server)).body == b"Wikipedia "
    assert connection.request(_request(server)).body == b"ok"  # the trailer was consumed
    assert server.connections == 1


def test_connection_skips_interim_replies_when_server_sends_100_continue(scripted):
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad"
    server = scripted([reply])
    response = _connection(server).request(_request(server))
    assert (response.status, response.reason, response.body) == (400, "Bad Request", b"bad")


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.0 200 OK\r\n\r\nhi",  # close-delimited body
    ],
)
def test_connection_reconnects_when_server_closes_after_the_reply(scripted, reply):
    server = scripted([reply, reply])
    connection = _connection(server)
    assert connection.request(_request(server)).body == b"hi"
    assert connection.request(_request(server)).body == b"hi"
    assert server.connections == 2


def test_connection_raises_and_recovers_when_server_hangs_up_mid_exchange(scripted):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = scripted([None, ok])
    connection = _connection(server)
    with pytest.raises(HttpTransportError, match="closed the connection") as info:
        connection.request(_request(server))
    assert info.value.kind == "connection"
    assert connection.request(_request(server)).body == b"ok"  # a fresh socket
    assert server.connections == 2


def test_connection_says_timeout_when_server_does_not_answer(scripted):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never replies
    try:
        endpoint = Endpoint.parse(f"http://127.0.0.1:{listener.getsockname()[1]}")
        connection = KeepAliveConnection(endpoint, timeout_s=0.3)
        with pytest.raises(HttpTransportError) as info:
            connection.request(serialize_request(endpoint, "GET", "/", {}, b""))
        assert info.value.kind == "timeout"
    finally:
        listener.close()


def test_connection_refused_is_a_connection_error_when_nothing_listens():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there now
    endpoint = Endpoint.parse(f"http://127.0.0.1:{port}")
    with pytest.raises(HttpTransportError, match="Connection ?Refused|refused") as info:
        KeepAliveConnection(endpoint).request(serialize_request(endpoint, "GET", "/", {}, b""))
    assert info.value.kind == "connection"


def test_connection_rejects_garbage_when_reply_is_not_http(scripted):
    server = scripted([b"SSH-2.0-OpenSSH\r\n\r\n"])
    with pytest.raises(HttpTransportError, match="not an HTTP response"):
        _connection(server).request(_request(server))


def test_read_response_refuses_when_nothing_was_sent(scripted):
    server = scripted([])
    with pytest.raises(HttpTransportError, match="no request is outstanding"):
        _connection(server).read_response()
