"""Seed d, the watch loop: naive watch-loop switches under toxiproxy and API-server faults.

One scenario for every case (the shape of bug 4's symptom, §5–6 of ``kubernetes-path.md``):
claim C is Bound to pod P, an idle pod Q exists, the operator (all four PR #592 fixes on)
has settled. Then the operator's *watch path* is faulted and P vanishes. The only way the
operator can learn about it is its pod watch: a correct loop re-watches (or re-lists) and
C goes Lost and rebinds to Q (CONVERGED); a naive one never hears of it and C stays Bound to
a pod that is gone while its pod watch shows that switch's own signature (CAUGHT) — the
symptom predicates demand both, held for a window past the point a fixed loop recovers.

The operator dials two toxiproxy proxies (``api`` for requests, ``watch`` for streams), so a
fault on the watch path leaves its requests alone.

Faults and the switch each one exposes (each case proves its fault took effect — the
stream ended, the read went silent, a 410 came back, the server restarted — and records
it with ``faults.observed``; failpoints are counted from the journal):

- ``reset_peer`` mid-watch — the stream breaks; ``watch_end_means_done`` stops listening;
- black hole (``timeout`` toxic, no close) plus a fail-over of *new* connections — the
  half-open connection of §5.1; ``watch_no_read_timeout`` waits on the dead socket forever;
- a cut plus an etcd compaction — the re-watch gets 410 Gone; ``watch_no_relist_on_410``
  retries the compacted resourceVersion forever;
- a graceful API-server restart — streams end; ``watch_end_means_done`` stops listening.

Plus watch-level faults at the intake (failpoint ``claims.watch.pods.intake``), fixed
operator only: duplicated and reordered events must not matter (their counters are
findings), and a dropped DELETE must be healed by the relist a 410 forces (the 410 and the
relist are proven from the journal).

A case whose backend lacks a capability (compaction, restart) skips with the reason —
and fails under ``--reconverge-strict`` (``require_capability``): a silent skip is a
vacuous pass. The check is a call, not a marker, so the mutation meta-test that calls
these functions directly gets it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from harness.checks import claims as chk
from harness.checks import faults
from harness.providers.kube import COMPACT, RESTART
from harness.pytest_plugin.kube import require_capability
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.objects import create_claim, pod_labels
from harness.verdict import Finding
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "seed-d-watch"
SETTLE = 30.0
#: the operator's pod-watch intake failpoint (a module constant: the mutation meta-test
#: misspells it to prove an unfired failpoint ends INCONCLUSIVE)
INTAKE_POINT = "claims.watch.pods.intake"

GONE = "claim-c Bound to a vanished pod"
REBOUND = "claim-c rebound"


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _variant(buggy: bool) -> str:
    return "buggy" if buggy else "fixed"


def _settled_scenario(claim_operator, truth, ns, kubelet, bugs=()):
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-c"))
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=3600)
    op = claim_operator(bugs)
    chk.settle(op, truth, ns, chk.claim_bound("claim-c", "pod-p"), timeout=SETTLE, what="settled")
    return op


def _vanish_pod_p(kubelet, truth, ns) -> None:
    """The trigger: pod-p disappears; recorded as fired once the truth confirms it."""
    kubelet.vanish("pod-p")
    if truth.get(m.PODS, ns, "pod-p") is None:
        faults.observed("pod-p vanished")


def _observe(
    truth, ns, op, loop: chk.Check, loop_name: str, *, window: float, more: Callable | None = None
):
    """claim-c rebound (fixed), or the gone-pod symptom and the loop's signature held."""

    def held(f: Mapping[str, Finding], _w: chk.World, stable: float) -> str | None:
        if chk.failing(f, GONE, loop_name) and stable >= window and (more is None or more()):
            return f"held {stable:.1f}s: {f[loop_name].symptom}"
        return None

    return chk.observe(
        truth,
        ns,
        [
            chk.fact(REBOUND, chk.claim_bound("claim-c", "pod-q")),
            chk.never(
                GONE,
                chk.all_of(
                    chk.claim_phase("claim-c", m.BOUND, pod="pod-p"), chk.pod_absent("pod-p")
                ),
                "claim-c Bound to pod-p, which is gone",
            ),
            loop,
        ],
        op=op,
        final=held,
        final_end="held",
        timeout=SETTLE + window,
        what="claim-c rebound",
    )


