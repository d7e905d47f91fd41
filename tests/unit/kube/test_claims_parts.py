"""Small parts of the claim operator: switches, timing, selectors, the workqueue."""

from __future__ import annotations

import threading

import pytest

from harness.errors import ReconvergeError
from harness.providers.kube.namespaces import name_for
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.queue import WorkQueue
from harness.reconciler.claims.timing import Timing
from harness.wait import wait_for


def test_unknown_switch_fails_loudly():
    with pytest.raises(ReconvergeError, match="unknown claim-operator bug switch"):
        B.Bugs({"finalize_skip"})
    b = B.Bugs({B.POD_WATCH_LABEL_ONLY})
    assert b.on(B.POD_WATCH_LABEL_ONLY) and not b.on(B.LOST_KEEPS_PODNAME)
    assert b.label == "buggy-pod_watch_label_only" and B.Bugs().label == "fixed"
    with pytest.raises(KeyError):
        b.on("nope")


def test_every_switch_cites_its_seed():
    for s in B.SWITCHES.values():
        assert s.seed and s.symptom and s.module
    for name in B.SEED_D:
        assert "PR #592" in B.SWITCHES[name].seed


def test_timing_scales_every_duration_but_request_timeouts():
    t = Timing().scaled(0.1)
    assert t.requeue == pytest.approx(0.2)
    assert t.wait_cache == pytest.approx(1.0)
    assert t.wait_cache / t.requeue == pytest.approx(Timing().wait_cache / Timing().requeue)
    assert t.request_timeout == Timing().request_timeout
    assert t.server_timeout_seconds == 30
    assert Timing().scaled(0.0001).server_timeout_seconds == 1
    with pytest.raises(ValueError):
        Timing().scaled(0)


def test_selector_semantics():
    lbl = {"app": "cn", "tier": "a"}
    assert m.selector_matches(None, lbl)
    assert m.selector_matches({"matchLabels": {"app": "cn"}}, lbl)
    assert not m.selector_matches({"matchLabels": {"app": "x"}}, lbl)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}
    assert m.selector_matches(expr, lbl)
    assert not m.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, lbl
    )
    assert m.selector_string({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"


def test_time_round_trip_is_second_precision():
    t = m.parse_time("2026-05-31T11:26:04Z")
    assert m.timestamp(t) == "2026-05-31T11:26:04Z"


def test_queue_dedups_and_requeues_a_key_added_while_processing():
    q = WorkQueue("t")
    q.add("a")
    q.add("a")
    assert q.get() == "a"
    q.add("a")  # while processing: marked dirty, not handed out twice
    assert q.pending()["queued"] == []
    q.done("a")
    assert q.pending()["queued"] == ["a"]
    assert q.get() == "a"
    q.done("a")
    assert q.idle()


def test_queue_timers_keep_it_busy_until_due():
    q = WorkQueue("t")
    q.add_after("b", 0.05)
    assert not q.idle()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    wait_for(lambda: got, timeout=5, what="delayed key handed out")
    assert got == ["b"]
    q.done("b")
    assert q.idle()
    q.shutdown()
    assert q.get() is None


def test_queue_backoff_doubles():
    q = WorkQueue("t", backoff=0.01, backoff_max=0.03)
    assert q.add_rate_limited("k") == pytest.approx(0.01)
    assert q.add_rate_limited("k") == pytest.approx(0.02)
    assert q.add_rate_limited("k") == pytest.approx(0.03)
    q.forget("k")
    assert q.add_rate_limited("k") == pytest.approx(0.01)


def test_namespace_names_are_dns_labels():
    n = name_for("suites/test_x.py::test_case[buggy-finalize_skip_returns_false]" + "x" * 80)
    assert len(n) <= 63 and n == n.lower() and n.startswith("rcv-")
    assert all(c.isalnum() or c == "-" for c in n)
    assert name_for("a::b[1]") != name_for("a::b[2]")


class _RecordingKube:
    """Stands in for the request client: records one DELETE, answers with ``status``."""

    def __init__(self, status: int | None) -> None:
        self.status = status
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method: str, path: str, *, body: dict) -> dict:
        from kubernetes.client.exceptions import ApiException

        self.calls.append((method, path, body))
        if self.status is not None:
            raise ApiException(status=self.status, reason="test")
        return {}


def _ctx(kube: _RecordingKube):
    import random

    from harness.reconciler.claims.context import Ctx
    from harness.reconciler.claims.store import CNStore

    ctx = Ctx(
        namespace="ns",
        api=None,  # type: ignore[arg-type]
        bugs=B.Bugs(),
        timing=Timing().scaled(0.1),
        store=CNStore(),
        pods=None,  # type: ignore[arg-type]
        claims=None,  # type: ignore[arg-type]
        claimsets=None,  # type: ignore[arg-type]
        pools=None,  # type: ignore[arg-type]
        rng=random.Random(0),
    )
    ctx.kube = lambda: kube  # type: ignore[method-assign]
    return ctx


CACHED = {"metadata": {"name": "s0-a", "uid": "u-1", "resourceVersion": "41"}}


def test_delete_decided_carries_uid_and_resource_version_preconditions():
    kube = _RecordingKube(None)
    _ctx(kube).delete_decided(m.CNCLAIMS, CACHED)
    [(method, path, body)] = kube.calls
    assert method == "DELETE" and path.endswith("/namespaces/ns/cnclaims/s0-a")
    assert body["preconditions"] == {"uid": "u-1", "resourceVersion": "41"}


def test_delete_decided_on_a_stale_cache_resyncs_and_gone_is_done():
    from harness.reconciler.claims.context import ReSync

    with pytest.raises(ReSync, match="changed since the cached copy"):
        _ctx(_RecordingKube(409)).delete_decided(m.CNCLAIMS, CACHED)
    _ctx(_RecordingKube(404)).delete_decided(m.CNCLAIMS, CACHED)  # already gone: no error
    with pytest.raises(Exception, match="500"):
        _ctx(_RecordingKube(500)).delete_decided(m.CNCLAIMS, CACHED)
