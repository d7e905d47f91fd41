"""Failure bundles, the per-run report, the replay line, and keeping a failed run's directory.

Why here and not in the plugin: what a bundle holds is the contract ``reconverge timeline``
and ``reconverge report`` read back (:mod:`harness.report.source`), so writer and reader
live side by side; the plugin only says *when* (a failing case, the end of a session).

A bundle (``<artifacts>/failures/<case>/``) holds:

- ``journal.jsonl`` — every record since the case started (all processes of the run);
- ``timeline.txt`` — the T1…Tn table; ``report.html`` + ``trace.json`` — the pictures;
- ``repro.txt`` — the one line that replays the case (see :func:`repro_line`);
- ``meta.json`` — node id, seeds, the command actually invoked, every setting that changes
  behaviour, component versions, the verdict when the case recorded one;
- ``logs/`` — the servers' logs of the run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shlex
import shutil
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.journal import merge
from harness.journal.record import Record
from harness.report import html as html_report
from harness.report import lanes, timeline, trace
from harness.report.matrix_view import MatrixView
from harness.report.schedule_view import ExploreView

if TYPE_CHECKING:
    import pytest

    from harness.run import Run

#: Bumped when a file of the bundle changes meaning.
BUNDLE_SCHEMA = 1

#: At most this many records on one page (the last ones): a whole CI session's journal can
#: hold ~10^5 records, which as SVG and table rows is a page no browser opens comfortably.
#: The trace JSON always has every record (Perfetto is built for that).
PAGE_LIMIT = 10_000

#: pytest options (dest, flag) that change what a case does; replayed through PYTEST_ADDOPTS
#: because ``reconverge repro`` runs pytest underneath and pytest reads that variable.
BEHAVIOUR_OPTIONS: tuple[tuple[str, str], ...] = (
    ("reconverge_backend", "--reconverge-backend"),
    ("reconverge_kube", "--reconverge-kube"),
    ("reconverge_kubeconfig", "--reconverge-kubeconfig"),
    ("reconverge_time_scale", "--reconverge-time-scale"),
    ("reconverge_sandbox_time_scale", "--reconverge-sandbox-time-scale"),
    ("reconverge_strict", "--reconverge-strict"),
)

#: Environment variables that change behaviour (besides the options above): faults forced
#: on, bugs forced on, which relay or binary is used.
BEHAVIOUR_ENV = (
    "RECONVERGE_FAILPOINTS",
    "RECONVERGE_SANDBOX_BUGS",
    "RECONVERGE_SHIM_TOXIPROXY",
    "RECONVERGE_SHIM_DELETE_KILLS",
    "RECONVERGE_CACHE",
)


def behaviour_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The behaviour-changing variables that are set (binary overrides ``*_BIN`` included)."""
    env = os.environ if environ is None else environ
    out = {k: env[k] for k in BEHAVIOUR_ENV if env.get(k)}
    out.update(
        {k: v for k, v in env.items() if k.startswith("RECONVERGE_") and k.endswith("_BIN") and v}
    )
    return dict(sorted(out.items()))


def behaviour_options(config: pytest.Config) -> list[str]:
    """The behaviour-changing options of this session, as command-line flags."""
    flags: list[str] = []
    for dest, flag in BEHAVIOUR_OPTIONS:
        value = config.getoption(dest, default=None)
        if value is None or value is False or value == "":
            continue
        flags.append(flag if value is True else f"{flag}={value}")
    return flags


def reconverge_exe(cwd: Path | None = None) -> str:
    """How to call this installation's ``reconverge`` (never a hard-coded ``.venv/bin``).

    The console script beside the running interpreter is the one that belongs to this
    installation, wherever it lives (a venv, pipx, a system prefix); shown relative to
    ``cwd`` when inside it. Without one: ``python -m harness.cli`` of this interpreter.
    """
    script = Path(sys.executable).parent / "reconverge"
    if script.is_file() and os.access(script, os.X_OK):
        if cwd is not None:
            with contextlib.suppress(ValueError):
                return str(script.absolute().relative_to(cwd.absolute()))
        return str(script)
    return f"{sys.executable} -m harness.cli"


