"""The Redis client of fraudctl: health probe and URLs for Celery.

The probe speaks RESP over a socket itself: AUTH, PING and INFO server are three lines of the protocol, while
importing redis-py (with its asyncio client and telemetry) costs `fraudctl status` ~0.7 s of CPU.
"""

from __future__ import annotations

import socket
from urllib.parse import quote

from fraudctl.config import RedisConfig
from fraudctl.errors import UnavailableError


def probe(rc: RedisConfig, password: str, timeout: float = 3.0) -> str:
    """AUTH, PING and INFO server: "PONG (redis VERSION)", or UnavailableError saying why not."""
    try:
        with socket.create_connection((rc.host, rc.port), timeout=timeout) as sock:
            reader = sock.makefile("rb")
            replies = [_command(sock, reader, *words) for words in (("AUTH", password), ("PING",), ("INFO", "server"))]
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"Redis at {rc.host}:{rc.port} did not answer PING: {exc}") from None
    if replies[1] != "PONG":
        raise UnavailableError(f"Redis at {rc.host}:{rc.port} answered PING with {replies[1]!r}")
    fields = dict(line.split(":", 1) for line in replies[2].splitlines() if ":" in line)
    return f"PONG (redis {fields.get('redis_version', '?')})"


def _command(sock: socket.socket, reader, *words: str) -> str:
    """Send one command (a RESP array of bulk strings) and read its reply: a simple string or a bulk string;
    an error reply raises ValueError with Redis's message (e.g. WRONGPASS)."""
    encoded = [word.encode() for word in words]
    sock.sendall(b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded))
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ValueError(rest)
    if kind == b"$" and int(rest) >= 0:
        body = reader.read(int(rest) + 2)
        return body[:-2].decode(errors="replace")
    raise ValueError(f"unexpected reply {line[:60]!r}")


def url(rc: RedisConfig, password: str, db: int = 0) -> str:
    return f"redis://:{quote(password, safe='')}@{rc.host}:{rc.port}/{db}"
