"""The HTTP control endpoint and its client, over a unix socket and over 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

import failpoints
from failpoints import ControlClient, FailpointHangTimeout, FailpointSyntaxError, serve
from failpoints.control import parse_address


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory under /tmp: unix socket paths must stay under 108 bytes."""
    path = tempfile.mkdtemp(prefix="fp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["unix", "tcp"])
def endpoint(
    request, registry, short_dir
) -> Iterator[tuple[failpoints.ControlServer, ControlClient]]:
    address = f"unix:{short_dir}/c.sock" if request.param == "unix" else "127.0.0.1:0"
    with serve(address, registry=registry) as server:
        yield server, ControlClient(server.address, timeout=10)


def raw(server: failpoints.ControlServer) -> http.client.HTTPConnection:
    """A plain http.client connection, as curl or a gofail client would talk."""
    ep = parse_address(server.address)
    if ep.path is None:
        return http.client.HTTPConnection(ep.host, ep.port, timeout=10)

    class Unix(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(10)
            self.sock.connect(ep.path)

    return Unix("localhost", timeout=10)


def test_set_get_count_status_clear_list(endpoint, registry):
    _, client = endpoint
    fp = registry.point("shim.Pause")
    client.set("shim.Pause", "1*off->2*error(boom)")
    assert client.get("shim.Pause") == "1*off->2*error(boom)"
    assert [fp.evaluate().kind for _ in range(2)] == ["off", "error"]
    assert client.count("shim.Pause") == 2
    st = client.status("shim.Pause")
    assert st == failpoints.Status(
        "shim.Pause", "1*off->2*error(boom)", "0*off->1*error(boom)", 2, 2
    )
    client.set("other", failpoints.parse("sleep(5)"))
    assert client.list() == {"other": "delay(5)", "shim.Pause": "1*off->2*error(boom)"}
    client.clear("shim.Pause")
    assert fp.evaluate() is None
    assert client.list() == {"other": "delay(5)", "shim.Pause": None}
    with pytest.raises(KeyError):
        client.get("shim.Pause")  # disabled
    assert client.count("shim.Pause") == 2  # counters stay readable after disable


def test_bad_term_surfaces_as_syntax_error(endpoint, registry):
    _, client = endpoint
    with pytest.raises(FailpointSyntaxError) as info:
        client.set("x", "50%3*bogus(")
    err = info.value
    assert (err.text, err.column, err.name) == ("50%3*bogus(", 6, "x")
    assert "unknown action 'bogus'" in str(err)
    assert registry.list_points() == {}


def test_unknown_points_are_key_errors(endpoint):
    _, client = endpoint
    for call in (client.get, client.count, client.status, client.clear, client.release):
        with pytest.raises(KeyError):
            call("nobody")
    with pytest.raises(ValueError, match="bad failpoint name"):
        client.set("a b", "off")  # refused before any request


def test_set_many_is_all_or_nothing(endpoint, registry):
    _, client = endpoint
    with pytest.raises(FailpointSyntaxError) as info:
        client.set_many({"a": "drop", "b": "3*4*off"})
    assert info.value.name == "b"
    assert registry.list_points() == {}
    client.set_many("a=drop;b=1*close")
    assert client.list() == {"a": "drop", "b": "1*close"}


def test_release_over_http_ends_a_hang(endpoint, registry):
    _, client = endpoint
    fp = registry.point("p")
    client.set("p", "hang")
    action = fp.evaluate()
    done = threading.Event()
    errors: list[BaseException] = []

    def wait():
        try:
            action.apply_sync(deadline=time.monotonic() + 30)
        except BaseException as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    assert not done.wait(0.05)  # blocked
    client.release("p")
    assert done.wait(10) and errors == []
    with pytest.raises(FailpointHangTimeout):
        fp.evaluate().apply_sync(deadline=time.monotonic() + 0.02)


def ask(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_gofail_verbs_over_plain_http(endpoint, registry):
    server, _ = endpoint
    registry.point("b")
    conn = raw(server)  # one keep-alive connection for every request below
    assert ask(conn, "PUT", "/a", b"1*error(x)\n") == (204, b"")
    assert ask(conn, "GET", "/") == (200, b"a=1*error(x)\nb=\n")
    assert ask(conn, "GET", "/a") == (200, b"1*error(x)")
    assert ask(conn, "GET", "/a/count") == (200, b"0")
    assert ask(conn, "PUT", "/a", b"1*bogus") == (
        400,
        b"bad failpoint term a='1*bogus' at column 3: unknown action 'bogus'\n",
    )
    assert ask(conn, "PUT", "/failpoints", b"a=drop;c=close") == (204, b"")
    assert ask(conn, "DELETE", "/c") == (204, b"")
    status, body = ask(conn, "DELETE", "/nobody")
    assert status == 404 and b"nobody" in body
    assert ask(conn, "GET", "/a/bogus")[0] == 404
    assert ask(conn, "POST", "/a/release", b"") == (204, b"")
    assert ask(conn, "PUT", "/a%20b", b"off")[0] == 400  # "a b" is no point name
    conn.close()
    assert registry.status("a").spec == "drop"
    assert registry.status("c").spec is None


def test_oversized_body_is_refused(endpoint, registry):
    server, _ = endpoint
    conn = raw(server)
    status, _ = ask(conn, "PUT", "/a", b"x" * (65 * 1024))
    conn.close()
    assert status == 413
    assert registry.list_points() == {}


def test_unix_socket_is_private_and_removed_on_close(registry, short_dir):
    path = f"{short_dir}/c.sock"
    server = serve(f"unix:{path}", registry=registry)
    assert server.address == f"unix:{path}"
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    server.close()
    server.close()  # idempotent
    assert not os.path.exists(path)


def test_stale_socket_is_replaced_live_one_refused(registry, short_dir):
    path = f"{short_dir}/c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    with serve(f"unix:{path}", registry=registry) as server:
        assert ControlClient(server.address).list() == {}
        with pytest.raises(OSError, match="already listens"):
            serve(f"unix:{path}", registry=registry)
    regular = f"{short_dir}/file"
    with open(regular, "w") as fh:
        fh.write("not a socket")
    with pytest.raises(FileExistsError):
        serve(f"unix:{regular}", registry=registry)
    assert os.path.isfile(regular)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0:0",
        "10.1.2.3:8080",
        "example.com:80",
        "[::]:0",
        "127.0.0.2:0",
        ":0",
        "unix:relative/c.sock",
        "unix:/" + "x" * 120,
        "127.0.0.1",
        "127.0.0.1:http",
        "127.0.0.1:70000",
    ],
)
def test_bad_addresses_are_refused(address, registry):
    with pytest.raises(ValueError):
        serve(address, registry=registry)


def test_non_loopback_message_says_why():
    with pytest.raises(ValueError, match="no authentication"):
        parse_address("0.0.0.0:0")


def test_localhost_and_port_in_address(registry):
    with serve("localhost:0", registry=registry) as server:
        host, _, port = server.address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert ControlClient(f"localhost:{port}").list() == {}
    with pytest.raises(ValueError, match="real port"):
        ControlClient("127.0.0.1:0")


def _ipv6_loopback_works() -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return True
    return False


@pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback here")
def test_ipv6_loopback(registry):
    with serve("[::1]:0", registry=registry) as server:
        assert server.address.startswith("[::1]:")
        client = ControlClient(server.address)
        client.set("p", "drop")
        assert client.get("p") == "drop"


def test_serves_the_default_registry_unless_told_otherwise(short_dir):
    with serve(f"unix:{short_dir}/d.sock") as server:
        ControlClient(server.address).set("fp.control.default", "1*drop")
    assert failpoints.status("fp.control.default").spec == "1*drop"


def test_commands_of_the_serving_process(registry):
    """``/~<command>``: JSON in, JSON out; a ValueError is a 400 with its message."""

    def echo(args):
        if "boom" in args:
            raise ValueError("no boom here")
        return {"got": args}

    with serve("127.0.0.1:0", registry=registry, commands={"echo": echo}) as server:
        client = ControlClient(server.address, timeout=10)
        assert client.command("echo", {"pid": 3}) == {"got": {"pid": 3}}
        assert client.command("echo") == {"got": {}}
        with pytest.raises(ValueError, match="no boom here"):
            client.command("echo", {"boom": 1})
        with pytest.raises(KeyError):
            client.command("nope")
        conn = raw(server)
        conn.request("GET", "/~echo")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b'{"got": {}}')
        conn.request("POST", "/~echo", body=b"[1]")
        resp = conn.getresponse()
        assert resp.status == 400 and b"JSON object" in resp.read()
        registry.enable("p", "off")  # points still route as before
        assert client.get("p") == "off"
