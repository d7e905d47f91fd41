"""Seed d, the watch loop: naive watch-loop switches under toxiproxy and API-server faults.

One scenario for every case (the shape of bug 4's symptom, §5–6 of ``kubernetes-path.md``):
claim C is Bound to pod P, an idle pod Q exists, the operator (all four PR #592 fixes on)
has settled. Then the operator's *watch path* is faulted and P vanishes. The only way the
operator can learn about it is its pod watch: a correct loop re-watches (or re-lists) and
C goes Lost and rebinds to Q (CONVERGED); a naive one never hears of it and C stays Bound to
a pod that is gone (CAUGHT).

The operator dials two toxiproxy proxies (``api`` for requests, ``watch`` for streams), so a
fault on the watch path leaves its requests alone.

Faults and the switch each one exposes:

- ``reset_peer`` mid-watch — the stream breaks; ``watch_end_means_done`` stops listening;
- black hole (``timeout`` toxic, no close) plus a fail-over of *new* connections — the
  half-open connection of §5.1; ``watch_no_read_timeout`` waits on the dead socket forever;
- a cut plus an etcd compaction — the re-watch gets 410 Gone; ``watch_no_relist_on_410``
  retries the compacted resourceVersion forever;
- a graceful API-server restart — streams end; ``watch_end_means_done`` stops listening.

Plus watch-level faults at the intake (failpoints), fixed operator only: duplicated and
reordered events must not matter, and a dropped DELETE must be healed by the relist a 410
forces.
"""

from __future__ import annotations

import pytest

from harness.checks import claims as chk
from harness.providers.kube import COMPACT, RESTART
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.objects import create_claim, pod_labels
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "seed-d-watch"
SETTLE = 30.0


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _settled_scenario(claim_operator, truth, ns, kubelet, bugs=()):
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-c"))
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=3600)
    op = claim_operator(bugs)
    chk.stuck(op, truth, ns, chk.claim_bound("claim-c", "pod-p"), timeout=SETTLE, what="settled")
    return op


GONE_POD = chk.all_of(chk.claim_phase("claim-c", m.BOUND, pod="pod-p"), chk.pod_absent("pod-p"))


def _converged(truth, ns) -> str:
    chk.converge(
        truth, ns, chk.claim_bound("claim-c", "pod-q"), timeout=SETTLE, what="claim-c rebound"
    )
    return "pod-p's delete seen: claim-c Lost -> Bound to pod-q"


def _dead_window(timing) -> float:
    """A naive loop that *ended* cannot recover; hold the symptom past the cache wait."""
    return timing.wait_cache + 1.0


def _silent_window(timing) -> float:
    """A blocked loop: hold the symptom well past when a fixed loop's read timeout fires."""
    return 2 * timing.watch_read_timeout + timing.wait_cache


def _stream_ends(stats) -> int:
    return stats.breaks + stats.clean_ends + stats.read_timeouts


@pytest.mark.parametrize("buggy", variants(B.WATCH_END_MEANS_DONE))
def test_reset_peer_mid_watch(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, kube_paths, claim_timing, verdict
):
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_END_MEANS_DONE} if buggy else ()
    )
    pods = op.informers["pods"]
    toxic = kube_paths.watch_proxy.add_toxic("reset_peer", timeout=0)
    kubelet.vanish("pod-p")  # the DELETED event's bytes meet the reset
    wait_for(lambda: _stream_ends(pods.stats), timeout=SETTLE, what="pods watch cut by reset_peer")
    kube_paths.watch_proxy.remove_toxic(toxic)

    def caught() -> str:
        chk.holds_for(truth, ns, GONE_POD, seconds=_dead_window(claim_timing), what="stuck")
        assert pods.stats.state == "ended", pods.stats.as_dict()
        return "watch loop ended with its reset stream; claim-c Bound to pod-p that is gone"

    chk.judge(
        verdict,
        suite=SUITE,
        case="end-means-done",
        buggy=buggy,
        fault="reset_peer mid-watch",
        run=caught if buggy else (lambda: _converged(truth, ns)),
    )


@pytest.mark.parametrize("buggy", variants(B.WATCH_NO_READ_TIMEOUT))
def test_black_hole_half_open_watch(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, kube_paths, claim_timing, verdict
):
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_NO_READ_TIMEOUT} if buggy else ()
    )
    pods = op.informers["pods"]
    sessions, events = pods.stats.sessions, pods.stats.events
    # existing watch connections go silent without a close; new ones take a healthy path
    kube_paths.watch_proxy.add_toxic("timeout", timeout=0)
    kube_paths.failover_watch()
    kubelet.vanish("pod-p")

    def caught() -> str:
        window = _silent_window(claim_timing)
        chk.holds_for(truth, ns, GONE_POD, seconds=window, what="claim-c stuck")
        st = pods.stats
        assert st.sessions == sessions and st.events == events, st.as_dict()
        assert st.state == "watching", st.as_dict()
        return (
            f"watch blocked {window:.0f}s on a silent connection (no read timeout, no "
            f"reconnect); claim-c Bound to pod-p that is gone"
        )

    def converged() -> str:
        text = _converged(truth, ns)
        assert pods.stats.read_timeouts >= 1, pods.stats.as_dict()
        return f"read timeout after {claim_timing.watch_read_timeout:.0f}s, re-watched; " + text

    chk.judge(
        verdict,
        suite=SUITE,
        case="no-read-timeout",
        buggy=buggy,
        fault="black hole (timeout toxic) + fail-over",
        run=caught if buggy else converged,
    )


