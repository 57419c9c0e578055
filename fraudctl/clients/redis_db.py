"""The Redis client of fraudctl: health probe and URLs for Celery."""

from __future__ import annotations

from urllib.parse import quote

from fraudctl.config import RedisConfig
from fraudctl.errors import UnavailableError


def probe(rc: RedisConfig, password: str) -> str:
    import redis

    try:
        client = redis.Redis(host=rc.host, port=rc.port, password=password, socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except Exception as exc:
        raise UnavailableError(f"Redis at {rc.host}:{rc.port} did not answer PING: {exc}") from None
    return f"PONG (redis {version})"


def url(rc: RedisConfig, password: str, db: int = 0) -> str:
    return f"redis://:{quote(password, safe='')}@{rc.host}:{rc.port}/{db}"
