"""List + watch into a cache (an informer), with the watch loop of §5.2 and its naive variants.

The fixed loop, built on the official client's ``kubernetes.watch.Watch`` (§5.1):

- always passes ``timeout_seconds``, so ``Watch.stream`` never reconnects behind our back
  and raises a 410 at once; the loop owns every reconnect;
- passes ``_request_timeout=(connect, read)``: a silent stream (half-open connection, a
  black-holing proxy) raises ``ReadTimeoutError`` after ``read`` seconds and is re-opened —
  through whatever path the endpoint *now* points at;
- asks for bookmarks (``allow_watch_bookmarks=True``) and keeps the newest
  resourceVersion from events and bookmarks;
- on a clean end or a broken stream, re-watches from the last resourceVersion after a
  short backoff; on **410 Gone** it re-lists and diffs the list against the cache (objects
  that vanished meanwhile become synthetic DELETED events, like client-go's Replace).

- resync: when an idle stream's read timeout comes and the last list is older than
  ``resync_period``, it re-lists (diffed into the cache) instead of re-watching — what
  heals an event the watch lost (see ``_resync_due``).

Naive switches (``bugs.py``), each changing one decision below: ``watch_no_read_timeout``,
``watch_end_means_done``, ``watch_no_relist_on_410``, ``no_periodic_resync``.

Watch-level faults beyond bytes enter at the intake, one failpoint per resource,
``claims.watch.<plural>.intake`` (journaled like every fault):

==================  =======================================================================
``drop``            the event is swallowed
``duplicate(n)``    delivered n+1 times
``return(reorder)`` held back and delivered right after the next event (adjacent swap)
``return(gone)``    the stream ends as if the server had sent ERROR 410 Gone
``error(msg)``      same as ``return(gone)``
``close``           the stream ends as if the connection broke mid-chunk
``delay``/``hang``  the intake stalls (hang: until released, disabled or reset)
==================  =======================================================================

Note on the client (v37): ``Watch.stream(deserialize=False)`` reads ``event['raw_object']``
for ERROR events, which only exists when deserialising — a 410 would surface as KeyError.
So we stream with ``Watch(return_type="object")``: events are deserialised "as object",
i.e. left as dicts, and ``raw_object`` is present.
"""

from __future__ import annotations

import copy
import http.client
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import urllib3
from kubernetes import watch as kwatch
from kubernetes.client.exceptions import ApiException

import failpoints
from harness import journal
from harness.providers.kube.api import Kube, Resource
from harness.providers.kube.endpoint import Endpoint
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims.model import name as obj_name
from harness.reconciler.claims.model import rv as obj_rv
from harness.reconciler.claims.timing import Timing

#: handler(type, old, new): type ADDED|MODIFIED|DELETED; for DELETED ``new`` is the last state
Handler = Callable[[str, dict[str, Any] | None, dict[str, Any]], None]

_BROKEN = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ssl.SSLError)


class _Gone(Exception):
    """410 Gone: the resourceVersion we hold is no longer served."""


class _Broken(Exception):
    """The stream ended without a proper end (or the intake said ``close``)."""


