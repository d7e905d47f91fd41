"""The informer's intake failpoints and cache bookkeeping, without a server."""

from __future__ import annotations

import pytest

from harness.providers.kube.api import PODS
from harness.providers.kube.endpoint import Endpoint
from harness.providers.kube.kubeconfig import Credentials
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims.timing import Timing
from harness.reconciler.claims.watch import Informer, _Broken, _Gone


def _pod(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def _ev(t: str, name: str, rv: str) -> dict:
    obj = _pod(name, rv)
    return {"type": t, "object": obj, "raw_object": obj}


@pytest.fixture
def informer():
    seen: list[tuple[str, str, str]] = []
    inf = Informer(
        PODS,
        "ns",
        Endpoint(Credentials(server="https://127.0.0.1:1"), name="unused"),
        timing=Timing(),
        bugs=B.Bugs(),
        handler=lambda t, old, new: seen.append(
            (t, new["metadata"]["name"], new["metadata"]["resourceVersion"])
        ),
    )
    inf.seen = seen
    return inf


def _feed(inf, events):
    for ev in events:
        for e in inf._intake(ev):
            inf._apply(e)
    inf._flush_held()


def test_no_fault_passes_everything(informer, failpoints):
    _feed(informer, [_ev("ADDED", "a", "1"), _ev("MODIFIED", "a", "2"), _ev("DELETED", "a", "3")])
    assert informer.seen == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("DELETED", "a", "3")]
    assert informer.cache == {} and informer.rv == "3"


def test_drop_duplicate_reorder(informer, failpoints):
    failpoints.enable("claims.watch.pods.intake", "1*drop->1*duplicate(2)->1*return(reorder)")
    _feed(
        informer,
        [
            _ev("ADDED", "a", "1"),
            _ev("ADDED", "b", "2"),
            _ev("ADDED", "c", "3"),
            _ev("ADDED", "d", "4"),
        ],
    )
    # a dropped; b three times; c held back behind d
    assert [s[1] for s in informer.seen] == ["b", "b", "b", "d", "c"]
    assert informer.stats.dropped == 1 and informer.stats.duplicated == 2
    assert informer.stats.reordered == 1
    assert sorted(informer.cache) == ["b", "c", "d"]


def test_held_event_is_flushed_at_stream_end(informer, failpoints):
    failpoints.enable("claims.watch.pods.intake", "1*return(reorder)")
    _feed(informer, [_ev("ADDED", "a", "1")])
    assert informer.seen == [("ADDED", "a", "1")]


def test_gone_and_close_end_the_stream(informer, failpoints):
    failpoints.enable("claims.watch.pods.intake", "1*return(gone)->1*close")
    with pytest.raises(_Gone):
        informer._intake(_ev("ADDED", "a", "1"))
    with pytest.raises(_Broken):
        informer._intake(_ev("ADDED", "a", "1"))
    assert failpoints.status("claims.watch.pods.intake").triggers == 2


def test_bookmarks_bypass_intake_and_move_the_rv(informer, failpoints):
    failpoints.enable("claims.watch.pods.intake", "drop")
    bm = {"type": "BOOKMARK", "object": _pod("", "9"), "raw_object": _pod("", "9")}
    _feed(informer, [bm])
    assert informer.rv == "9" and informer.stats.bookmarks == 1
    assert failpoints.status("claims.watch.pods.intake").hits == 0


class _FakeKube:
    def __init__(self, items, rv):
        self.items, self.rv_ = items, rv

    def list(self, res, ns):
        return self.items, self.rv_


def test_relist_synthesises_deletes_for_vanished_objects(informer):
    informer._relist(_FakeKube([_pod("a", "1"), _pod("b", "2")], "2"))
    assert informer.synced.is_set()
    informer.seen.clear()
    informer._relist(_FakeKube([_pod("b", "5"), _pod("c", "6")], "7"))
    assert informer.seen == [("MODIFIED", "b", "5"), ("ADDED", "c", "6"), ("DELETED", "a", "1")]
    assert informer.rv == "7" and informer.stats.lists == 2
