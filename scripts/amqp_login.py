"""Log in to an AMQP 0-9-1 broker the way the application does (PLAIN, a vhost) and exit 0
only when the broker accepts: a port that merely answers is not a broker we can use.

Usage: python3 scripts/amqp_login.py HOST PORT USER PASSWORD VHOST  (standard library only,
so it runs before the project's virtualenv exists).
"""

from __future__ import annotations

import socket
import struct
import sys

_FRAME_METHOD = 1
_FRAME_END = b"\xce"


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(sock, 7)
    kind, _channel, size = struct.unpack(">BHI", header)
    payload = _read_exact(sock, size)
    if _read_exact(sock, 1) != _FRAME_END:
        raise ConnectionError("bad AMQP frame end")
    return kind, payload


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection (credentials refused?)")
        data += chunk
    return data


def _method(sock: socket.socket) -> tuple[int, int, bytes]:
    kind, payload = _read_frame(sock)
    if kind != _FRAME_METHOD:
        raise ConnectionError(f"unexpected AMQP frame type {kind}")
    class_id, method_id = struct.unpack(">HH", payload[:4])
    return class_id, method_id, payload[4:]


def _send_method(sock: socket.socket, class_id: int, method_id: int, args: bytes) -> None:
    payload = struct.pack(">HH", class_id, method_id) + args
    sock.sendall(struct.pack(">BHI", _FRAME_METHOD, 0, len(payload)) + payload + _FRAME_END)


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">B", len(raw)) + raw


def _longstr(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def login(host: str, port: int, user: str, password: str, vhost: str) -> None:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        if _method(sock)[:2] != (10, 10):  # connection.start
            raise ConnectionError("no connection.start")
        response = f"\0{user}\0{password}".encode()
        start_ok = _longstr(b"") + _shortstr("PLAIN") + _longstr(response) + _shortstr("en_US")
        _send_method(sock, 10, 11, start_ok)
        class_id, method_id, args = _method(sock)
        if (class_id, method_id) != (10, 30):  # connection.tune
            raise ConnectionError(f"login refused ({class_id}.{method_id})")
        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", args[:8])
        _send_method(sock, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
        _send_method(sock, 10, 40, _shortstr(vhost) + _shortstr("") + b"\x00")  # open
        class_id, method_id, args = _method(sock)
        if (class_id, method_id) != (10, 41):  # connection.open-ok
            raise ConnectionError(f"vhost {vhost!r} refused ({class_id}.{method_id})")
        _send_method(sock, 10, 50, struct.pack(">HB", 200, 2) + b"OK" + struct.pack(">HH", 0, 0))


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, user, password, vhost = argv
    try:
        login(host, int(port), user, password, vhost)
    except (OSError, ConnectionError, struct.error) as exc:
        print(f"amqp login to {host}:{port} as {user!r} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
