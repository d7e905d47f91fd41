"""``containerd-shim-stub-v2``: the binary protocol containerd drives.

``start`` and ``delete`` run inside containerd's deadlines (``Tasks.Create``; the 5 s
cleanup timeout) in a fresh interpreter, so this module imports only the standard
library: no asyncio, no protobuf (``DeleteResponse`` is encoded by hand). The daemon lives
in :mod:`harness.shim.daemon`.

Pitfalls honoured (containerd-shim-protocol.md §9): nothing but the address on stdout;
bind and listen before printing; ``address`` written atomically without a newline; the
daemon never inherits containerd's output pipe; ``delete`` is idempotent and, like runc's,
leaves a live daemon alone (that is what makes an ignored Shutdown a leak).

``-info`` (containerd v2.2+ asks it before every ``Tasks.Create`` until it gets an answer,
and logs "failed to load runtime info" otherwise): the runtime's ``RuntimeInfo``
(``harness/protos/runtime_info.proto``), also encoded by hand.
"""

from __future__ import annotations

import os
import sys
import time

from harness.shim.identity import is_stub
from harness.shim.paths import ShimPaths, owner_lock

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    #: How ``start`` gets a daemon running on its socket: ``(sock, devnull, stderr, flag
    #: argv)`` -> pid. Cold: :func:`spawn_cold` (a fresh interpreter); the fork server
    #: passes its own, which forks the daemon from a warm worker.
    Spawn = Callable[[socket.socket, int, int, list[str]], int]
SIGKILL = 9  # signal.SIGKILL without importing signal (and enum) in delete


class suppress:  # lower case: reads like the contextlib original it stands in for
    """``contextlib.suppress`` without importing contextlib (functools, collections: ~4 ms
    of a cold ``start``/``delete``)."""

    __slots__ = ("kinds",)

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


BOOL_FLAGS = {"debug", "v", "info"}

#: The runtime name containerd knows the stub by (``RuntimeInfo.name``; runc's shim answers
#: ``io.containerd.runc.v2`` the same way). ``-info`` gets no other argument to learn it from.
RUNTIME_NAME = "io.containerd.stub.v2"


def parse_flags(argv: list[str]) -> tuple[dict[str, str], str]:
    """Go ``flag`` syntax: ``-name value``, ``-name=value``, ``--name``; the action word last."""
    flags: dict[str, str] = {}
    action = ""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and len(arg) > 1:
            name = arg.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif name in BOOL_FLAGS or i + 1 >= len(argv):
                value = "true"
            else:
                i += 1
                value = argv[i]
            flags[name] = value
        else:
            action = arg
        i += 1
    return flags, action


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_delete_response(pid: int, exit_status: int, exited_ns: int) -> bytes:
    """``containerd.task.v2.DeleteResponse{pid=1, exit_status=2, exited_at=3}`` by hand."""
    seconds, nanos = divmod(exited_ns, 1_000_000_000)
    ts = b"\x08" + _varint(seconds) + (b"\x10" + _varint(nanos) if nanos else b"")
    out = b""
    if pid:
        out += b"\x08" + _varint(pid)
    if exit_status:
        out += b"\x10" + _varint(exit_status)
    return out + b"\x1a" + _varint(len(ts)) + ts


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_runtime_info(name: str, version: str, revision: str, options: bytes = b"") -> bytes:
    """``containerd.types.RuntimeInfo{name=1, version=2{version=1, revision=2}, options=3}``.

    ``options`` is what containerd wrote on stdin: the task's runtime options as a
    serialized ``google.protobuf.Any``, echoed back unchanged as field 3 (runc's shim echoes
    them too); empty when containerd sent none. No features (field 4): the stub has no OCI
    runtime whose features it could describe, and containerd asks for them only for idmap
    mounts. No annotations (field 5): the stub handles no mount type itself.
    """
    ver = b""
    if version:
        ver += _field(1, version.encode())
    if revision:
        ver += _field(2, revision.encode())
    out = _field(1, name.encode()) + _field(2, ver)
    if options:
        out += _field(3, options)
    return out


def _package_version() -> str:
    """reconverge's version; importlib.metadata only here (``-info`` runs once per runtime
    per containerd, never on the start/delete path)."""
    try:
        from importlib.metadata import version

        return version("reconverge")
    except Exception:
        return "unknown"


def info() -> int:
    """``-info``: read the options containerd pipes in, print our ``RuntimeInfo``, exit 0."""
    chunks: list[bytes] = []
    with suppress(OSError):  # fd 0, not sys.stdin: the fork server's worker dup2s onto it
        while chunk := os.read(0, 65536):
            chunks.append(chunk)
    options = b"".join(chunks)
    sys.stdout.buffer.write(encode_runtime_info(RUNTIME_NAME, _package_version(), "", options))
    sys.stdout.flush()
    return 0


def _paths(flags: dict[str, str]) -> ShimPaths:
    return ShimPaths.of(flags.get("address", ""), flags.get("namespace", ""), flags.get("id", ""))


