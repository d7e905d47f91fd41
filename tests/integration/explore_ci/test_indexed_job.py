"""The Kubernetes Indexed Job for sharded exploration passes a server-side dry run, and a
broken copy does not.

A YAML parse says nothing about whether kube-apiserver accepts a Job: ``completionMode``,
``backoffLimitPerIndex`` and ``podFailurePolicy`` are validated by the server, against each
other (per-index backoff needs Indexed mode, a pod failure policy needs ``restartPolicy:
Never``). So every document of ``fixtures/explore/explore-indexed-job.yaml`` is created with
``dryRun=All`` (validated, defaulted and admitted, never stored) on the real API server the
kube tests use, with ``fieldValidation=Strict`` so a misspelt key is an error rather than a
warning the server drops. The broken copies prove the dry run is really judging this file.

The command each pod runs is also parsed by the real ``reconverge`` argument parser, with
``$(JOB_COMPLETION_INDEX)`` expanded as the kubelet does, so a renamed option fails here
rather than in a cluster.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from harness.cli import build_parser
from harness.providers.kube.api import Kube, Resource

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "fixtures" / "explore" / "explore-indexed-job.yaml"
SHARDS_JOB = "reconverge-explore"
MERGE_JOB = "reconverge-explore-merge"
TIMEOUT = 30.0
JOBS = Resource("Job", "batch", "v1", "jobs")


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


#: where each kind in the manifest lives (all namespaced)
KINDS = {
    (r.api_version, r.kind): r
    for r in (JOBS, Resource("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims"))
}


def dry_run_create(kube: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    """POST ``doc`` with ``dryRun=All`` and strict field validation; the server's answer.

    Plain JSON over the API client's transport, not the generated ``create_namespaced_job``:
    the generated models validate the body on the client first (a misspelt key never reaches
    the server), and the point here is what kube-apiserver itself accepts.
    """
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    assert key in KINDS, f"{key} in the manifest: add its Resource to this test"
    return kube.request(
        "POST",
        KINDS[key].path(namespace),
        query={"dryRun": "All", "fieldValidation": "Strict"},
        body=doc,
        timeout=TIMEOUT,
    )


def by_name(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["metadata"]["name"] == name]
    return doc


def shell_line(doc: dict[str, Any]) -> str:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"], container["command"]
    [line] = container["args"]
    return str(line)


def test_every_document_passes_a_server_side_dry_run(kube_truth: Kube, kube_namespace: str) -> None:
    docs = documents(MANIFEST.read_text())
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Job", "Job"]
    for doc in docs:
        answer = dry_run_create(kube_truth, kube_namespace, doc)
        assert answer["metadata"]["name"] == doc["metadata"]["name"]
    shards = dry_run_create(kube_truth, kube_namespace, by_name(docs, SHARDS_JOB))["spec"]
    # the server's answer, defaulted and validated, is the Indexed Job asked for ...
    assert shards["completionMode"] == "Indexed"
    assert shards["completions"] == shards["parallelism"] == 4
    assert shards["backoffLimitPerIndex"] == 1
    assert shards["template"]["spec"]["dnsPolicy"] == "ClusterFirst"  # a server-side default
    # ... and dryRun=All stored nothing
    assert kube_truth.get(JOBS, kube_namespace, SHARDS_JOB) is None


# (what the copy changes, into what, a fragment the API server's rejection must contain)
BROKEN = {
    "completion-mode-value-misspelt": (
        "completionMode: Indexed",
        "completionMode: Indexd",
        'Unsupported value: "Indexd"',
    ),
    "completion-mode-key-misspelt": (
        "completionMode: Indexed",
        "completionMod: Indexed",
        'unknown field "spec.completionMod"',
    ),
    "per-index-backoff-without-indexed-mode": (
        "completionMode: Indexed",
        "completionMode: NonIndexed",
        "backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
    ),
    "failure-policy-with-restarts": (
        "restartPolicy: Never # podFailurePolicy",
        "restartPolicy: OnFailure # podFailurePolicy",
        'only "Never" is supported when podFailurePolicy is specified',
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_copy_is_rejected_by_the_api_server(
    kube_truth: Kube, kube_namespace: str, name: str
) -> None:
    old, new, message = BROKEN[name]
    text = MANIFEST.read_text()
    assert text.count(old) == 1, f"the manifest no longer contains {old!r}: update this case"
    job = by_name(documents(text.replace(old, new)), SHARDS_JOB)
    with pytest.raises(ApiException) as rejected:
        dry_run_create(kube_truth, kube_namespace, job)
    assert rejected.value.status in (400, 422), rejected.value
    said = json.loads(rejected.value.body).get("message", "")
    assert message in said, said


def test_each_pod_runs_its_own_shard_and_the_merge_reads_every_shard() -> None:
    """``$(JOB_COMPLETION_INDEX)`` expanded per index; the real CLI parser judges the line."""
    docs = documents(MANIFEST.read_text())
    shards, merge = by_name(docs, SHARDS_JOB), by_name(docs, MERGE_JOB)
    n = shards["spec"]["completions"]
    assert shards["spec"]["parallelism"] == n
    assert merge["spec"]["suspend"] is True  # held until the shards are done
    template = shell_line(shards)
    env = {
        e["name"]: e["value"] for e in shards["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    outs = []
    for index in range(n):
        line = template.replace("$(JOB_COMPLETION_INDEX)", str(index))
        assert "$(" not in line, f"a $(…) the kubelet would not expand: {line}"
        command = line.split(";")[0]
        for var, value in env.items():
            command = command.replace(f'"${var}"', value)
        argv = shlex.split(command)
        assert argv[0].endswith("reconverge"), argv
        args = build_parser().parse_args(argv[1:])
        assert args.shard == f"{index}/{n}"
        assert args.world == "sandbox"
        assert args.database == "/shards/db"
        outs.append(args.out)
    assert len(set(outs)) == n, outs
    merge_argv = shlex.split(re.split(r"[;>]", shell_line(merge).split("; ", 1)[1])[0])
    margs = build_parser().parse_args(merge_argv[1:])
    assert margs.dirs == outs, (margs.dirs, outs)
    volumes = {
        j["metadata"]["name"]: j["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]
        for j in (shards, merge)
    }
    [pvc] = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert {v["claimName"] for v in volumes.values()} == {pvc["metadata"]["name"]}
