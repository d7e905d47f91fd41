"""``reconverge-runc``: drop the capabilities this machine cannot grant, then run runc.

Why: this machine's capability bounding set lacks ``CAP_SYS_RESOURCE``. ``docker run
--privileged`` (which kind always uses) asks runc for *every* capability, and runc fails
with "unable to apply caps: operation not permitted"; ``--cap-drop`` does not help because
privileged mode ignores it. The harness's dockerd registers this executable as its default
runtime. For ``create``/``run`` it rewrites the bundle's ``config.json``, for ``exec`` the
``--process`` JSON, removing every capability whose bit is clear in ``CapBnd`` of
``/proc/self/status``; then it replaces itself with runc, same argv. Nothing else changes.

Standard library only, no harness imports: runc is called for every container operation,
so start-up must stay cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

#: Linux capability numbers (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    name: i
    for i, name in enumerate(
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "DAC_READ_SEARCH",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "LINUX_IMMUTABLE",
            "NET_BIND_SERVICE",
            "NET_BROADCAST",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "IPC_OWNER",
            "SYS_MODULE",
            "SYS_RAWIO",
            "SYS_CHROOT",
            "SYS_PTRACE",
            "SYS_PACCT",
            "SYS_ADMIN",
            "SYS_BOOT",
            "SYS_NICE",
            "SYS_RESOURCE",
            "SYS_TIME",
            "SYS_TTY_CONFIG",
            "MKNOD",
            "LEASE",
            "AUDIT_WRITE",
            "AUDIT_CONTROL",
            "SETFCAP",
            "MAC_OVERRIDE",
            "MAC_ADMIN",
            "SYSLOG",
            "WAKE_ALARM",
            "BLOCK_SUSPEND",
            "AUDIT_READ",
            "PERFMON",
            "BPF",
            "CHECKPOINT_RESTORE",
        ]
    )
}

SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
ENV_RUNC = "RECONVERGE_RUNC_BIN"


def bounding_set(status: str | None = None) -> int:
    """The ``CapBnd`` mask of this process (from ``/proc/self/status`` unless given)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    for line in text.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise ValueError("no CapBnd line in /proc/self/status")


def allowed(name: str, mask: int) -> bool:
    """Whether capability ``name`` (``CAP_X``) is in ``mask``; unknown names are kept."""
    bit = CAPABILITIES.get(name.upper().removeprefix("CAP_"))
    return bit is None or bool(mask >> bit & 1)


def strip_process(process: dict, mask: int) -> list[str]:
    """Remove the capabilities absent from ``mask`` in an OCI ``process`` object, in place.

    Returns the names removed (each once), for the log line.
    """
    caps = process.get("capabilities")
    removed: list[str] = []
    if not isinstance(caps, dict):
        return removed
    for key in SETS:
        names = caps.get(key)
        if not isinstance(names, list):
            continue
        kept = [n for n in names if allowed(str(n), mask)]
        for n in names:
            if n not in kept and n not in removed:
                removed.append(n)
        caps[key] = kept
    return removed


def rewrite(path: Path, mask: int, *, process_only: bool) -> list[str]:
    """Rewrite a config.json (``process_only=False``) or a process JSON in place."""
    doc = json.loads(path.read_text())
    removed = strip_process(doc if process_only else doc.get("process") or {}, mask)
    if removed:
        tmp = path.with_name(path.name + ".capdrop")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
    return removed


def _option(argv: list[str], long: str, short: str) -> str | None:
    """The value of ``--long X``, ``--long=X``, ``-s X`` or ``-s=X`` in runc's argv."""
    for i, a in enumerate(argv):
        for flag in (long, short):
            if a in (flag, "-" + flag) and i + 1 < len(argv):
                return argv[i + 1]
            for prefix in (flag + "=", "-" + flag + "="):
                if a.startswith(prefix):
                    return a[len(prefix) :]
    return None


def command(argv: list[str]) -> tuple[str | None, int]:
    """runc's subcommand in ``argv`` (after the global flags) and its index."""
    takes_value = {"--root", "--log", "--log-format", "--criu", "--rootless"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-"):
            i += 2 if a in takes_value else 1
            continue
        return a, i
    return None, -1


def target(argv: list[str]) -> tuple[Path, bool] | None:
    """Which JSON to rewrite for this runc invocation, and whether it is a bare process."""
    cmd, at = command(argv)
    rest = argv[at + 1 :] if at >= 0 else []
    if cmd in ("create", "run"):
        bundle = _option(rest, "--bundle", "-b") or "."
        return Path(bundle) / "config.json", False
    if cmd == "exec":
        proc = _option(rest, "--process", "-p")
        if proc:
            return Path(proc), True
    return None


def runc_path() -> str:
    """The real runc: ``$RECONVERGE_RUNC_BIN``, else ``runc`` on PATH (never ourselves)."""
    env = os.environ.get(ENV_RUNC)
    if env:
        return env
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
        cand = os.path.join(d, "runc")
        if os.access(cand, os.X_OK) and os.path.realpath(cand) != me:
            return cand
    return shutil.which("runc") or "/usr/sbin/runc"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the capability lists runc would fail on, then exec runc with the same argv."""
    args = list(sys.argv[1:] if argv is None else argv)
    found = target(args)
    if found is not None:
        path, process_only = found
        try:
            removed = rewrite(path, bounding_set(), process_only=process_only)
        except (OSError, ValueError) as exc:
            print(f"reconverge-runc: cannot rewrite {path}: {exc}", file=sys.stderr)
            return 1
        if removed and os.environ.get("RECONVERGE_CAPDROP_DEBUG"):
            print(f"reconverge-runc: dropped {', '.join(removed)} from {path}", file=sys.stderr)
    runc = runc_path()
    os.execv(runc, [runc, *args])
    return 127  # pragma: no cover - execv does not return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
