"""The fork server: one warm interpreter per run that serves shim ``start``/``delete``.

Why: the cold stub pays a Python start-up three times per task life cycle (``start``, the
daemon with asyncio and protobuf, ``delete``), most of it inside containerd's deadlines.
This process imports all of that once; containerd execs the C launcher (``launcher.c``),
which hands argv, environment, working directory and stdio fds over this server's unix
socket.

Pre-forked **workers** take the connections: the server keeps :data:`POOL` idle workers
blocked in ``accept`` on its socket and forks a replacement each time one takes a
connection, so no ``fork`` is on the path of a request and the server itself never runs
request code (a slow ``delete`` never delays a ``start``). A worker runs exactly the code
of :mod:`harness.shim.main` with the request's argv, environment and fds. For ``start``
the worker **becomes the daemon**: it binds the socket, writes the pid file (its own
pid), prints the address, reports exit status 0 to the launcher, lets go of containerd's
pipes and the connection, and goes on as the daemon — no second fork either.

Why one server per run (not per containerd): a request carries everything that differs
between containerds (argv with ``-address``, the environment containerd passes, the bundle
as working directory), so one server serves the run's 1.6.20, its 2.x and every restart;
and the run is the janitor's unit, so a killed run's sweep removes the server (a
registered process group: idle and busy workers included) and every daemon it forked
(their environment carries the run's ``RECONVERGE_RUN_ID``, inherited from this server).

Isolation of a daemon (what a cold daemon gets from ``posix_spawn`` and a fresh
interpreter, done by hand in :func:`_become_daemon`): its own session and process group;
fds 0-2 as ``start`` chose (/dev/null, /dev/null, the bundle's log FIFO) plus the listening
socket, nothing else (the server's socket, the request connection and containerd's pipes
are closed); the request's environment; default signal dispositions; a fresh journal sink
under its own pid; ``random`` re-seeded; the failpoint registry reset and loaded from *its*
environment (``RECONVERGE_FAILPOINTS``, ``RECONVERGE_SEED`` as containerd passed them);
its process name ``rcv-shim``; and a fresh asyncio loop (this server never creates one: it
is a blocking loop, single-threaded, so ``fork`` is safe). Its parent is the fork server
(a cold daemon's is init once ``start`` exits); the server ignores SIGCHLD, so the kernel
reaps it, and nothing reads a daemon's parent.

Run: ``python -m harness.shim.forkserver <socket path>`` (:mod:`harness.shim.warm` does it).
"""

from __future__ import annotations

import array
import contextlib
import gc
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import warnings

# Pre-imported on purpose: everything a daemon and start/delete need, paid once per run.
import failpoints
import failpoints.control  # noqa: F401 - failpoints.serve imports it lazily
from harness import journal
from harness.shim import daemon, identity, main, relay  # noqa: F401 - relay: delete's path

MAGIC = b"RCV1"
POOL = 2  # idle workers: a start and a delete (seed b: two deletes) never wait for a fork
MAX_REQUEST = 4 << 20  # argv + environment; containerd's are a few kB
FDS = 3


class BadRequest(Exception):
    """A request that does not follow the wire format of ``launcher.c``."""


class Probe(Exception):
    """A connection closed before a byte: a readiness probe, not a request."""


class Request:
    """One launcher invocation: what containerd gave the shim binary."""

    __slots__ = ("argv", "cwd", "env", "fds")

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.fds = fds


def decode(body: bytes, fds: list[int]) -> Request:
    """The part after magic and length: ``u32 argc, u32 envc``, then NUL-ended strings."""
    if len(body) < 8:
        raise BadRequest("short header")
    argc, envc = struct.unpack_from("<II", body)
    parts = body[8:].split(b"\0")
    if len(parts) < 1 + argc + envc + 1 or parts[1 + argc + envc] != b"":
        raise BadRequest(f"expected {1 + argc + envc} strings")
    text = [p.decode("utf-8", "surrogateescape") for p in parts[: 1 + argc + envc]]
    env = {}
    for item in text[1 + argc :]:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return Request(text[1 : 1 + argc], env, text[0], fds)


