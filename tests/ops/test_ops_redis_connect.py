"""Redis by URL or through Sentinel, for the app, the rq CLI and the scheduler."""

import shutil
import socket
import subprocess
import time

import pytest

from provider_app.redis_connect import connect, parse_sentinels, rq_cli_settings, url_options


def test_sentinel_lists_parse_with_default_ports():
    assert parse_sentinels("s1:26380, s2") == [("s1", 26380), ("s2", 26379)]
    with pytest.raises(ValueError, match="host:port"):
        parse_sentinels("s1:notaport")


def test_the_url_still_gives_database_and_password():
    assert url_options("redis://:s3cret@ignored:6379/4") == {
        "db": 4, "username": None, "password": "s3cret"}
    assert url_options("redis://127.0.0.1:6379")["db"] == 0


def test_rq_cli_settings_follow_the_environment():
    assert rq_cli_settings({"REDIS_URL": "redis://r:6379/2"}) == {"REDIS_URL": "redis://r:6379/2"}
    settings = rq_cli_settings({"REDIS_URL": "redis://:pw@x/3", "REDIS_SENTINELS": "a:1,b:2",
                                "REDIS_SENTINEL_MASTER": "tl"})
    assert settings["SENTINEL"]["INSTANCES"] == [("a", 1), ("b", 2)]
    assert settings["SENTINEL"]["MASTER_NAME"] == "tl"
    assert settings["SENTINEL"]["DB"] == 3 and settings["SENTINEL"]["PASSWORD"] == "pw"
    assert "REDIS_URL" not in settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_real_sentinel_finds_the_master(app, redis_conn, tmp_path):
    """A sentinel on loopback watching the test Redis: the app reaches Redis through it."""
    master = redis_conn.connection_pool.connection_kwargs
    port = _free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor tltest {master.get('host', '127.0.0.1')} {master.get('port', 6379)} 1\n"
    )
    proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        db_index = master.get("db", 0)
        url = f"redis://127.0.0.1/{db_index}"
        while True:
            try:
                client = connect(url, f"127.0.0.1:{port}", "tltest")
                client.set("tl:sentinel-probe", "1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert redis_conn.get("tl:sentinel-probe") == b"1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
