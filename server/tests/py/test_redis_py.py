"""redis-py against tandem-server: the client most Python users have, including its parsers
for INFO, CLIENT LIST, CONFIG GET and RESP3.

The server binary comes from TANDEM_SERVER_BIN (default: target/debug/tandem-server under
the repository root, or under CARGO_TARGET_DIR). Without it the tests are skipped, unless
TANDEM_REQUIRE_REAL_DEPS=1, which makes a missing binary a failure.
"""

import datetime
import hashlib
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


def test_acl_user(server):
    """An application's own least-privilege user, made and used through redis-py's ACL API."""
    admin = redis.Redis(port=server.port, decode_responses=True)
    assert admin.acl_setuser(
        "app", enabled=True, passwords=["+s3cret"], keys=["app:*"], commands=["+get", "+set", "+del"]
    )
    user = admin.acl_getuser("app")
    assert user["enabled"] is True
    assert user["keys"] == ["~app:*"]
    once = Retry(NoBackoff(), 0)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port, username="app", password="wrong", retry=once).ping()
    for protocol in (2, 3):
        app = redis.Redis(
            port=server.port, username="app", password="s3cret", protocol=protocol, decode_responses=True
        )
        assert app.set("app:1", "v") is True
        assert app.get("app:1") == "v"
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to access one of the keys"):
            app.get("other")
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'flushall' command"):
            app.flushall()
        app.close()
    entries = admin.acl_log()
    assert {e["reason"] for e in entries} >= {"key", "command", "auth"}
    assert all(e["username"] == "app" for e in entries)
    assert admin.acl_deluser("app") == 1
    admin.close()


# Scripting and functions: what redis-py builds on EVAL / EVALSHA / SCRIPT and FUNCTION / FCALL.


def test_lock(r):
    lock = r.lock("res", timeout=10)
    assert lock.acquire(blocking=False) is True
    assert lock.owned() is True
    token = r.get("res")
    assert token is not None and 9000 < r.pttl("res") <= 10000
    # A second client's lock on the same name retries until its blocking timeout, then gives
    # up (redis-py stops when the next retry would pass the timeout).
    other = r.lock("res", timeout=10, blocking_timeout=0.3, sleep=0.05)
    started = time.monotonic()
    assert other.acquire() is False
    assert time.monotonic() - started >= 0.2
    assert other.locked() is True and other.owned() is False
    # extend adds to the remaining time; replace_ttl sets it; reacquire resets it to timeout.
    assert lock.extend(20) is True
    assert r.pttl("res") > 20000
    assert lock.extend(2, replace_ttl=True) is True
    assert r.pttl("res") <= 2000
    assert lock.reacquire() is True
    assert 9000 < r.pttl("res") <= 10000
    assert r.get("res") == token
    # Extending, reacquiring or releasing a lock another owner took over fails (the scripts
    # compare the token) and leaves the owner's value; release forgets the token last.
    r.set("res", "someone-else")
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.extend(5)
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.reacquire()
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.release()
    assert r.get("res") == "someone-else"
    r.delete("res")
    # A lock whose holder never releases it expires; a blocking acquire then gets it.
    short = r.lock("res", timeout=0.3)
    assert short.acquire(blocking=False) is True
    waiter = r.lock("res", timeout=10, blocking_timeout=5, sleep=0.02)
    assert waiter.acquire() is True
    assert waiter.owned() is True and short.owned() is False
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        short.release()
    waiter.release()
    assert r.exists("res") == 0
    with r.lock("ctx", timeout=5) as held:
        assert held.owned() is True
        assert r.lock("ctx", blocking=False).acquire() is False
    assert r.exists("ctx") == 0