def _signature(loop_name: str, what: str) -> Callable[[Mapping[str, Finding]], str | None]:
    def predicate(f: Mapping[str, Finding]) -> str | None:
        if chk.ended(f, "held") and chk.failing(f, GONE, REBOUND, loop_name):
            return f"{what}: {f[chk.END].symptom}; claim-c Bound to pod-p that is gone"
        return None

    return predicate


ALIVE = "pods watch loop running"


def _loop_alive(stats) -> chk.Check:
    name = ALIVE

    def check(_: chk.World) -> Finding:
        if stats.state in ("ended", "crashed"):
            return Finding(
                name,
                False,
                f"pods watch loop {stats.state} when its stream ended "
                f"({stats.breaks} breaks, {stats.clean_ends} clean ends)",
            )
        return Finding(name, True)

    return check


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
    buggy,
    claim_operator,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    claim_timing,
    reconverge_run,
    verdict,
):
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_END_MEANS_DONE} if buggy else ()
    )
    pods = op.informers["pods"]
    ends = _stream_ends(pods.stats)
    toxic = kube_paths.watch_proxy.add_toxic("reset_peer", timeout=0)
    _vanish_pod_p(kubelet, truth, ns)  # the DELETED event's bytes meet the reset
    wait_for(
        lambda: _stream_ends(pods.stats) > ends,
        timeout=SETTLE,
        what="pods watch cut by reset_peer",
    )
    faults.observed("reset_peer", **pods.stats.as_dict())
    kube_paths.watch_proxy.remove_toxic(toxic)
    obs = _observe(truth, ns, op, _loop_alive(pods.stats), ALIVE, window=_dead_window(claim_timing))
    verdict.judge(
        suite=SUITE,
        case="end-means-done",
        variant=_variant(buggy),
        fault="reset_peer mid-watch",
        findings=obs.findings,
        fired=faults.fired(
            reconverge_run.dir, verdict.since, effects=["reset_peer", "pod-p vanished"]
        ),
        symptom=_signature(ALIVE, "watch loop ended with its reset stream"),
        fixed_text="stream reset -> re-watched from the last rv; claim-c Lost -> Bound to pod-q",
    )