def repro_line(config: pytest.Config, nodeid: str) -> str:
    """The one shell line that replays ``nodeid`` exactly: same seed, settings, faults.

    ``cd`` to the rootdir first (node ids are relative to it); then the behaviour-changing
    environment and options; then ``reconverge repro '<nodeid>@<seed>'``.
    """
    from harness.pytest_plugin import session_seed

    root = Path(config.rootpath)
    parts = ["cd", shlex.quote(str(root)), "&&"]
    parts += [f"{k}={shlex.quote(v)}" for k, v in behaviour_env().items()]
    flags = behaviour_options(config)
    if flags:
        parts.append("PYTEST_ADDOPTS=" + shlex.quote(" ".join(flags)))
    parts += [reconverge_exe(root), "repro", shlex.quote(f"{nodeid}@{session_seed(config)}")]
    return " ".join(parts)


@functools.lru_cache(maxsize=64)
def _binary_version(component: str, path: str) -> str:
    from harness import binaries

    return binaries.version_of(component, Path(path))


_VERSIONED = ("containerd", "toxiproxy", "etcd", "kube-apiserver", "runc", "kind", "dockerd")


def versions(records: Iterable[Record]) -> dict[str, str]:
    """Component versions: reconverge and Python, the servers the journal shows started
    (``<binary> --version``, once per binary per process), and versions journaled by
    providers (the kube backends describe theirs)."""
    out = {"reconverge": _package_version(), "python": platform.python_version()}
    for r in records:
        v = r.fields.get("versions")
        if isinstance(v, dict):
            out.update({str(k): str(x) for k, x in v.items()})
        if r.event == "started" and isinstance(r.fields.get("argv"), str):
            exe = r.fields["argv"].split(" ", 1)[0]
            name = Path(exe).name.removesuffix("-server")
            if r.component in _VERSIONED and r.component not in out:
                out[r.component] = _binary_version(r.component, exe)
            elif name in _VERSIONED and name not in out:
                out[name] = _binary_version(name, exe)
    return out


@functools.lru_cache(maxsize=1)
def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("reconverge")
    except Exception:
        return "unknown"


def session_meta(config: pytest.Config) -> dict[str, Any]:
    """What every bundle and the run report say about the session."""
    from harness.pytest_plugin import session_seed

    inv = config.invocation_params
    settings: dict[str, str] = {}
    for flag in behaviour_options(config):
        name, _, value = flag.removeprefix("--").partition("=")
        settings[name] = value or "on"
    settings.update(behaviour_env())
    return {
        "schema": BUNDLE_SCHEMA,
        "seed": session_seed(config),
        "invoked": {"args": list(inv.args), "dir": str(inv.dir), "argv": list(sys.argv)},
        "settings": settings,
        "rootdir": str(config.rootpath),
    }


def render_report(
    records: Sequence[Record],
    *,
    title: str,
    meta: dict[str, Any],
    verdicts: Sequence[dict[str, Any]] = (),
    repeats: dict[str, list[str | None]] | None = None,
    links: dict[str, str] | None = None,
    matrix: MatrixView | None = None,
    explore: ExploreView | None = None,
    page_limit: int = PAGE_LIMIT,
) -> tuple[str, str]:
    """The HTML page and the trace JSON for ``records`` (the same picture in both; the page
    keeps the last ``page_limit`` records, numbered as in the whole journal); ``matrix``: the
    release x case view of a version-matrix session; ``explore``: merged explorer shards and
    saved schedules (without records the page shows only those)."""
    whole = lanes.build(records)
    skip = max(len(records) - page_limit, 0)
    picture = lanes.build(records[skip:], first=skip + 1) if skip else whole
    ctx = html_report.Context(
        title=title,
        verdicts=list(verdicts),
        meta=meta,
        repeats=dict(repeats or {}),
        links=dict(links or {}),
        matrix=matrix,
        explore=explore,
    )
    page = html_report.render(picture, ctx)
    tr = trace.render(whole, metadata={"title": title, "seed": meta.get("seed", "")})
    return page, tr


