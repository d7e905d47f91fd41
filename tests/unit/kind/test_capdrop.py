"""reconverge-runc: which JSON it rewrites for which runc call, and what it removes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness import capdrop

# this machine's CapBnd: every capability up to 40 except CAP_SYS_RESOURCE (24)
MASK = 0x000001FFFEFFFFFF
ALL = [f"CAP_{n}" for n in capdrop.CAPABILITIES]


def _config(caps: list[str]) -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "args": ["/sbin/init"],
            "capabilities": {k: list(caps) for k in capdrop.SETS},
        },
        "root": {"path": "rootfs"},
    }


def test_bounding_set_parses_status() -> None:
    status = "Name:\tx\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n"
    assert capdrop.bounding_set(status) == MASK
    with pytest.raises(ValueError):
        capdrop.bounding_set("Name:\tx\n")


def test_strip_removes_only_what_the_mask_lacks() -> None:
    proc = _config([*ALL, "CAP_FUTURE_THING"])["process"]
    removed = capdrop.strip_process(proc, MASK)
    assert removed == ["CAP_SYS_RESOURCE"]
    for key in capdrop.SETS:
        assert "CAP_SYS_RESOURCE" not in proc["capabilities"][key]
        assert "CAP_SYS_ADMIN" in proc["capabilities"][key]
        # unknown names are runc's business, not ours
        assert "CAP_FUTURE_THING" in proc["capabilities"][key]
    assert len(proc["capabilities"]["bounding"]) == len(ALL)


def test_no_capabilities_is_untouched() -> None:
    proc = {"args": ["sh"]}
    assert capdrop.strip_process(proc, MASK) == []
    assert proc == {"args": ["sh"]}


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (
            ["--root", "/r", "--log", "l", "create", "--bundle", "/b", "id"],
            ("/b/config.json", False),
        ),
        (["create", "-b", "/b", "--pid-file", "p", "id"], ("/b/config.json", False)),
        (["--systemd-cgroup", "run", "--bundle=/b", "id"], ("/b/config.json", False)),
        (["create", "id"], ("config.json", False)),
        (
            ["--root", "/r", "exec", "--process", "/tmp/p.json", "--detach", "id"],
            ("/tmp/p.json", True),
        ),
        (["exec", "-p=/tmp/p.json", "id"], ("/tmp/p.json", True)),
        (["exec", "id", "sh"], None),
        (["--root", "/r", "start", "id"], None),
        (["--log-format", "json", "delete", "--force", "id"], None),
        ([], None),
    ],
)
def test_target_per_subcommand(argv, want) -> None:
    got = capdrop.target(argv)
    assert (None if got is None else (str(got[0]), got[1])) == want


def test_rewrite_config_in_place(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(_config(ALL)))
    assert capdrop.rewrite(cfg, MASK, process_only=False) == ["CAP_SYS_RESOURCE"]
    doc = json.loads(cfg.read_text())
    assert "CAP_SYS_RESOURCE" not in doc["process"]["capabilities"]["effective"]
    assert doc["root"] == {"path": "rootfs"}
    before = cfg.read_text()
    assert capdrop.rewrite(cfg, MASK, process_only=False) == []
    assert cfg.read_text() == before


def _fake_runc(tmp_path: Path) -> Path:
    """A runc that records its argv and the capabilities it was handed."""
    fake = tmp_path / "runc"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/argv\n'
        'for a in "$@"; do case "$a" in /*.json) cp "$a" '
        f"{tmp_path}/seen.json;; esac; done\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_console_script_execs_runc_with_same_argv(tmp_path: Path) -> None:
    fake = _fake_runc(tmp_path)
    proc_json = tmp_path / "process.json"
    proc_json.write_text(json.dumps(_config(ALL)["process"]))
    argv = ["--root", "/r", "exec", "--process", str(proc_json), "--detach", "cid"]
    env = {**os.environ, capdrop.ENV_RUNC: str(fake)}
    out = subprocess.run(
        [sys.executable, "-m", "harness.capdrop", *argv], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "argv").read_text().split() == argv
    seen = json.loads((tmp_path / "seen.json").read_text())
    mask = capdrop.bounding_set()
    for name in seen["capabilities"]["effective"]:
        assert capdrop.allowed(name, mask), name
    missing = [n for n in ALL if not capdrop.allowed(n, mask)]
    assert len(seen["capabilities"]["effective"]) == len(ALL) - len(missing)


def test_unreadable_bundle_fails_before_runc(tmp_path: Path) -> None:
    fake = _fake_runc(tmp_path)
    env = {**os.environ, capdrop.ENV_RUNC: str(fake)}
    out = subprocess.run(
        [sys.executable, "-m", "harness.capdrop", "create", "--bundle", str(tmp_path / "no"), "x"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "cannot rewrite" in out.stderr
    assert not (tmp_path / "argv").exists()
