"""``containerd-shim-stub-v2 -info``: the RuntimeInfo containerd v2.2+ reads before a Create.

The stub encodes the message by hand (its cold path imports no protobuf); these tests
decode what the real binary prints with the module generated from our own
``harness/protos/runtime_info.proto``, so a wrong field number or wire type fails here.
"""

from __future__ import annotations

import subprocess
import sys

from google.protobuf import any_pb2

from harness.protos import runtime_info_pb2
from harness.shim import main


def _cold_info(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "harness.shim.main", "-info"],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_message_decodes_with_the_generated_module() -> None:
    wire = main.encode_runtime_info("io.containerd.stub.v2", "0.1.0", "abc")
    info = runtime_info_pb2.RuntimeInfo.FromString(wire)
    assert info.name == "io.containerd.stub.v2"
    assert (info.version.version, info.version.revision) == ("0.1.0", "abc")
    assert not info.HasField("options") and not info.HasField("features")
    assert dict(info.annotations) == {}
    assert runtime_info_pb2.RuntimeInfo.DESCRIPTOR.full_name == "containerd.types.RuntimeInfo"


def test_the_cold_binary_answers_info_without_options() -> None:
    """What containerd's loadShimInfo does: ``-info`` with an empty stdin."""
    done = _cold_info(b"")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    info = runtime_info_pb2.RuntimeInfo.FromString(done.stdout)
    assert info.name == main.RUNTIME_NAME
    assert info.version.version  # the package version, or "unknown" outside an install
    assert not info.HasField("options")


def test_options_on_stdin_are_echoed_back() -> None:
    """The introspection API pipes the task's runtime options (an Any) in; they come back."""
    opts = any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x0a\x04runc")
    done = _cold_info(opts.SerializeToString())
    assert done.returncode == 0, done.stderr
    info = runtime_info_pb2.RuntimeInfo.FromString(done.stdout)
    assert info.options == opts


def test_info_is_a_flag_not_an_action() -> None:
    flags, action = main.parse_flags(["-info"])
    assert flags == {"info": "true"} and action == ""
    flags, action = main.parse_flags(["-info", "-debug"])
    assert flags == {"info": "true", "debug": "true"} and action == ""
