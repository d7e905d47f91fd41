"""The committed generated modules are exactly what ci/regen-protos produces."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_regeneration_gives_no_diff(tmp_path):
    subprocess.run([str(ROOT / "ci" / "regen-protos"), str(tmp_path)], check=True, timeout=120)
    fresh = sorted((tmp_path / "harness" / "protos").glob("*_pb2*.py*"))
    committed = sorted((ROOT / "harness" / "protos").glob("*_pb2*.py*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    differing = [
        p.name for p in fresh if not filecmp.cmp(p, ROOT / "harness/protos" / p.name, shallow=False)
    ]
    assert differing == [], f"regenerate with ci/regen-protos: {differing}"


def test_type_urls_and_services_match_upstream_names():
    from harness.protos import events_pb2, shim_task_pb2, tasks_pb2

    assert events_pb2.TaskExit.DESCRIPTOR.full_name == "containerd.events.TaskExit"
    assert shim_task_pb2.DESCRIPTOR.services_by_name["Task"].full_name == "containerd.task.v2.Task"
    assert tasks_pb2.DESCRIPTOR.services_by_name["Tasks"].full_name == (
        "containerd.services.tasks.v1.Tasks"
    )


def test_delete_response_field_numbers():
    from harness.protos import shim_task_pb2

    wire = shim_task_pb2.DeleteResponse(pid=7, exit_status=137).SerializeToString()
    assert wire == bytes([0x08, 7, 0x10, 137, 1])