def test_eval(r):
    assert r.eval("return {KEYS[1], ARGV[1], #KEYS, #ARGV}", 1, "k", "v") == ["k", "v", 1, 1]
    assert r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "k") == "v"
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "missing") is None
    assert r.eval("return 3.9", 0) == 3
    assert r.eval("return {1, 2, nil, 4}", 0) == [1, 2]
    assert r.eval("return redis.status_reply('FINE')", 0) == "FINE"
    with pytest.raises(redis.ResponseError, match=r"^MYERR custom$"):
        r.eval("return redis.error_reply('MYERR custom')", 0)
    with pytest.raises(redis.ResponseError, match=r"value is not an integer or out of range script: \w+, on @user_script:1\."):
        r.eval("return redis.call('INCR', KEYS[1])", 1, "k")
    with pytest.raises(redis.ResponseError, match="Script attempted to access nonexistent global variable 'os'"):
        r.eval("return os.time()", 0)
    assert r.eval_ro("return redis.call('GET', KEYS[1])", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only scripts"):
        r.eval_ro("return redis.call('DEL', KEYS[1])", 1, "k")
    assert r.get("k") == "v"
    sha = r.script_load("return ARGV[1] .. ARGV[2]")
    assert sha == hashlib.sha1(b"return ARGV[1] .. ARGV[2]").hexdigest()
    assert r.evalsha(sha, 0, "a", "b") == "ab"
    assert r.evalsha_ro(sha, 0, "c", "d") == "cd"


def test_eval_resp3(server):
    r3 = redis.Redis(port=server.port, protocol=3, decode_responses=True)
    r3.hset("h", mapping={"f1": "v1", "f2": "v2"})
    assert r3.eval("redis.setresp(3); return redis.call('HGETALL', KEYS[1])", 1, "h") == {"f1": "v1", "f2": "v2"}
    assert r3.eval("return redis.call('HGETALL', KEYS[1])", 1, "h") == ["f1", "v1", "f2", "v2"]
    r3.zadd("z", {"m": 1.5})
    assert r3.eval("redis.setresp(3); return redis.call('ZSCORE', KEYS[1], 'm')", 1, "z") == 1.5
    assert r3.eval("redis.setresp(3); return {true, false}", 0) == [True, False]
    assert r3.eval("return {map={a=1}}", 0) == {"a": 1}
    assert r3.eval("return {double=2.5}", 0) == 2.5
    assert r3.eval("redis.setresp(3); return redis.call('GET', 'missing')", 0) is None
    r3.close()


def test_register_script(r):
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr_by.sha == hashlib.sha1(b"return redis.call('INCRBY', KEYS[1], ARGV[1])").hexdigest()
    # Not loaded yet: the first call's EVALSHA gets NOSCRIPT and redis-py loads the script.
    assert r.script_exists(incr_by.sha) == [False]
    assert incr_by(keys=["n"], args=[5]) == 5
    assert r.script_exists(incr_by.sha) == [True]
    assert incr_by(keys=["n"], args=[1]) == 6
    r.script_flush()
    assert r.script_exists(incr_by.sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError, match="No matching script"):
        r.evalsha(incr_by.sha, 1, "n", 1)
    assert incr_by(keys=["n"], args=[2]) == 8
    assert r.script_exists(incr_by.sha) == [True]
    # In a pipeline redis-py checks SCRIPT EXISTS and loads missing scripts before EXEC.
    r.script_flush()
    with r.pipeline() as p:
        incr_by(keys=["n"], args=[1], client=p)
        incr_by(keys=["m"], args=[10], client=p)
        p.get("n")
        assert p.execute() == [9, 10, "9"]
    r.script_flush()
    with r.pipeline(transaction=False) as p:
        for _ in range(3):
            incr_by(keys=["m"], args=[1], client=p)
        assert p.execute() == [11, 12, 13]
    # A script error inside a transaction is that command's result; the others run.
    fail = r.register_script("return redis.call('INCR', KEYS[1])")
    r.set("s", "text")
    with r.pipeline() as p:
        fail(keys=["s"], client=p)
        incr_by(keys=["m"], args=[1], client=p)
        results = p.execute(raise_on_error=False)
    assert isinstance(results[0], redis.ResponseError)
    assert "not an integer" in str(results[0])
    assert results[1] == 14


FUNCTION_LIBRARY = """#!lua name=pylib
redis.register_function('py_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function{
  function_name = 'py_get',
  callback = function(keys) return redis.call('GET', keys[1]) end,
  flags = {'no-writes'},
  description = 'reads a key',
}
"""


def test_functions(r):
    assert r.function_flush() is True
    assert r.function_load(FUNCTION_LIBRARY) == "pylib"
    with pytest.raises(redis.ResponseError, match="Library 'pylib' already exists"):
        r.function_load(FUNCTION_LIBRARY)
    assert r.function_load(FUNCTION_LIBRARY, replace=True) == "pylib"
    assert r.fcall("py_set", 1, "k", "v") == "OK"
    assert r.fcall("py_get", 1, "k") == "v"
    assert r.fcall_ro("py_get", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Can not execute a script with write flag using \\*_ro command"):
        r.fcall_ro("py_set", 1, "k", "w")
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("nosuch", 0)
    with pytest.raises(redis.ResponseError, match="No functions registered"):
        r.function_load("#!lua name=empty\nlocal x = 1")

    [lib] = r.function_list()
    lib = dict(zip(lib[::2], lib[1::2]))
    assert lib["library_name"] == "pylib"
    assert lib["engine"] == "LUA"
    functions = {}
    for f in lib["functions"]:
        f = dict(zip(f[::2], f[1::2]))
        functions[f["name"]] = f
    assert functions["py_get"]["description"] == "reads a key"
    assert functions["py_get"]["flags"] == ["no-writes"]
    assert functions["py_set"]["description"] is None
    assert functions["py_set"]["flags"] == []
    [with_code] = r.function_list(library="py*", withcode=True)
    assert with_code[-2:] == ["library_code", FUNCTION_LIBRARY]
    assert r.function_list(library="nomatch*") == []

    stats = r.function_stats()
    assert stats[0:2] == ["running_script", None]
    assert stats[3] == ["LUA", ["libraries_count", 1, "functions_count", 2]]

    # DUMP, FLUSH, RESTORE: the libraries come back and run; the policies on collision.
    payload = r.function_dump()
    assert isinstance(payload, bytes) and len(payload) > 10
    assert r.function_flush() is True
    assert r.function_list() == []
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("py_get", 1, "k")
    assert r.function_restore(payload) is True
    assert r.fcall("py_get", 1, "k") == "v"
    with pytest.raises(redis.ResponseError, match="Library pylib already exists"):
        r.function_restore(payload)
    with pytest.raises(redis.ResponseError, match="Library pylib already exists"):
        r.function_restore(payload, policy="APPEND")
    assert r.function_restore(payload, policy="REPLACE") is True
    assert r.function_load("#!lua name=extra\nredis.register_function('extra_f', function() return 1 end)") == "extra"
    assert r.function_restore(payload, policy="FLUSH") is True
    assert [l[1] for l in r.function_list()] == ["pylib"]
    with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
        r.function_restore(payload[:-1] + bytes([payload[-1] ^ 1]))
    assert r.function_delete("pylib") is True
    with pytest.raises(redis.ResponseError, match="Library not found"):
        r.function_delete("pylib")
    assert r.function_list() == []


def consumer_group_workflow(r):
    """Two consumers share a stream through a group; one crashes holding entries, the other
    claims them (XAUTOCLAIM after they went idle, then XCLAIM) and finishes the work. Returns
    what a client sees at each step, without clocks (idle times, delivery times)."""
    seen = []
    r.xgroup_create("jobs", "workers", id="0", mkstream=True)
    for i in range(1, 11):
        r.xadd("jobs", {"job": str(i), "payload": "x" * i}, id=f"{i}-0")
    seen.append(r.xreadgroup("workers", "alice", {"jobs": ">"}, count=3))
    seen.append(r.xreadgroup("workers", "bob", {"jobs": ">"}, count=3))
    seen.append(r.xack("jobs", "workers", "1-0", "2-0"))
    # bob crashes with 4-0, 5-0 and 6-0 pending.
    summary = r.xpending("jobs", "workers")
    seen.append(summary)
    time.sleep(0.05)
    claimed = r.xautoclaim("jobs", "workers", "alice", min_idle_time=40, start_id="0-0", count=2)
    seen.append(claimed)
    seen.append(r.xclaim("jobs", "workers", "alice", min_idle_time=0, message_ids=["6-0"], justid=True))
    rows = r.xpending_range("jobs", "workers", min="-", max="+", count=10)
    seen.append([(row["message_id"], row["consumer"], row["times_delivered"]) for row in rows])
    seen.append(r.xreadgroup("workers", "alice", {"jobs": "0"}))
    seen.append(r.xack("jobs", "workers", "3-0", "4-0", "5-0", "6-0"))
    seen.append(r.xreadgroup("workers", "alice", {"jobs": ">"}, count=100))
    seen.append(r.xack("jobs", "workers", *[f"{i}-0" for i in range(7, 11)]))
    seen.append(r.xreadgroup("workers", "alice", {"jobs": ">"}, block=20))
    groups = r.xinfo_groups("jobs")
    seen.append(groups)
    consumers = r.xinfo_consumers("jobs", "workers")
    seen.append([(c["name"], c["pending"]) for c in consumers])
    seen.append(r.xgroup_delconsumer("jobs", "workers", "bob"))
    info = r.xinfo_stream("jobs")
    seen.append({k: v for k, v in info.items() if not k.startswith("radix-tree")})
    seen.append(r.xtrim("jobs", maxlen=5))
    seen.append(r.xrange("jobs"))
    return seen


def test_consumer_group_workflow_matches_redis(r):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("TANDEM_REQUIRE_REAL_DEPS") == "1":
            pytest.fail("redis-server not found and TANDEM_REQUIRE_REAL_DEPS=1")
        pytest.skip("redis-server not found")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tandem-py-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        reference = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                reference.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        want = consumer_group_workflow(reference)
        got = consumer_group_workflow(r)
        assert got == want
        # The crash/claim cycle did what it says: alice acked bob's jobs and the rest, and
        # nothing is left pending.
        assert (want[8], want[10]) == (4, 4)
        assert want[12][0]["pending"] == 0
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def test_keyspace_notifications(r):
    """The cache-invalidation pattern: a pubsub listener on keyspace events sees writes and
    expiries of the keys it watches, through redis-py's PubSub."""
    r.config_set("notify-keyspace-events", "KEA")
    p = r.pubsub(ignore_subscribe_messages=True)
    p.psubscribe("__keyspace@0__:cache:*")

    def next_message():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = p.get_message(timeout=1.0)
            if m is not None:
                return (m["channel"], m["data"])
        raise AssertionError("no notification within 10 s")

    r.set("cache:a", "1")
    r.hset("cache:h", "f", "v")
    r.pexpire("cache:a", 1)
    r.delete("cache:h")
    assert next_message() == ("__keyspace@0__:cache:a", "set")
    assert next_message() == ("__keyspace@0__:cache:h", "hset")
    assert next_message() == ("__keyspace@0__:cache:a", "expire")
    assert next_message() == ("__keyspace@0__:cache:h", "del")
    # Nobody reads cache:a: the active expiry cycle removes it and says so.
    assert next_message() == ("__keyspace@0__:cache:a", "expired")
    p.close()
    r.config_set("notify-keyspace-events", "")



def test_resp3_client_tracking(server, r):
    """Client-side caching as redis-py's RESP3 connection sees it: after CLIENT TRACKING ON,
    another client's write to a key this connection read arrives as an `invalidate` push,
    handed to the parser's invalidation handler (redis-py's own cache uses this path but
    refuses servers that report a version below 7.4, Redis 7.0 included)."""
    tracked = redis.Redis(
        port=server.port, protocol=3, decode_responses=True, single_connection_client=True
    )
    pushes = []
    # The connection's RESP3 parser routes `invalidate` pushes to this handler.
    tracked.connection._parser.set_invalidation_push_handler(pushes.append)
    assert tracked.client_tracking_on() in (True, "OK")
    r.set("cached", "1")
    assert tracked.get("cached") == "1"
    r.set("cached", "2")
    deadline = time.monotonic() + 10
    while not pushes:
        assert time.monotonic() < deadline, "no invalidation within 10 s"
        tracked.ping()
    assert pushes[0] == ["invalidate", ["cached"]]
    assert tracked.get("cached") == "2"
    info = tracked.client_trackinginfo()
    assert "on" in info["flags"]
    tracked.close()


def wait_for(what, cond, within=30):
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write_through(client, key, value, within=30):
    """SET through a Sentinel-managed client, retrying while it finds the new master."""
    deadline = time.monotonic() + within
    while True:
        try:
            return client.set(key, value)
        except (redis.exceptions.ConnectionError, redis.exceptions.ReadOnlyError):
            assert time.monotonic() < deadline, "the client never found the new master"
            time.sleep(0.05)


def test_sentinel_clients_follow_a_switchover_and_a_failover():
    from redis.sentinel import Sentinel

    ports = [free_port() for _ in range(3)]
    a = Server("--sentinel-port", str(ports[0]))
    b = Server("--sentinel-port", str(ports[1]), "--replicaof", "127.0.0.1", str(a.port))
    c = Server("--sentinel-port", str(ports[2]), "--replicaof", "127.0.0.1", str(a.port))
    direct = {s.port: redis.Redis(port=s.port, decode_responses=True) for s in (a, b, c)}
    try:
        sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=2)
        wait_for("both replicas online", lambda: len(sentinel.discover_slaves("mymaster")) == 2)
        assert sentinel.discover_master("mymaster") == ("127.0.0.1", a.port)
        master = sentinel.master_for("mymaster", socket_timeout=2, decode_responses=True)
        assert master.set("k", "1")
        replica = sentinel.slave_for("mymaster", socket_timeout=2, decode_responses=True)
        wait_for("the write on a replica", lambda: replica.get("k") == "1")

        # A switchover, as the operator makes one: b promoted, a and c follow it.
        direct[b.port].execute_command("REPLICAOF", "NO", "ONE")
        direct[a.port].execute_command("REPLICAOF", "127.0.0.1", b.port)
        direct[c.port].execute_command("REPLICAOF", "127.0.0.1", b.port)
        wait_for("every endpoint to name b", lambda: sentinel.discover_master("mymaster") == ("127.0.0.1", b.port))
        write_through(master, "k", "2")
        assert direct[b.port].get("k") == "2"

        # A failover: b dies, c is promoted and a follows it; b's endpoint is gone too.
        b.stop()
        direct[c.port].execute_command("REPLICAOF", "NO", "ONE")
        direct[a.port].execute_command("REPLICAOF", "127.0.0.1", c.port)
        wait_for("the endpoints to name c", lambda: sentinel.discover_master("mymaster") == ("127.0.0.1", c.port))
        write_through(master, "k", "3")
        assert direct[c.port].get("k") == "3"
        wait_for("a, the one replica left", lambda: sentinel.discover_slaves("mymaster") == [("127.0.0.1", a.port)])
    finally:
        for client in direct.values():
            client.close()
        for s in (a, b, c):
            if s.proc.poll() is None:
                s.stop()