@pytest.mark.parametrize("buggy", variants(B.WATCH_NO_READ_TIMEOUT))
def test_black_hole_half_open_watch(
    buggy,
    claim_operator,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    claim_timing,
    reconverge_run,
    verdict,
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
    _vanish_pod_p(kubelet, truth, ns)
    window = _silent_window(claim_timing)

    reopened_name = "pods watch re-opened"

    def reopened(_: chk.World) -> Finding:
        st = pods.stats
        if st.sessions > sessions or st.read_timeouts:
            return Finding(reopened_name, True)
        return Finding(
            reopened_name,
            False,
            f"pods watch blocked on the silent connection: no read timeout, no new session, "
            f"{st.events - events} events since the black hole (state {st.state})",
        )

    obs = _observe(
        truth,
        ns,
        op,
        reopened,
        reopened_name,
        window=window,
        more=lambda: pods.stats.state == "watching",
    )
    # the toxic's effect, seen either way: the old connection went silent — a fixed loop's
    # read timed out on it; a naive loop got no event although pod-p is gone in the truth
    st = pods.stats
    if st.read_timeouts or (st.events == events and obs.end == "held"):
        faults.observed("black hole", read_timeouts=st.read_timeouts, events=st.events - events)
    verdict.judge(
        suite=SUITE,
        case="no-read-timeout",
        variant=_variant(buggy),
        fault="black hole (timeout toxic) + fail-over",
        findings=obs.findings,
        fired=faults.fired(
            reconverge_run.dir, verdict.since, effects=["black hole", "pod-p vanished"]
        ),
        symptom=_signature(
            reopened_name, f"watch blocked on a silent connection ({window:.0f}s window)"
        ),
        fixed_text=(
            f"read timeout after {claim_timing.watch_read_timeout:.0f}s, re-watched through "
            "the fail-over; claim-c Lost -> Bound to pod-q"
        ),
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
    reconverge_run,
    verdict,
    request,
):
    require_capability(request, kube_cluster, COMPACT)
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_NO_RELIST_ON_410} if buggy else ()
    )
    pods = op.informers["pods"]
    stale_rv = pods.rv
    with kube_paths.watch_proxy.down():  # every watch stream cut, reconnects refused
        wait_for(lambda: pods.stats.breaks, timeout=SETTLE, what="pods watch cut")
        faults.observed("watch cut", breaks=pods.stats.breaks)
        _vanish_pod_p(kubelet, truth, ns)
        rev = kube_paths.cluster.compact()
        faults.observed("etcd compaction", revision=rev)

    relisted_name = "pods relisted after 410"

    def relisted(_: chk.World) -> Finding:
        st = pods.stats
        if st.lists >= 2:
            return Finding(relisted_name, True)
        return Finding(
            relisted_name,
            False,
            f"410 Gone x{st.gone} re-watching rv {stale_rv} (compacted at {rev}), lists={st.lists}",
        )

    obs = _observe(
        truth,
        ns,
        op,
        relisted,
        relisted_name,
        window=claim_timing.wait_cache + 1,
        more=lambda: pods.stats.gone >= 3,
    )
    verdict.judge(
        suite=SUITE,
        case="no-relist-on-410",
        variant=_variant(buggy),
        fault="cut + etcd compaction",
        findings=obs.findings,
        fired={
            **faults.fired(
                reconverge_run.dir,
                verdict.since,
                effects=["watch cut", "etcd compaction", "pod-p vanished"],
            ),
            "410": chk.journaled(
                reconverge_run.dir, verdict.since, "claims.watch", "gone_410", kind="pods"
            ),
        },
        symptom=_signature(relisted_name, "never relisted after 410 Gone"),
        fixed_text="410 -> relist (pod-p missing = synthetic DELETE); claim-c -> Bound to pod-q",
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
    reconverge_run,
    verdict,
    request,
):
    require_capability(request, kube_cluster, RESTART)
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(
        claim_operator, truth, ns, kubelet, {B.WATCH_END_MEANS_DONE} if buggy else ()
    )
    pods = op.informers["pods"]
    ends = _stream_ends(pods.stats)
    took = kube_cluster.restart_apiserver(graceful=True)
    faults.observed("apiserver restart", seconds=round(took, 3))
    wait_for(
        lambda: _stream_ends(pods.stats) > ends,
        timeout=SETTLE,
        what="pods watch ended by restart",
    )
    faults.observed("watch ended by restart", **pods.stats.as_dict())
    _vanish_pod_p(kubelet, truth, ns)
    obs = _observe(truth, ns, op, _loop_alive(pods.stats), ALIVE, window=_dead_window(claim_timing))
    verdict.judge(
        suite=SUITE,
        case="end-means-done",
        variant=_variant(buggy),
        fault="apiserver graceful restart",
        findings=obs.findings,
        fired=faults.fired(
            reconverge_run.dir,
            verdict.since,
            effects=["apiserver restart", "watch ended by restart", "pod-p vanished"],
        ),
        symptom=_signature(ALIVE, f"watch loop ended with the restart ({took:.1f}s)"),
        fixed_text=f"restart ({took:.1f}s) -> re-watched; claim-c Lost -> Bound to pod-q",
    )


INTAKE = [
    pytest.param(
        "duplicate(2)",
        "each pod event delivered 3 times",
        "duplicated",
        lambda n: n >= 2,
        id="duplicate",
    ),
    # pod-p's grace-0 DELETE is two events, MODIFIED then DELETED: hold the DELETED back
    # until pod-r's ADDED has been delivered
    pytest.param(
        "1*off->1*return(reorder)",
        "pod-p DELETED swapped with pod-r ADDED",
        "reordered",
        lambda n: n == 1,
        id="reorder",
    ),
]