def receive(conn: socket.socket) -> Request:
    """Read one request and its fds (closing the fds again if the request is bad)."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(8, socket.CMSG_SPACE(FDS * fds.itemsize))
    if not data and not ancdata:
        raise Probe()
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    try:
        while len(data) < 8:
            more = conn.recv(8 - len(data))
            if not more:
                raise BadRequest("closed in the header")
            data += more
        if data[:4] != MAGIC:
            raise BadRequest(f"bad magic {data[:4]!r}")
        (length,) = struct.unpack_from("<I", data, 4)
        if length > MAX_REQUEST:
            raise BadRequest(f"request of {length} bytes")
        chunks, got = [], 0
        while got < length:
            chunk = conn.recv(min(65536, length - got))
            if not chunk:
                raise BadRequest("closed in the body")
            chunks.append(chunk)
            got += len(chunk)
        if len(fds) != FDS:
            raise BadRequest(f"{len(fds)} fds, expected {FDS}")
        return decode(b"".join(chunks), list(fds))
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


def _close_all_but(keep: set[int]) -> None:
    """Close every fd not in ``keep`` (what a cold daemon never inherited)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class Worker:
    """Serves one request in a pre-forked process; reports the exit status."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.daemon: tuple[socket.socket, int, int, list[str]] | None = None

    def run(self) -> int:
        """Serve the request; for a ``start`` that succeeded, then serve as the daemon."""
        code = self.serve()
        if self.daemon is None or code != 0:
            return code
        return _become_daemon(self.conn, *self.daemon)

    def serve(self) -> int:
        journal.current().pid = os.getpid()  # records of this worker carry its own pid
        t0 = time.monotonic()
        try:
            req = receive(self.conn)
        except Probe:
            return 0
        except (OSError, BadRequest) as exc:
            journal.emit("shim-fork", "bad_request", error=str(exc))
            return 2
        flags, action = main.parse_flags(req.argv[1:])
        journal.emit("shim-fork", "request", action=action, id=flags.get("id", ""), pid=os.getpid())
        code = 1
        try:
            for target, fd in enumerate(req.fds):
                os.dup2(fd, target)  # inheritable: what the cold shim had as 0-2
            for fd in req.fds:
                if fd > 2:
                    os.close(fd)
            os.chdir(req.cwd)
            os.environ.clear()
            os.environ.update(req.env)
            sys.argv = list(req.argv)
            code = main.dispatch(flags, action, spawn=self.spawn_self)
        except BaseException:  # one line per frame on containerd's stderr, as a cold shim
            with contextlib.suppress(OSError):
                traceback.print_exc()
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
                sys.stderr.flush()
            if self.daemon is not None:  # let go of containerd's pipes before it reads EOF
                _, devnull, stderr, _ = self.daemon
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                os.dup2(stderr, 2)
            with contextlib.suppress(OSError):
                self.conn.sendall(struct.pack("<i", code))
            journal.emit(
                "shim-fork",
                "done",
                action=action,
                id=flags.get("id", ""),
                code=code,
                ms=round((time.monotonic() - t0) * 1000, 1),
            )
        return code

    def spawn_self(self, sock: socket.socket, devnull: int, stderr: int, argv: list[str]) -> int:
        """``start``'s spawn step, warm: this very process will be the daemon."""
        identity.set_name()  # from the pid file on, ``delete`` must see a live stub here
        self.daemon = (sock, devnull, stderr, argv)
        return os.getpid()


def _become_daemon(
    conn: socket.socket, sock: socket.socket, devnull: int, stderr: int, argv: list[str]
) -> int:
    """The worker after a successful ``start``: shed the server and the request, then serve."""
    os.setsid()
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # never containerd's output pipe
    os.dup2(stderr, 2)
    conn.close()
    journal.current().close()  # the server's sink; the daemon opens its own
    fd = sock.detach()  # the daemon's own socket object takes it over
    _close_all_but({0, 1, 2, fd})
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as any Python interpreter starts
    os.environ[daemon.ENV_FD] = str(fd)
    sys.argv = [sys.executable, "-m", "harness.shim.daemon", *argv]
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # as spawn_cold sets it (tasks inherit)
    warnings.simplefilter("ignore")  # and what it does to a fresh interpreter
    random.seed()
    gc.enable()
    return daemon.main(argv, forked=True)


def _worker(server: socket.socket, notify: int, took: int) -> int:
    """An idle worker: take one connection, tell the server, serve it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # ``delete`` waits on nothing, but a
    gc.disable()  # daemon must not inherit SIG_IGN; no collection: fewer pages copied
    while True:
        try:
            conn, _ = server.accept()
            break
        except InterruptedError:
            continue
    os.write(notify, b"+")  # the server forks a replacement
    server.close()
    os.close(notify)
    os.close(took)
    return Worker(conn).run()


def serve(path: str) -> None:
    """Bind ``path``, keep :data:`POOL` idle workers on it, until SIGTERM."""
    identity.set_name(identity.FORK_NAME)
    journal.from_env("shim-fork")
    if threading.active_count() != 1:  # fork would copy a lock some thread holds
        raise SystemExit(f"shim fork server: {threading.active_count()} threads after imports")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers and daemons are reaped by the kernel
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(128)
    took, notify = os.pipe()
    journal.emit("shim-fork", "serving", socket=path, pid=os.getpid(), pool=POOL)
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()  # what is imported stays put: a child's collections do not touch it
    for _ in range(POOL):
        _fork_worker(server, notify, took)
    while True:
        try:
            taken = os.read(took, 64)
        except InterruptedError:
            continue
        for _ in taken:
            _fork_worker(server, notify, took)


def _fork_worker(server: socket.socket, notify: int, took: int) -> None:
    if os.fork() == 0:
        code = 1
        try:
            code = _worker(server, notify, took)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            with contextlib.suppress(OSError):
                traceback.print_exc()
        finally:
            os._exit(code)


def cli() -> int:
    """``python -m harness.shim.forkserver <socket>``."""
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m harness.shim.forkserver <socket path>\n")
        return 2
    serve(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(cli())
