"""OCI archives: deterministic bytes, the right names and configs, files where kubeadm looks."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from harness.errors import ReconvergeError
from harness.images import busybox, control_plane, iptables, oci, store

KUBEADM_1_34 = [
    "registry.k8s.io/kube-apiserver:v1.34.4",
    "registry.k8s.io/kube-controller-manager:v1.34.4",
    "registry.k8s.io/kube-scheduler:v1.34.4",
    "registry.k8s.io/kube-proxy:v1.34.4",
    "registry.k8s.io/coredns/coredns:v1.12.1",
    "registry.k8s.io/pause:3.10.1",
    "registry.k8s.io/etcd:3.6.5-0",
]


def read_layout(path: Path) -> tuple[dict, dict, dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """(index, image config, layer members, layer file contents) of an archive."""
    with tarfile.open(path) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    (layer_desc,) = manifest["layers"]
    raw = files["blobs/sha256/" + layer_desc["digest"][7:]]
    if layer_desc["mediaType"].endswith("+gzip"):
        raw = gzip.decompress(raw)
    assert config["rootfs"]["diff_ids"] == [oci.blob(raw)[0]], "diff_id is the uncompressed tar"
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        contents = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    return index, config, members, contents


@pytest.fixture
def fake_binaries(tmp_path, monkeypatch):
    """harness.build.ensure answered by small files, one per component (no go)."""
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path / "cache"))
    calls: list[tuple[str, str]] = []

    def ensure(component: str, version: str | None = None, **_: object) -> Path:
        calls.append((component, str(version)))
        d = tmp_path / "bin" / component / str(version)
        d.mkdir(parents=True, exist_ok=True)
        names = (
            control_plane.build.KUBERNETES_BINARIES if component == "kubernetes" else (component,)
        )
        for n in names:
            (d / n).write_bytes(f"{n} {version}\n".encode())
        return d / names[0]

    monkeypatch.setattr(control_plane.build, "ensure", ensure)
    return calls


def test_refs_are_kubeadms_for_1_34():
    assert control_plane.refs("v1.34.4") == KUBEADM_1_34
    assert control_plane.refs() == KUBEADM_1_34


@pytest.mark.parametrize("bad", ["v1.99.0", "1.34.4", "v1.34"])
def test_unknown_or_malformed_versions_are_one_line(bad):
    with pytest.raises(ReconvergeError) as err:
        control_plane.refs(bad)
    assert "\n" not in err.value.one_line()


def test_archives_name_place_and_start_every_binary(fake_binaries):
    archives = control_plane.archives("v1.34.4", log=lambda s: None)
    assert [a.ref for a in archives] == KUBEADM_1_34
    assert ("etcd", "v3.6.5") in fake_binaries and ("coredns", "v1.12.1") in fake_binaries
    by_ref = {a.ref: read_layout(a.path) for a in archives}
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        index, config, members, contents = by_ref[f"registry.k8s.io/{name}:v1.34.4"]
        assert contents[f"usr/local/bin/{name}"] == f"{name} v1.34.4\n".encode()
        assert members[f"usr/local/bin/{name}"].mode == 0o755
        assert config["config"]["Entrypoint"] == [f"/usr/local/bin/{name}"]
    # kubeadm's static pods start these by name: PATH must reach /usr/local/bin
    for ref in (KUBEADM_1_34[0], KUBEADM_1_34[-1]):
        env = dict(e.split("=", 1) for e in by_ref[ref][1]["config"]["Env"])
        assert "/usr/local/bin" in env["PATH"].split(":")
    _, config, _, contents = by_ref["registry.k8s.io/etcd:3.6.5-0"]
    assert contents["usr/local/bin/etcd"] == b"etcd v3.6.5\n"
    _, config, _, contents = by_ref["registry.k8s.io/coredns/coredns:v1.12.1"]
    assert config["config"]["Entrypoint"] == ["/coredns"] and "coredns" in contents
    _, config, _, contents = by_ref["registry.k8s.io/pause:3.10.1"]
    assert config["config"]["Entrypoint"] == ["/pause"] and "pause" in contents
    for ref, (index, config, members, _) in by_ref.items():
        ann = index["manifests"][0]["annotations"]
        assert ann["io.containerd.image.name"] == ref
        assert ann["org.opencontainers.image.ref.name"] == ref
        assert config["architecture"] == "amd64" and config["os"] == "linux"
        assert members["tmp"].mode == 0o1777 and members["tmp"].isdir()
        assert {"usr", "usr/local", "etc"} <= set(members) or "coredns" in ref or "pause" in ref
        assert "etc/passwd" in members


def test_archives_are_cached_and_byte_identical(fake_binaries, tmp_path):
    first = control_plane.archives(log=lambda s: None)
    data = {a.ref: a.path.read_bytes() for a in first}
    logs: list[str] = []
    again = control_plane.archives(log=logs.append)
    assert [a.path for a in again] == [a.path for a in first]
    assert sum("cached" in line for line in logs if line.startswith("image ")) == len(first)
    for a in first:
        a.path.unlink()
    rebuilt = control_plane.archives(log=lambda s: None)
    assert {a.ref: a.path.read_bytes() for a in rebuilt} == data, "same inputs, same bytes"


def test_a_changed_binary_is_a_new_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    b = tmp_path / "x"
    b.write_bytes(b"one")
    first = store.archive_for("r.local/x:1", {"x": (b, 0o755)}, {}, log=lambda s: None)
    b.write_bytes(b"two")
    second = store.archive_for("r.local/x:1", {"x": (b, 0o755)}, {}, log=lambda s: None)
    assert first.path != second.path and first.path.exists()


def test_tar_entries_links_dirs_and_parents():
    raw = oci.tar(
        {"a/b/c": (b"x", 0o644)},
        {"t": oci.Entry(mode=0o1777), "bin/sh": oci.Entry(mode=0o777, link="/bin/busybox")},
        all_parents=True,
    )
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        names = [m.name for m in tf.getmembers()]
        members = {m.name: m for m in tf.getmembers()}
    assert names.index("a") < names.index("a/b") < names.index("a/b/c")
    assert members["t"].isdir() and members["t"].mode == 0o1777
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert all(m.mtime == 0 and m.uname == "root" for m in members.values())
    assert raw == oci.tar(
        {"a/b/c": (b"x", 0o644)},
        {"bin/sh": oci.Entry(mode=0o777, link="/bin/busybox"), "t": oci.Entry(mode=0o1777)},
        all_parents=True,
    ), "input order must not matter"


def test_busybox_pod_image_links_applets_and_runs_sh(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\nprintf 'bin/busybox\\nbin/sh\\nbin/sleep\\nusr/bin/env\\n'\n")
    fake.chmod(0o755)
    a = busybox.archive(busybox=fake, log=lambda s: None)
    assert a.ref == busybox.NAME == "reconverge.local/busybox:1"
    index, config, members, contents = read_layout(a.path)
    assert contents["bin/busybox"] == fake.read_bytes()
    assert members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/bin/env"].linkname == "/bin/busybox"
    assert members["bin/busybox"].isfile()
    assert config["config"]["Cmd"] == ["sh"]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == busybox.NAME


def test_missing_names_what_archives_would_build_without_running_go(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert control_plane.missing("v1.34.4") == [
        "kubernetes@v1.34.4",
        "coredns@v1.12.1",
        f"pause@{control_plane.DEFAULTS['pause']}",
        "etcd@v3.6.5",
    ]


def test_kube_proxy_image_carries_iptables_with_its_libraries(fake_binaries):
    host = iptables.host_files()
    if host is None:
        pytest.skip("this host has no iptables")
    (proxy,) = [a for a in control_plane.archives(log=lambda s: None) if "kube-proxy" in a.ref]
    _, _, members, contents = read_layout(proxy.path)
    for cmd in ("iptables", "iptables-restore", "iptables-save", "ip6tables-restore"):
        assert members[f"usr/sbin/{cmd}"].linkname == "xtables-nft-multi"
    assert members["usr/sbin/iptables-legacy-restore"].linkname == "xtables-legacy-multi"
    assert members["lib64"].linkname == "usr/lib64" and members["lib"].linkname == "usr/lib"
    assert "usr/lib64/ld-linux-x86-64.so.2" in contents
    assert "usr/lib/x86_64-linux-gnu/libxtables.so.12" in contents
    assert "usr/lib/x86_64-linux-gnu/xtables/libxt_comment.so" in contents
    (apiserver,) = [a for a in control_plane.archives(log=lambda s: None) if "apiserver" in a.ref]
    assert "usr/sbin/iptables" not in read_layout(apiserver.path)[2]


def test_ldd_lines_and_merged_usr_paths():
    lines = [
        "\tlibxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f6e90c02000)",
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f6e90cca000)",
        "\tlinux-vdso.so.1 (0x00007f6e90cc8000)",
    ]
    found = [m.group(1) for ln in lines if (m := iptables._LDD_LINE.match(ln))]
    assert found == ["/lib/x86_64-linux-gnu/libxtables.so.12", "/lib64/ld-linux-x86-64.so.2"]
    assert iptables._in_image(found[0]) == "usr/lib/x86_64-linux-gnu/libxtables.so.12"
    assert iptables._in_image("/usr/sbin/x") == "usr/sbin/x"


def test_known_digests_key_the_cache_without_hashing(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    b = tmp_path / "x"
    b.write_bytes(b"one")
    real = store.sha256_file(b)
    hashed = store.archive_for("r.local/x:1", {"x": (b, 0o755)}, {}, log=lambda s: None)
    told = store.archive_for(
        "r.local/x:1", {"x": (b, 0o755)}, {}, digests={"x": real}, log=lambda s: None
    )
    assert told.path == hashed.path
    monkeypatch.setattr(store, "sha256_file", lambda p: pytest.fail("hashed a known file"))
    other = store.archive_for(
        "r.local/x:1", {"x": (b, 0o755)}, {}, digests={"x": "0" * 64}, log=lambda s: None
    )
    assert other.path != hashed.path