@dataclass
class WatchStats:
    """Counters a check reads to tell "stuck" from "slow"."""

    lists: int = 0
    sessions: int = 0  # watch requests sent
    opened: int = 0  # watch requests the server accepted (response headers arrived)
    events: int = 0
    bookmarks: int = 0
    clean_ends: int = 0
    breaks: int = 0
    read_timeouts: int = 0
    gone: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    resyncs: int = 0
    last_event_mono: float = 0.0
    state: str = "new"  # listing | opening | watching | backoff | ended | crashed | stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Informer:
    """One resource in one namespace: a cache kept current by list + watch."""

    def __init__(
        self,
        resource: Resource,
        namespace: str,
        endpoint: Endpoint,
        *,
        timing: Timing,
        bugs: B.Bugs,
        handler: Handler,
        owner: str = "claims",
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.endpoint = endpoint
        self.timing = timing
        self.bugs = bugs
        self.handler = handler
        self.owner = owner
        self.lock = threading.RLock()
        self.cache: dict[str, dict[str, Any]] = {}
        self.rv = ""
        self.synced = threading.Event()
        self.established = threading.Event()  # a watch stream has been accepted once
        self.stats = WatchStats()
        self.intake = failpoints.point(f"claims.watch.{resource.plural}.intake")
        self._held: dict[str, Any] | None = None
        self._listed_mono = 0.0
        self._stop = threading.Event()
        self._watch: kwatch.Watch | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Informer:
        self._thread = threading.Thread(
            target=self._run, name=f"{self.owner}-watch-{self.resource.plural}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop; a blocked read is unblocked by shutting the socket down."""
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._emit("stop_timeout", state=self.stats.state)
        if self.stats.state not in ("crashed", "ended"):
            self.stats.state = "stopped"

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- cache reads (copies: callers may mutate) --------------------------------------
    def get(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.cache.get(name)
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, pred: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Cached objects (sorted by name) for which ``pred`` holds."""
        with self.lock:
            objs = [self.cache[n] for n in sorted(self.cache)]
            return [copy.deepcopy(o) for o in objs if pred is None or pred(o)]

    def versions(self) -> dict[str, str]:
        with self.lock:
            return {n: obj_rv(o) for n, o in self.cache.items()}

    # -- the loop ----------------------------------------------------------------------
    def _emit(self, event: str, **fields: Any) -> None:
        journal.emit(f"{self.owner}.watch", event, kind=self.resource.plural, **fields)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a panic failpoint, or a harness bug: record, don't hide
            self.stats.state = "crashed"
            self._emit("crashed", error=f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                return

    def _backoff(self) -> None:
        self.stats.state = "backoff"
        self._stop.wait(self.timing.reconnect_backoff)

    def _loop(self) -> None:
        need_list = True
        while not self._stop.is_set():
            kube = self.endpoint.client(timeout=self.timing.request_timeout)
            try:
                if need_list:
                    self._relist(kube)
                    need_list = False
                self._watch_once(kube)
                self.stats.clean_ends += 1
                self._emit("stream_ended", rv=self.rv)
                if self.bugs.on(B.WATCH_END_MEANS_DONE):
                    # naive loop (kubernetes-path.md §5.1, "generator ended = done"): the
                    # generator returned, so the caller assumes nothing more will happen.
                    self.stats.state = "ended"
                    self._emit("watch_done", reason="stream ended", rv=self.rv)
                    return
            except _Gone as exc:
                self.stats.gone += 1
                self._emit("gone_410", rv=self.rv, detail=str(exc))
                if self.bugs.on(B.WATCH_NO_RELIST_ON_410):
                    # naive loop (§5.1 410 Gone): re-watch from the same, compacted
                    # resourceVersion instead of re-listing — 410 again, forever.
                    self._backoff()
                    continue
                need_list = True
            except (_Broken, *_BROKEN) as exc:
                if self._stop.is_set():
                    return
                idle = _is_read_timeout(exc)
                if idle:
                    self.stats.read_timeouts += 1
                else:
                    self.stats.breaks += 1
                self._emit("stream_broken", rv=self.rv, error=_short(exc))
                if self.bugs.on(B.WATCH_END_MEANS_DONE) and not need_list:
                    # naive loop (§5.1): the `for event in stream` loop left (an exception
                    # ended it), and the code after it treats that as "watch finished".
                    self.stats.state = "ended"
                    self._emit("watch_done", reason=_short(exc), rv=self.rv)
                    return
                if idle and self._resync_due():
                    need_list = True
                self._backoff()
            except ApiException as exc:
                if self._stop.is_set():
                    return
                self.stats.breaks += 1
                self._emit("api_error", status=exc.status, reason=str(exc.reason)[:200])
                self._backoff()
            finally:
                self._watch = None
                kube.close()
        self.stats.state = "stopped"

    def _resync_due(self) -> bool:
        """Whether an idle stream's read timeout should re-list rather than re-watch.

        The resync: a list diffed into the cache (like client-go's Replace) heals an
        event the watch lost — only objects that differ reach the handlers, so a
        periodic pass re-enqueues nothing that did not change (a replay of every
        cached object would also hide ``pod_watch_label_only``, which upstream's 10 h
        sync period heals). Only at a read timeout, the routine end of an idle stream:
        a broken stream, a clean end or a 410 keep their own handling, so the naive
        loops' switches (§5.1) still meet the case they break on.
        """
        if self.bugs.on(B.NO_PERIODIC_RESYNC):
            # naive loop (kubernetes-path.md §5): a watch-only cache, re-listed on 410
            # only — a dropped or reordered event is never caught up.
            return False
        due = time.monotonic() - self._listed_mono >= self.timing.resync_period
        if due:
            self.stats.resyncs += 1
            self._emit("resync", rv=self.rv)
        return due

    def _relist(self, kube: Kube) -> None:
        self.stats.state = "listing"
        self._listed_mono = time.monotonic()
        items, list_rv = kube.list(self.resource, self.namespace)
        with self.lock:
            old = self.cache
            new = {obj_name(o): o for o in items}
            self.cache = new
            self.rv = list_rv
            self.stats.lists += 1
            self._emit("listed", rv=list_rv, items=len(new), relist=self.synced.is_set())
            for n in sorted(new):
                if n not in old:
                    self.handler("ADDED", None, new[n])
                elif obj_rv(old[n]) != obj_rv(new[n]):
                    self.handler("MODIFIED", old[n], new[n])
            for n in sorted(set(old) - set(new)):
                # vanished while we were not watching: client-go's DeletedFinalStateUnknown
                self.handler("DELETED", old[n], old[n])
        self.synced.set()

    def _watch_once(self, kube: Kube) -> None:
        self.stats.state = "opening"
        self.stats.sessions += 1
        w = kwatch.Watch(return_type="object")
        self._watch = w
        kwargs: dict[str, Any] = {
            "resource_version": self.rv,
            "timeout_seconds": self.timing.server_timeout_seconds,
            "allow_watch_bookmarks": True,
        }
        if not self.bugs.on(B.WATCH_NO_READ_TIMEOUT):
            kwargs["_request_timeout"] = (
                self.timing.request_connect,
                self.timing.watch_read_timeout,
            )
        # else: naive loop (§5.1 half-open): no _request_timeout, the socket has no
        # timeout and a silent connection blocks the read forever.
        list_fn = kube.list_function(self.resource)

        def fn(*args: Any, **kw: Any) -> Any:
            resp = list_fn(*args, **kw)  # returns once the server accepted the watch
            self.stats.opened += 1
            self._emit("watch_open", rv=self.rv, via=self.endpoint.address)
            self.established.set()
            return resp

        self.stats.state = "watching"
        try:
            for ev in w.stream(fn, self.namespace, **kwargs):
                if self._stop.is_set():
                    return
                for e in self._intake(ev):
                    self._apply(e)
        except ApiException as exc:
            if exc.status == 410:
                raise _Gone(str(exc.reason)) from None
            raise
        finally:
            # a held (reordered) event was received: deliver it however the stream ended
            self._flush_held()

    # -- intake: where watch-level faults enter -----------------------------------------
    def _intake(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        if ev.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return [ev]
        out = [ev]
        action = self.intake.evaluate()
        if action is not None:
            obj = ev.get("raw_object") or {}
            where = {
                "type": ev["type"],
                "name": obj.get("metadata", {}).get("name"),
                "rv": obj.get("metadata", {}).get("resourceVersion"),
            }
            kind, arg = action.kind, (action.arg or "")
            if kind == "drop":
                self.stats.dropped += 1
                self._emit("intake_drop", **where)
                out = []
            elif kind == "duplicate":
                self.stats.duplicated += action.count
                self._emit("intake_duplicate", copies=action.count, **where)
                out = [ev] * (1 + action.count)
            elif kind == "return" and arg == "reorder" and self._held is None:
                self.stats.reordered += 1
                self._emit("intake_hold", **where)
                self._held = ev
                return []
            elif kind == "error" or (kind == "return" and arg == "gone"):
                self._emit("intake_gone", **where)
                raise _Gone(f"failpoint {action.name}: {arg or 'gone'}")
            elif kind == "close":
                self._emit("intake_close", **where)
                raise _Broken(f"failpoint {action.name}: close")
            else:
                self._emit(f"intake_{kind}", arg=arg, **where)
                action.apply_sync(deadline=None)
        if self._held is not None and out:
            held, self._held = self._held, None
            out = [*out, held]
        return out

    def _flush_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._apply(held)

    def _apply(self, ev: dict[str, Any]) -> None:
        etype = ev.get("type")
        obj = ev.get("raw_object") or ev.get("object") or {}
        if etype == "BOOKMARK":
            self.stats.bookmarks += 1
            self.rv = str(obj.get("metadata", {}).get("resourceVersion", self.rv))
            return
        if etype not in ("ADDED", "MODIFIED", "DELETED"):
            return
        n = obj_name(obj)
        with self.lock:
            old = self.cache.get(n)
            if etype == "DELETED":
                self.cache.pop(n, None)
            else:
                self.cache[n] = obj
            self.rv = obj_rv(obj) or self.rv
            self.stats.events += 1
            self.stats.last_event_mono = time.monotonic()
            self._emit("event", type=etype, name=n, rv=obj_rv(obj))
            self.handler(etype, old, obj)


def _is_read_timeout(exc: BaseException) -> bool:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return True
    cause = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
    return isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