def write_report(directory: Path, records: Sequence[Record], **kwargs: Any) -> Path:
    """Write ``report.html`` and ``trace.json`` into ``directory``; returns the page."""
    page, tr = render_report(records, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.html").write_text(page)
    (directory / "trace.json").write_text(tr)
    return directory / "report.html"


def case_dir(root: Path, slug: str) -> Path:
    """Where a failing case's bundle goes: ``<artifacts>/failures/<slug>``."""
    return root / "failures" / slug


def write_case(
    bundle: Path,
    item: pytest.Item,
    run: Run,
    records: Sequence[Record],
    *,
    verdict: dict[str, Any] | None,
    failure: str = "",
) -> Path:
    """Write a failing case's bundle (see the module docstring) and return its directory."""
    from harness.pytest_plugin import case_seed, session_seed

    config = item.config
    bundle.mkdir(parents=True, exist_ok=True)
    repro = repro_line(config, item.nodeid)
    (bundle / "timeline.txt").write_text(timeline.render(records) + "\n")
    (bundle / "journal.jsonl").write_text("".join(r.to_json() + "\n" for r in records))
    (bundle / "repro.txt").write_text(repro + "\n")
    meta = session_meta(config)
    meta.update(
        nodeid=item.nodeid,
        case_seed=case_seed(session_seed(config), item.nodeid),
        repro=repro,
        run=run.id,
        run_dir=str(run.dir),
        # the whole run's journal: servers started before this case (session-scoped) count too
        versions=versions(merge.load(run.dir)),
    )
    if verdict is not None:
        meta["verdict"] = verdict
    if failure:
        # pytest's report of the failure: the evidence lines (view vs truth, details)
        (bundle / "failure.txt").write_text(failure + "\n")
        meta["failure"] = assertion_lines(failure)
    (bundle / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    logs = run.dir / "logs"
    if logs.is_dir():
        shutil.copytree(logs, bundle / "logs", dirs_exist_ok=True, ignore=_special_files)
    write_report(
        bundle,
        records,
        title=item.nodeid,
        meta=meta,
        verdicts=[verdict] if verdict is not None else [],
    )
    return bundle


def assertion_lines(text: str, limit: int = 60) -> str:
    """The ``E   …`` lines of a pytest failure (the assertion and its evidence), else its tail."""
    # pytest writes "E" + three spaces, then the message with its own indentation
    lines = [ln[4:].rstrip() if ln.startswith("E ") else None for ln in text.splitlines()]
    picked = [ln for ln in lines if ln is not None]
    if not picked:
        picked = text.strip().splitlines()[-limit:]
    return "\n".join(picked[:limit])


def _special_files(directory: str, names: list[str]) -> list[str]:
    """copytree ignore: sockets, FIFOs and devices cannot (and need not) be copied."""
    out = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            out.append(name)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.append(name)
    return out


def save_run_journal(artifacts: Path, run: Run) -> None:
    """Copy a run's journal files into ``<artifacts>/journal/`` for the session report.

    Each process writes its own file (``<proc>.<pid>.jsonl``), so the files of every
    xdist worker's run sit side by side and merge by the shared monotonic clock.
    """
    src = run.dir / "journal"
    if not src.is_dir():
        return
    dst = artifacts / "journal"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.jsonl"):
        with contextlib.suppress(OSError):
            shutil.copy2(f, dst / f.name)


def kept_root(artifacts: Path | None) -> Path:
    """Where ``--reconverge-keep`` moves a failed run's directory.

    Not under the run root: the next run's start-up sweep removes every dead run there.
    """
    if artifacts is not None:
        return artifacts / "runs"
    from harness import run as run_mod

    root = run_mod.run_root()
    return root.with_name(root.name + ".kept")


def keep_run_dir(run_dir: Path, dest_root: Path) -> Path | None:
    """Move (or copy, across filesystems) a closed run's directory to ``dest_root``."""
    if not run_dir.is_dir():
        return None
    dest_root.mkdir(parents=True, exist_ok=True)
    dest = dest_root / run_dir.name
    try:
        os.rename(run_dir, dest)
    except OSError:
        shutil.copytree(run_dir, dest, dirs_exist_ok=True, ignore=_special_files, symlinks=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return dest
