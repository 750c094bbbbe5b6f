"""redis-py against tandem-server: the client most Python users have, including its parsers
for INFO, CLIENT LIST, CONFIG GET and RESP3.

The server binary comes from TANDEM_SERVER_BIN (default: target/debug/tandem-server under
the repository root, or under CARGO_TARGET_DIR). Without it the tests are skipped, unless
TANDEM_REQUIRE_REAL_DEPS=1, which makes a missing binary a failure.
"""

import datetime
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

redis = pytest.importorskip("redis")
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[3]


def server_binary():
    env = os.environ.get("TANDEM_SERVER_BIN")
    if env:
        return pathlib.Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = pathlib.Path(target) if target else REPO / "target"
    return base / "debug" / "tandem-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A tandem-server process on a free port, stopped by `stop`."""

    def __init__(self, *extra):
        binary = server_binary()
        if not binary.is_file():
            if os.environ.get("TANDEM_REQUIRE_REAL_DEPS") == "1":
                pytest.fail(f"{binary} not found and TANDEM_REQUIRE_REAL_DEPS=1")
            pytest.skip(f"tandem-server binary not found at {binary}; build it or set TANDEM_SERVER_BIN")
        self.port = free_port()
        # A scratch working directory, so nothing the server writes lands in the checkout.
        self.dir = tempfile.mkdtemp(prefix="tandem-py-")
        self.proc = subprocess.Popen(
            [str(binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *extra],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, "tandem-server exited during startup"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "tandem-server did not start"
                time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def r(server):
    client = redis.Redis(port=server.port, decode_responses=True)
    yield client
    client.close()


def test_strings(r):
    assert r.ping() is True
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.get("missing") is None
    assert r.set("k", "w", get=True) == "v"
    assert r.set("k", "x", nx=True) is None
    assert r.set("n", 1, ex=100) is True
    assert 99 <= r.ttl("n") <= 100
    assert r.incr("n") == 2
    assert r.incrby("n", 10) == 12
    assert r.decr("n") == 11
    assert r.incrbyfloat("f", 0.1) == pytest.approx(0.1)
    assert r.incrbyfloat("f", 0.2) == 0.3
    assert r.get("f") == "0.3"
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "c") == ["1", "2", None]
    assert r.msetnx({"a": "x", "z": "y"}) is False
    assert r.append("s", "Hello") == 5
    assert r.append("s", " World") == 11
    assert r.strlen("s") == 11
    assert r.getrange("s", -5, -1) == "World"
    assert r.setrange("s", 6, "Redis") == 11
    assert r.getdel("s") == "Hello Redis"
    assert r.getex("k", px=100000) == "w"
    assert r.pttl("k") > 0
    assert r.getex("k", persist=True) == "w"
    assert r.ttl("k") == -1
    assert r.setbit("bits", 7, 1) == 0
    assert r.getbit("bits", 7) == 1
    assert r.bitcount("bits") == 1
    assert r.bitcount("bits", 0, 7, mode="BIT") == 1
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("k")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")


def test_binary_values(server):
    raw = redis.Redis(port=server.port)
    value = bytes(range(256))
    raw.set(b"\x00key\xff", value)
    assert raw.get(b"\x00key\xff") == value
    raw.close()


def test_keys_and_databases(r):
    r.mset({"foo": 1, "foobar": 2, "bar": 3})
    assert sorted(r.keys("foo*")) == ["foo", "foobar"]
    assert sorted(r.scan_iter(match="*", count=1)) == ["bar", "foo", "foobar"]
    assert sorted(r.scan_iter(_type="string")) == ["bar", "foo", "foobar"]
    assert r.exists("foo", "bar", "nope") == 2
    assert r.type("foo") == "string"
    assert r.expire("foo", 100) is True
    assert r.expire("foo", 50, gt=True) is False
    assert r.persist("foo") is True
    assert r.rename("foo", "foo2") is True
    assert r.renamenx("foo2", "bar") is False
    assert r.copy("bar", "bar2") is True
    assert r.object("encoding", "bar") == "int"
    assert r.dbsize() == 4
    assert r.move("bar2", 1) is True
    assert r.swapdb(0, 1) is True
    assert r.dbsize() == 1
    assert r.randomkey() == "bar2"
    assert r.delete("bar2", "nope") == 1
    assert r.flushall() is True
    assert r.dbsize() == 0


def test_transactions_and_pipelines(r):
    with r.pipeline(transaction=True) as p:
        p.set("x", 41).incr("x").get("x")
        assert p.execute() == [True, 42, "42"]

    def double(pipe):
        cur = int(pipe.get("x"))
        pipe.multi()
        pipe.set("x", cur * 2)

    r.transaction(double, "x")
    assert r.get("x") == "84"
    with r.pipeline(transaction=False) as p:
        for i in range(100):
            p.incr("counter")
        assert p.execute()[-1] == 100


def test_server_commands(r):
    info = r.info()
    assert info["redis_version"] == "7.0.15"
    assert "used_memory" in info
    r.set("k", "v")
    assert r.info("keyspace")["db0"]["keys"] == 1
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert r.config_set("repl-timeout", "1800") is True
    assert r.config_get("repl-timeout") == {"repl-timeout": "1800"}
    assert r.config_set("client-output-buffer-limit", "slave 0 0 0") is True
    with pytest.raises(redis.ResponseError, match="Unknown option"):
        r.config_set("no-such-option", "1")
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 5
    assert isinstance(r.lastsave(), datetime.datetime)
    assert r.client_setname("py") is True
    assert r.client_getname() == "py"
    me = r.client_info()
    assert me["name"] == "py"
    assert any(c["name"] == "py" for c in r.client_list())
    assert r.client_id() == int(me["id"])
    assert r.echo("hi") == "hi"


def test_resp3(server):
    r3 = redis.Redis(port=server.port, protocol=3, decode_responses=True)
    assert r3.set("k", "v") is True
    assert r3.get("k") == "v"
    assert r3.get("missing") is None
    assert r3.config_get("hz") == {"hz": "10"}
    assert r3.incrbyfloat("f", 1.5) == 1.5
    assert r3.info("server")["redis_version"] == "7.0.15"
    r3.close()


def test_auth():
    s = Server("--requirepass", "secret")
    # redis-py retries failed connections with backoff by default; one try is enough here.
    once = Retry(NoBackoff(), 0)
    try:
        anonymous = redis.Redis(port=s.port, retry=once)
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("k")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=s.port, password="wrong", retry=once).ping()
        assert redis.Redis(port=s.port, password="secret").ping() is True
        assert redis.Redis(port=s.port, username="default", password="secret", protocol=3).ping() is True
    finally:
        s.stop()
