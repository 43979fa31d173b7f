"""One way to reach Redis: a plain URL, or the current master found through Redis Sentinel.

With ``REDIS_SENTINELS=host1:26379,host2:26379`` (and ``REDIS_SENTINEL_MASTER``,
default ``mymaster``) the app, the RQ workers (provider_app/rq_config.py) and
the scheduler ask the sentinels for the master instead of a fixed host, so a
Redis failover needs no redeploy. ``REDIS_URL`` still supplies the database
index and password (its host is then ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.sentinel import Sentinel

SOCKET_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"h1:26379, h2"`` -> ``[("h1", 26379), ("h2", 26379)]``; a clear error otherwise."""
    hosts = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {part!r} is not host:port")
        hosts.append((host, int(port)))
    return hosts


def url_options(redis_url: str) -> dict[str, Any]:
    """Database index, user and password from a redis:// URL (used with Sentinel)."""
    parts = urlsplit(redis_url)
    path = parts.path.lstrip("/")
    return {
        "db": int(path) if path.isdigit() else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def connect(redis_url: str, sentinels: str = "", master: str = "mymaster") -> Redis:
    """A client for ``redis_url``, or for the Sentinel-elected master when sentinels are set."""
    if not sentinels:
        return Redis.from_url(redis_url, **SOCKET_OPTIONS)
    sentinel = Sentinel(
        parse_sentinels(sentinels), sentinel_kwargs=SOCKET_OPTIONS, **SOCKET_OPTIONS,
        **url_options(redis_url),
    )
    return sentinel.master_for(master)


def rq_cli_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``REDIS_URL`` or ``SENTINEL`` setting the rq command line understands."""
    redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sentinels = env.get("REDIS_SENTINELS", "")
    if not sentinels:
        return {"REDIS_URL": redis_url}
    options = url_options(redis_url)
    return {
        "SENTINEL": {
            "INSTANCES": parse_sentinels(sentinels),
            "MASTER_NAME": env.get("REDIS_SENTINEL_MASTER", "mymaster"),
            "DB": options["db"],
            "USERNAME": options["username"],
            "PASSWORD": options["password"],
            "SOCKET_TIMEOUT": SOCKET_OPTIONS["socket_timeout"],
        }
    }