@pytest.mark.parametrize(("term", "fault", "counter", "expect"), INTAKE)
def test_intake_faults_are_harmless(
    term,
    fault,
    counter,
    expect,
    claim_operator,
    kube_truth,
    kube_namespace,
    kubelet,
    failpoints,
    reconverge_run,
    verdict,
):
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(claim_operator, truth, ns, kubelet)
    failpoints.enable(INTAKE_POINT, term)
    _vanish_pod_p(kubelet, truth, ns)
    kubelet.create_pod("pod-r", labels=pod_labels(m.POD_IDLE))  # a second event to swap with
    st = op.informers["pods"].stats
    obs = chk.observe(
        truth,
        ns,
        [
            chk.fact(REBOUND, chk.claim_bound("claim-c", "pod-q")),
            chk.counter(
                f"pods intake {counter}",
                lambda: int(getattr(st, counter)),
                expect,
                f"pods intake {counter}={{n}} with {term}",
            ),
        ],
        op=op,
        timeout=SETTLE,
        what="claim-c rebound",
    )
    verdict.judge(
        suite=SUITE,
        case="intake",
        variant="fixed",
        fault=fault,
        findings=obs.findings,
        fired=faults.fired(
            reconverge_run.dir,
            verdict.since,
            failpoints=[INTAKE_POINT],
            effects=["pod-p vanished"],
        ),
        fixed_text=(
            f"claim-c Lost -> Bound to pod-q (duplicated {st.duplicated}, reordered {st.reordered})"
        ),
    )


def test_dropped_delete_healed_by_relist(
    claim_operator,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    failpoints,
    reconverge_run,
    verdict,
    request,
):
    require_capability(request, kube_cluster, COMPACT)
    ns, truth = kube_namespace, kube_truth
    op = _settled_scenario(claim_operator, truth, ns, kubelet)
    pods = op.informers["pods"]
    # pod-p's grace-0 DELETE is two events (MODIFIED with deletionTimestamp, DELETED): drop both
    failpoints.enable(INTAKE_POINT, "2*drop")
    _vanish_pod_p(kubelet, truth, ns)
    wait_for(
        lambda: pods.stats.dropped,
        timeout=SETTLE,
        what="pod-p's delete events dropped at intake",
        accept=lambda n: n == 2,
    )
    with kube_paths.watch_proxy.down():
        wait_for(lambda: pods.stats.breaks, timeout=SETTLE, what="pods watch cut")
        faults.observed("watch cut", breaks=pods.stats.breaks)
        rev = kube_paths.cluster.compact()
        faults.observed("etcd compaction", revision=rev)
    obs = chk.observe(
        truth,
        ns,
        [
            chk.fact(REBOUND, chk.claim_bound("claim-c", "pod-q")),
            chk.counter(
                "pods intake dropped both delete events",
                lambda: pods.stats.dropped,
                lambda n: n == 2,
                "pods intake dropped {n} events",
            ),
        ],
        op=op,
        timeout=SETTLE,
        what="claim-c rebound",
    )
    # the heal must be the relist the 410 forced, not something else (journal evidence)
    relists = chk.journaled(
        reconverge_run.dir, verdict.since, "claims.watch", "listed", kind="pods", relist=True
    )
    findings = [
        *obs.findings,
        Finding("pods relisted after the 410", True)
        if relists
        else Finding("pods relisted after the 410", False, "no relist journaled after the 410"),
    ]
    verdict.judge(
        suite=SUITE,
        case="intake",
        variant="fixed",
        fault="DELETE dropped, then 410",
        findings=findings,
        fired={
            **faults.fired(
                reconverge_run.dir,
                verdict.since,
                failpoints=[INTAKE_POINT],
                effects=["pod-p vanished", "watch cut", "etcd compaction"],
            ),
            "410": chk.journaled(
                reconverge_run.dir, verdict.since, "claims.watch", "gone_410", kind="pods"
            ),
        },
        fixed_text=f"dropped DELETE healed by relist #{pods.stats.lists} after the 410",
    )
