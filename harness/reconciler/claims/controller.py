"""The reference claim operator: CNClaim Bind/Sync, the pod watch mapping, the wiring.

A Python model of matrixone-operator's CNClaim and CNClaimSet controllers (§6.3 of
``kubernetes-path.md``), small enough to read in one sitting, with seed d's four bugs as
switches (``bugs.py``) next to the code they change: Finalize (``finalize.py``),
scale-in (``scalein.py``), and here Sync's NotFound branch and the pod watch mapping.

Why the official synchronous ``kubernetes`` client and threads rather than
``kubernetes_asyncio``: the §5 behaviours the watch-loop switches reproduce (silent
reconnect or silent end, ProtocolError on a cut, a forever-blocked read without
``_request_timeout``) are the official client's; ``kubernetes_asyncio`` has different
ones (it reconnects on its own when watching forever). Threads are also what
controller-runtime's shape maps to: one goroutine per informer, one per worker.

Determinism (§6.4 notes): informers start one after another (pools, pods, claim sets,
claims), each listing in name order, and workers start only after every cache synced, so
the initial queue order is fixed; one worker per controller; reads come from the caches,
so a case controls exactly which events the operator sees.
"""

from __future__ import annotations

import copy
import random
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from harness import journal
from harness.errors import TooSlow
from harness.providers.kube.api import is_conflict
from harness.providers.kube.endpoint import Endpoint
from harness.reconciler.claims import claimset as claimset_ctrl
from harness.reconciler.claims import model as m
from harness.reconciler.claims.bugs import LOST_KEEPS_PODNAME, POD_WATCH_LABEL_ONLY, Bugs
from harness.reconciler.claims.context import Ctx, ReSync, refresh
from harness.reconciler.claims.finalize import build_pod_claim_index, finalize
from harness.reconciler.claims.migrate import migrate
from harness.reconciler.claims.queue import WorkQueue
from harness.reconciler.claims.store import CNStore, StoreError
from harness.reconciler.claims.timing import Timing
from harness.reconciler.claims.watch import Informer
from harness.wait import wait_for