@pytest.mark.parametrize("buggy", variants(B.WATCH_NO_RELIST_ON_410))
def test_compaction_410_gone(
    buggy,
    claim_operator,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    claim_timing,
    verdict,
):
    if not kube_cluster.can(COMPACT):
        pytest.skip(f"{kube_cluster.backend}: cannot compact etcd")
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_NO_RELIST_ON_410} if buggy else ()
    )
    pods = op.informers["pods"]
    stale_rv = pods.rv
    with kube_paths.watch_proxy.down():  # every watch stream cut, reconnects refused
        wait_for(lambda: pods.stats.breaks, timeout=SETTLE, what="pods watch cut")
        kubelet.vanish("pod-p")
        rev = kube_paths.cluster.compact()

    def caught() -> str:
        wait_for(
            lambda: pods.stats.gone,
            timeout=SETTLE,
            what="three 410s in a row",
            accept=lambda n: n >= 3,
        )
        chk.holds_for(truth, ns, GONE_POD, seconds=claim_timing.wait_cache + 1, what="stuck")
        assert pods.stats.lists == 1, pods.stats.as_dict()
        return (
            f"410 Gone x{pods.stats.gone} re-watching rv {stale_rv} (compacted at {rev}), "
            f"never relisted; claim-c Bound to pod-p that is gone"
        )

    def converged() -> str:
        text = _converged(truth, ns)
        assert pods.stats.gone >= 1 and pods.stats.lists >= 2, pods.stats.as_dict()
        return "410 -> relist (P missing = synthetic DELETE); " + text

    chk.judge(
        verdict,
        suite=SUITE,
        case="no-relist-on-410",
        buggy=buggy,
        fault="cut + etcd compaction",
        run=caught if buggy else converged,
    )


@pytest.mark.parametrize("buggy", variants(B.WATCH_END_MEANS_DONE))
def test_apiserver_restart(
    buggy,
    claim_operator,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    claim_timing,
    verdict,
):
    if not kube_cluster.can(RESTART):
        pytest.skip(f"{kube_cluster.backend}: cannot restart the API server")
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_END_MEANS_DONE} if buggy else ()
    )
    pods = op.informers["pods"]
    took = kube_cluster.restart_apiserver(graceful=True)
    wait_for(lambda: _stream_ends(pods.stats), timeout=SETTLE, what="pods watch ended by restart")
    kubelet.vanish("pod-p")

    def caught() -> str:
        chk.holds_for(truth, ns, GONE_POD, seconds=_dead_window(claim_timing), what="stuck")
        assert pods.stats.state == "ended", pods.stats.as_dict()
        return (
            f"watch loop ended with the restart ({took:.1f}s); claim-c Bound to pod-p that is gone"
        )

    chk.judge(
        verdict,
        suite=SUITE,
        case="end-means-done",
        buggy=buggy,
        fault="apiserver graceful restart",
        run=caught if buggy else (lambda: _converged(truth, ns)),
    )


INTAKE = [
    pytest.param("duplicate(2)", "each pod event delivered 3 times", id="duplicate"),
    # pod-p's grace-0 DELETE is two events, MODIFIED then DELETED: hold the DELETED back
    # until pod-r's ADDED has been delivered
    pytest.param(
        "1*off->1*return(reorder)", "pod-p DELETED swapped with pod-r ADDED", id="reorder"
    ),
]


@pytest.mark.parametrize(("term", "fault"), INTAKE)
def test_intake_faults_are_harmless(
    term, fault, claim_operator, kube_truth, kube_namespace, kubelet, failpoints, verdict
):
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(claim_operator, truth, ns, kubelet)
    failpoints.enable("claims.watch.pods.intake", term)
    kubelet.vanish("pod-p")
    kubelet.create_pod("pod-r", labels=pod_labels(m.POD_IDLE))  # a second event to swap with
    st = op.informers["pods"].stats
    chk.judge(
        verdict,
        suite=SUITE,
        case="intake",
        buggy=False,
        fault=fault,
        run=lambda: _converged(truth, ns) + f" (dup {st.duplicated}, reordered {st.reordered})",
    )


def test_dropped_delete_healed_by_relist(
    claim_operator,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    failpoints,
    verdict,
):
    if not kube_cluster.can(COMPACT):
        pytest.skip(f"{kube_cluster.backend}: cannot compact etcd")
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(claim_operator, truth, ns, kubelet)
    pods = op.informers["pods"]
    # pod-p's grace-0 DELETE is two events (MODIFIED with deletionTimestamp, DELETED): drop both
    failpoints.enable("claims.watch.pods.intake", "2*drop")
    kubelet.vanish("pod-p")
    wait_for(
        lambda: pods.stats.dropped,
        timeout=SETTLE,
        what="pod-p's delete events dropped at intake",
        accept=lambda n: n == 2,
    )
    with kube_paths.watch_proxy.down():
        wait_for(lambda: pods.stats.breaks, timeout=SETTLE, what="pods watch cut")
        kube_paths.cluster.compact()
    chk.judge(
        verdict,
        suite=SUITE,
        case="intake",
        buggy=False,
        fault="DELETE dropped, then 410",
        run=lambda: _converged(truth, ns) + f" after relist #{pods.stats.lists}",
    )