def _listening(path: str) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def start(flags: dict[str, str], spawn: Spawn | None = None) -> int:
    """Bind the socket, spawn the daemon with it, print the address, exit 0."""
    import socket

    with suppress(OSError):
        sys.stdin.buffer.read()  # task options (unused); containerd closes stdin
    paths = _paths(flags)
    address = f"unix://{paths.socket}"
    os.makedirs(paths.dir, mode=0o700, exist_ok=True)
    # Under the owner lock: an exiting daemon of the same id (a re-create right after a
    # delete) removes its socket under it too, so the probe below sees either that daemon
    # still serving (never once it answered Shutdown: it retires its socket first) or a
    # free path, and the old daemon's cleanup can never remove what is bound here.
    with owner_lock(paths):
        if _listening(paths.socket):
            sys.stdout.write(address)  # grouping / restart: the daemon already serves
            return 0
        with suppress(FileNotFoundError):
            os.unlink(paths.socket)  # a dead daemon's file (panic, kill): nobody answers it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(paths.socket)
        os.chmod(paths.socket, 0o600)
        sock.listen(64)
        tmp = ".address"
        with open(tmp, "w") as f:  # cwd is the bundle
            f.write(address)
        os.replace(tmp, "address")
        devnull = os.open(os.devnull, os.O_RDWR)
        stderr = devnull
        with suppress(OSError):
            stderr = os.open("log", os.O_WRONLY | os.O_NONBLOCK)
        pid = (spawn or spawn_cold)(sock, devnull, stderr, sys.argv[1:-1])
        with open(paths.pidfile, "w") as f:
            f.write(str(pid))
    sys.stdout.write(address)
    sys.stdout.flush()
    return 0


def spawn_cold(sock: socket.socket, devnull: int, stderr: int, argv: list[str]) -> int:
    """``python -m harness.shim.daemon <flags>`` in its own session, with the socket."""
    env = dict(os.environ, RECONVERGE_SHIM_FD=str(sock.fileno()))
    env.setdefault("PYTHONWARNINGS", "ignore")
    os.set_inheritable(sock.fileno(), True)  # the only fd the daemon inherits besides 0-2
    # posix_spawn, not subprocess: importing subprocess alone cost ~10 ms of containerd's wait
    return os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", "harness.shim.daemon", *argv],
        env,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),  # never containerd's output pipe
            (os.POSIX_SPAWN_DUP2, stderr, 2),
        ],
        setsid=True,
    )


def _delete_proxy_of_dead(paths: ShimPaths) -> None:
    """A relayed daemon that died without its clean exit leaves its toxiproxy proxy behind.

    Only then is the relay module (asyncio, http.client) imported: ``delete`` of every other
    shim stays as lean as before.
    """
    try:
        with open(paths.registry) as f:
            text = f.read()
    except OSError:
        return
    if '"proxy"' not in text:  # cheap test before json: almost no shim is relayed
        return
    import json

    from harness.shim.relay import delete_proxy

    with suppress(ValueError, KeyError, TypeError):
        entry = json.loads(text)
        delete_proxy(entry["toxiproxy"], entry["proxy"])


def _kill_orphaned_tasks(flags: dict[str, str], daemon_pid: int) -> None:
    """SIGKILL the task processes a dead daemon left (``runc delete --force`` does the same
    to a dead shim's container). Found by the marker the daemon put in their environment;
    the /proc scan runs only on this path, never after a clean exit."""
    from harness.shim.identity import task_procs

    key = (flags.get("namespace", ""), flags.get("id", ""))
    for t in task_procs():
        if (t.namespace, t.container_id) == key and t.shim_pid == daemon_pid:
            with suppress(ProcessLookupError):
                os.kill(t.pid, SIGKILL)


def _pidfile(paths: ShimPaths) -> int:
    """The daemon pid ``start`` (or the daemon) wrote; 0 when there is none."""
    with suppress(OSError, ValueError), open(paths.pidfile) as f:
        return int(f.read().strip())
    return 0


def delete(flags: dict[str, str]) -> int:
    """Report the exit containerd records, like runc's shim: *without* killing the daemon.

    runc's ``delete`` cleans the container but never kills the shim process; that is why a
    Shutdown containerd ignored leaks the shim (seed c). Set ``RECONVERGE_SHIM_DELETE_KILLS=1``
    to reap the daemon here instead. Stale files of a daemon that is gone are removed, and
    the task processes of a daemon that died without its clean exit are killed, as
    ``runc delete --force`` kills a dead shim's container.
    """
    paths = _paths(flags)
    pid = _pidfile(paths)
    alive = bool(pid) and is_stub(pid)
    if alive and os.environ.get("RECONVERGE_SHIM_DELETE_KILLS") == "1":
        with suppress(ProcessLookupError):
            os.kill(pid, SIGKILL)
        deadline = time.monotonic() + 2.0
        while is_stub(pid) and time.monotonic() < deadline:
            time.sleep(0.005)  # waiting on the kernel to reap; bounded
        alive = is_stub(pid)
    if not alive:
        if os.path.exists(paths.registry):  # the daemon died without its clean exit (panic, kill)
            _kill_orphaned_tasks(flags, pid)
        _delete_proxy_of_dead(paths)
        with owner_lock(paths):  # a start of the id since our look: its files, not stale ones
            if _pidfile(paths) == pid:
                for p in (paths.socket, paths.control, paths.pidfile, paths.registry):
                    with suppress(FileNotFoundError):
                        os.unlink(p)
    sys.stdout.buffer.write(encode_delete_response(0, 137, time.time_ns()))
    sys.stdout.flush()
    return 0


def dispatch(flags: dict[str, str], action: str, spawn: Spawn | None = None) -> int:
    """Run one action of the binary protocol; the fork server calls this with its spawn."""
    if "v" in flags:
        sys.stdout.write("containerd-shim-stub-v2 (reconverge)\n")
        return 0
    if flags.get("info", "false").lower() in ("true", "t", "1"):  # a flag, as Go's shims
        return info()
    if action == "start":
        return start(flags, spawn)
    if action == "delete":
        return delete(flags)
    sys.stderr.write(f"containerd-shim-stub-v2: unknown action {action!r} (start|delete)\n")
    return 2


def main() -> int:
    """Entry point of the console script (the cold path)."""
    flags, action = parse_flags(sys.argv[1:])
    return dispatch(flags, action)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