class ClaimOperator:
    """Both controllers of one operator instance, scoped to one namespace."""

    def __init__(
        self,
        *,
        api: Endpoint,
        namespace: str,
        watch: Endpoint | None = None,
        bugs: Bugs | set[str] | frozenset[str] | tuple[str, ...] = (),
        timing: Timing | None = None,
        store: CNStore | None = None,
        seed: int = 0,
        name: str = "claims",
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.bugs = bugs if isinstance(bugs, Bugs) else Bugs(bugs)
        self.timing = timing or Timing()
        self.store = store or CNStore()
        self.api = api
        self.watch = watch or api
        self.claim_queue = WorkQueue(
            "cnclaim", backoff=self.timing.error_backoff, backoff_max=self.timing.error_backoff_max
        )
        self.set_queue = WorkQueue(
            "cnclaimset",
            backoff=self.timing.error_backoff,
            backoff_max=self.timing.error_backoff_max,
        )

        def informer(res: m.Resource, handler: Any) -> Informer:
            return Informer(
                res,
                namespace,
                self.watch,
                timing=self.timing,
                bugs=self.bugs,
                handler=handler,
                owner=name,
            )

        self.ctx = Ctx(
            namespace=namespace,
            api=api,
            bugs=self.bugs,
            timing=self.timing,
            store=self.store,
            pods=informer(m.PODS, self._on_pod),
            claims=informer(m.CNCLAIMS, self._on_claim),
            claimsets=informer(m.CNCLAIMSETS, self._on_claimset),
            pools=informer(m.CNPOOLS, lambda *_: None),
            rng=random.Random(seed),
        )
        self.informers = {
            "cnpools": self.ctx.pools,
            "pods": self.ctx.pods,
            "cnclaimsets": self.ctx.claimsets,
            "cnclaims": self.ctx.claims,
        }
        self._workers: list[threading.Thread] = []
        self._stats_lock = threading.Lock()
        self.started = False

    # -- life cycle ---------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> ClaimOperator:
        """Start informers one by one, then the workers.

        Each informer must have listed (cache synced) *and* had its first watch accepted
        before the next starts: a case may fault the watch path right after start, and a
        watch still being opened would dodge the fault.
        """
        journal.emit(
            "claims",
            "operator_starting",
            ns=self.namespace,
            bugs=self.bugs.label,
            scale=self.timing.scale,
            api=self.api.address,
            watch=self.watch.address,
        )
        for plural, inf in self.informers.items():
            inf.start()
            try:
                wait_for(inf.synced.is_set, timeout=timeout, what=f"{plural} cache synced")
                wait_for(inf.established.is_set, timeout=timeout, what=f"{plural} watch open")
            except TooSlow:
                self.stop()
                raise
        for queue, fn in (
            (self.claim_queue, self._reconcile_claim),
            (self.set_queue, self._reconcile_set),
        ):
            t = threading.Thread(
                target=self._work, args=(queue, fn), name=f"{self.name}-{queue.name}", daemon=True
            )
            t.start()
            self._workers.append(t)
        self.started = True
        journal.emit("claims", "operator_started", ns=self.namespace)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop workers, then informers (a blocked watch read is unblocked)."""
        self.claim_queue.shutdown()
        self.set_queue.shutdown()
        for t in self._workers:
            t.join(timeout)
        for inf in self.informers.values():
            inf.stop(timeout)
        self.ctx.close()
        journal.emit("claims", "operator_stopped", ns=self.namespace)

    # -- observation (for checks) ----------------------------------------------------------
    def idle(self) -> bool:
        """No key queued or running and no requeue timer pending, in both controllers."""
        return self.claim_queue.idle() and self.set_queue.idle()

    def pending(self) -> dict[str, Any]:
        return {"cnclaim": self.claim_queue.pending(), "cnclaimset": self.set_queue.pending()}

    def cache_versions(self) -> dict[str, dict[str, str]]:
        return {plural: inf.versions() for plural, inf in self.informers.items()}

    def activity(self) -> int:
        """A counter that moves whenever the operator takes on work (adds, reconciles)."""
        with self._stats_lock:
            runs = sum(v for k, v in self.ctx.stats.items() if k.startswith("reconcile/"))
        return self.claim_queue.adds + self.set_queue.adds + runs

    def count(self, key: str) -> int:
        """A statistics counter, e.g. ``finalize_incomplete/<claim>`` or ``reconcile/<claim>``."""
        with self._stats_lock:
            return self.ctx.stats[key]

    def _bump(self, key: str) -> None:
        with self._stats_lock:
            self.ctx.stats[key] += 1

    # -- event handlers (run on informer threads, under the informer lock) ------------------
    def _on_claim(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        # ResourceVersionChangedPredicate: a re-delivered object (same RV) is ignored
        if etype == "MODIFIED" and old is not None and m.rv(old) == m.rv(new):
            return
        self.claim_queue.add(m.name(new))
        for ref in new.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("kind") == m.CNCLAIMSETS.kind and ref.get("controller"):
                self.set_queue.add(ref["name"])

    def _on_claimset(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if etype == "MODIFIED" and old is not None and m.rv(old) == m.rv(new):
            return
        self.set_queue.add(m.name(new))

    def _on_pod(self, etype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """``watchPodChange``: which claims a pod event concerns."""
        # common.PodStatusChangedPredicate: an update passes only when the status changed;
        # label-only updates (ensureOwnership, reclaim) enqueue nothing.
        if etype == "MODIFIED" and old is not None and old.get("status") == new.get("status"):
            return
        requests: list[str] = []
        holder = m.labels(new).get(m.CLAIMED_BY)
        if holder:
            requests.append(holder)
        if not self.bugs.on(POD_WATCH_LABEL_ONLY):
            # fix 1b8f2364e53c (PR #592 bug 4): also every claim whose spec.podName names
            # this pod, de-duplicated (containsRequest) — from the claims cache.
            pod_name = m.name(new)
            for c in self.ctx.claims.list(lambda c: m.spec(c).get("podName") == pod_name):
                if m.name(c) not in requests:
                    requests.append(m.name(c))
        # else: seed d, PR #592 bug 4, pre-fix b8b168403171: only the claimed-by label maps a
        # pod to a claim; once reclaim/Finalize removed it, a pod delete reaches no claim and
        # the claim stays Bound to a pod that is gone until the 10 h resync.
        for r in requests:
            self.claim_queue.add(r)

    # -- workers ----------------------------------------------------------------------------
    def _work(self, queue: WorkQueue, fn: Any) -> None:
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                self._bump(f"reconcile/{key}")
                after = fn(key)
                queue.forget(key)
                if after is not None:
                    queue.add_after(key, after)
            except Exception as exc:
                delay = queue.add_rate_limited(key)
                self._bump(f"error/{key}")
                journal.emit(
                    "claims",
                    "reconcile_error",
                    ns=self.namespace,
                    queue=queue.name,
                    key=key,
                    error=f"{type(exc).__name__}: {str(exc)[:300]}",
                    retry_in=round(delay, 3),
                )
            finally:
                queue.done(key)

    def _reconcile_set(self, key: str) -> float | None:
        try:
            return claimset_ctrl.reconcile(self.ctx, key)
        except ReSync as r:
            self.ctx.log("resync", claimset=key, reason=str(r), after=round(r.after, 3))
            return r.after

    # -- CNClaim ----------------------------------------------------------------------------
    def _reconcile_claim(self, key: str) -> float | None:
        ctx = self.ctx
        c = ctx.claims.get(key)
        if c is None:
            return None
        if m.deleting(c):
            if m.CLAIM_FINALIZER not in m.finalizers(c):
                return None
            if finalize(ctx, c):
                ctx.set_finalizers(
                    m.CNCLAIMS, c, [f for f in m.finalizers(c) if f != m.CLAIM_FINALIZER]
                )
                ctx.log("finalized", claim=key)
                return None
            self._bump(f"finalize_incomplete/{key}")
            ctx.log("does not complete finalizing, retry", claim=key)
            return ctx.timing.requeue
        if m.CLAIM_FINALIZER not in m.finalizers(c):
            refresh(c, ctx.set_finalizers(m.CNCLAIMS, c, [*m.finalizers(c), m.CLAIM_FINALIZER]))
        before = copy.deepcopy(c.get("status") or {})
        after: float | None = None
        try:
            # Observe: no pod yet -> Bind; otherwise Sync inline
            after = self._sync(c) if m.spec(c).get("podName") else self._bind(c)
        except ReSync as r:
            ctx.log("resync", claim=key, reason=str(r), after=round(r.after, 3))
            after = r.after
        # upstream writes status after Observe, also when Observe asked for a resync (an
        # error, by contrast, goes to the rate-limited requeue with nothing written)
        if (c.get("status") or {}) != before:
            ctx.update(m.CNCLAIMS, c, sub="status")
            ctx.log("status", claim=key, phase=m.status(c).get("phase"))
        return after

    def _bind(self, c: dict[str, Any]) -> float | None:
        """``Bind``: adopt an orphan pod or select an idle one; else wait for the pool."""
        ctx, me = self.ctx, m.name(c)
        st = m.status(c)
        if st.get("phase") != m.PENDING:
            st["phase"] = m.PENDING
        orphans = ctx.pods.list(
            lambda p: (
                m.labels(p).get(m.PHASE_LABEL) == m.POD_BOUND
                and m.labels(p).get(m.CLAIMED_BY) == me
            )
        )
        pod = orphans[0] if orphans else self._select_cn(c)
        if pod is None:
            pools = ctx.pools.list(
                lambda p: m.selector_matches(
                    m.spec(c).get("selector"), m.spec(p).get("podLabels") or {}
                )
            )
            if pools and m.spec(c).get("poolName") != m.name(pools[0]):
                refresh(c, ctx.patch(m.CNCLAIMS, me, {"spec": {"poolName": m.name(pools[0])}}))
            raise ReSync("wait pod to bound", ctx.timing.bind_wait)
        self._sync_bind_pod(c, pod)
        return None

    def _select_cn(self, c: dict[str, Any]) -> dict[str, Any] | None:
        """An idle pod matching the selector that no other claim holds, claimed by Update."""
        ctx, me = self.ctx, m.name(c)
        sel = m.spec(c).get("selector")
        pool = m.spec(c).get("poolName")
        owner = m.spec(c).get("ownerName")

        def candidate(p: dict[str, Any]) -> bool:
            lbl = m.labels(p)
            return (
                m.selector_matches(sel, lbl)
                and lbl.get(m.PHASE_LABEL) == m.POD_IDLE
                and (not pool or lbl.get(m.POOL_NAME) == pool)
                and m.OUTDATED not in lbl
                and not m.deleting(p)
            )

        # upstream sorts by previous owner, then CreationTimestamp.Second() (0-59: effectively
        # arbitrary); we use the full timestamp and the name so the pick is deterministic.
        cands = sorted(
            ctx.pods.list(candidate),
            key=lambda p: (
                0 if owner and m.labels(p).get(m.LAST_OWNER) == owner else 1,
                p["metadata"].get("creationTimestamp", ""),
                m.name(p),
            ),
        )
        held = build_pod_claim_index(ctx, exclude=me)
        for pod in cands:
            if m.name(pod) in held:
                continue
            try:
                return self._ensure_ownership(c, pod)
            except ApiException as exc:
                if is_conflict(exc):
                    ctx.log("pod taken meanwhile, try next", claim=me, pod=m.name(pod))
                    continue
                raise
        return None

    def _ensure_ownership(self, c: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
        """Stamp the pod as ours with an optimistic Update (409 when the cache was stale)."""
        want = {m.PHASE_LABEL: m.POD_BOUND, m.CLAIMED_BY: m.name(c)}
        if m.CLAIMSET in m.labels(c):
            want[m.CLAIMSET] = m.labels(c)[m.CLAIMSET]
        if m.spec(c).get("ownerName"):
            want[m.OWNER] = m.spec(c)["ownerName"]
        want.update(m.spec(c).get("additionalPodLabels") or {})
        current = m.labels(pod)
        if all(current.get(k) == v for k, v in want.items()):
            return pod
        pod["metadata"]["labels"] = {**current, **want}
        updated = self.ctx.update(m.PODS, pod)
        self.ctx.log(
            "ensure ownership", claim=m.name(c), pod=m.name(pod), was=current.get(m.CLAIMED_BY)
        )
        return updated

    def _sync_bind_pod(self, c: dict[str, Any], pod: dict[str, Any]) -> None:
        """Store first, then the claim's spec and status (``syncBindPod``)."""
        ctx, me = self.ctx, m.name(c)
        lbl = m.labels(pod)
        if m.DIRECT_POD not in lbl and lbl.get(m.KRUISE_STATE) != "Normal":
            raise ReSync("pod lifecycle state is not Normal", ctx.timing.retry_patch)
        try:
            ctx.store.patch_cn_store(m.name(pod), m.STORE_WORKING, m.spec(c).get("cnLabels") or [])
        except StoreError as exc:
            raise ReSync(f"patch store: {exc}", ctx.timing.retry_patch) from None
        sp = m.spec(c)
        want = {
            "podName": m.name(pod),
            "nodeName": pod.get("spec", {}).get("nodeName", ""),
        }
        pool = lbl.get(m.POOL_NAME)
        if pool:
            want["poolName"] = pool
        if any(sp.get(k, "") != v for k, v in want.items()) or (
            pool and m.labels(c).get(m.POOL_NAME) != pool
        ):
            patch: dict[str, Any] = {"spec": want, "metadata": {}}
            if pool:
                patch["metadata"]["labels"] = {m.POOL_NAME: pool}
            # The binding is decided on the cached claim: if it changed meanwhile (its set
            # deleted it as Lost), 409 and decide again. Found by reconverge explore
            # (docs/explore-claims.md): an unconditional patch bound a claim its set had
            # just deleted, and Finalize reclaimed the pods of a Bound claim whose
            # spec.sourcePod was still set.
            patch["metadata"]["resourceVersion"] = m.rv(c)
            refresh(c, ctx.patch(m.CNCLAIMS, me, patch))
            ctx.log("bound", claim=me, pod=m.name(pod))
        st = m.status(c)
        if not st.get("boundTime"):
            st["boundTime"] = m.timestamp()
        if st.get("phase") in (None, "", m.PENDING):
            st["phase"] = m.BOUND
        store = dict(st.get("store") or {})
        if store.get("string") != m.name(pod) or not store.get("boundTime"):
            store["boundTime"] = m.timestamp()  # refreshed when the store pod changes
        store.update(
            {
                "serviceID": pod["metadata"].get("uid", ""),
                "string": m.name(pod),
                "sqlAddress": f"{pod.get('status', {}).get('podIP', '')}:6001",
                "workState": 1,
                "labels": m.spec(c).get("cnLabels") or [],
            }
        )
        st["store"] = store

    def _sync(self, c: dict[str, Any]) -> float | None:
        """``Sync`` of a bound claim: is the pod still there and still ours?"""
        ctx, me = self.ctx, m.name(c)
        st = m.status(c)
        pod_name = m.spec(c)["podName"]
        pod = ctx.pods.get(pod_name)
        if pod is None:
            bound = m.parse_time(st.get("boundTime"))
            waited = (m.now() - bound).total_seconds() if bound else ctx.timing.wait_cache
            if waited < ctx.timing.wait_cache:
                # the cache may lag a fresh bind: trust NotFound only waitCacheTimeout later
                raise ReSync("pod not found, wait cache", ctx.timing.wait_cache - waited)
            st["phase"] = m.LOST
            ctx.log("pod not found, claim lost", claim=me, pod=pod_name)
            if not ctx.bugs.on(LOST_KEEPS_PODNAME):
                # fix 1b8f2364e53c (PR #592 bug 3): clear the stale reference; the spec
                # change re-enqueues the claim and Observe routes it to Bind.
                refresh(c, ctx.patch(m.CNCLAIMS, me, {"spec": {"podName": "", "nodeName": ""}}))
                ctx.log("cleared lost claim spec", claim=me, pod=pod_name)
            # else: seed d, PR #592 bug 3, pre-fix b8b168403171: spec.podName is kept, so
            # every later Observe goes to Sync (never Bind): Lost with a dead pod forever.
            return None
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Unknown"):
            # residual gap upstream (also after the fix): Lost without clearing the spec
            st["phase"] = m.LOST
            ctx.log("pod terminal, claim lost", claim=me, pod=pod_name, pod_phase=phase)
            return None
        pod = self._ensure_ownership(c, pod)
        self._sync_bind_pod(c, pod)
        if m.source_pod(c):
            return migrate(ctx, c)
        return None
