"""A small dict-based client over the official ``kubernetes`` ApiClient.

Why not the generated typed methods for everything: the claim operator and the checks
work on plain JSON objects (like controller-runtime's unstructured objects), the generated
models cost a deserialisation per call, and the typed methods differ between built-in and
custom resources. Requests go through ``ApiClient.call_api`` — the official client's
transport, connection pool, TLS and timeouts — with one uniform error type. Watches use the
official ``kubernetes.watch.Watch`` (see ``harness/reconciler/claims/watch.py``), which
needs the generated list functions; :meth:`Kube.list_function` returns them.

Every call carries a timeout: a call never hangs the harness, whatever toxiproxy does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException

#: (connect, read) seconds for ordinary requests; watches set their own.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


PODS = Resource("Pod", "", "v1", "pods")
NAMESPACES = Resource("Namespace", "", "v1", "namespaces", namespaced=False)
CRDS = Resource(
    "CustomResourceDefinition",
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    namespaced=False,
)

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error, or None for transport errors."""
    return exc.status if isinstance(exc, ApiException) else None


def is_not_found(exc: BaseException) -> bool:
    return status_of(exc) == 404


def is_conflict(exc: BaseException) -> bool:
    return status_of(exc) == 409


class Kube:
    """Plain-JSON CRUD on one API server endpoint (direct or through a proxy)."""

    def __init__(
        self,
        api_client: kclient.ApiClient,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = "reconverge",
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self._host = api_client.configuration.host.rstrip("/")
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        key = (api_client.configuration.api_key or {}).get("authorization")
        if key:
            self._headers["Authorization"] = key

    @property
    def host(self) -> str:
        return self._host

    def close(self) -> None:
        """Drop pooled connections (and any thread pool) of the underlying client."""
        self.api_client.close()

    # -- transport ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] | float | None = None,
    ) -> dict[str, Any]:
        """One API call; returns the decoded JSON body.

        Raises:
            ApiException: any non-2xx answer (``.status`` carries the code), or a TLS error
                (status 0).
            urllib3.exceptions.HTTPError: a transport failure (timeout, reset, refused).
        """
        url = self._host + path
        if query:
            url += "?" + urlencode({k: _q(v) for k, v in query.items() if v is not None})
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = content_type
        resp = self.api_client.call_api(
            method,
            url,
            header_params=headers,
            body=body,
            _request_timeout=timeout or self.timeout,
        )
        resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        if not resp.data:
            return {}
        return dict(json.loads(resp.data))

    # -- verbs ----------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", res.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Items (sorted by name, as the API returns them) and the list resourceVersion."""
        out = self.request("GET", res.path(namespace), query={"labelSelector": label_selector})
        return list(out.get("items") or []), str(out.get("metadata", {}).get("resourceVersion", ""))

    def create(self, res: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        return self.request("POST", res.path(namespace), body=body)

    def update(
        self, res: Resource, namespace: str | None, body: dict[str, Any], *, sub: str = ""
    ) -> dict[str, Any]:
        """PUT: optimistic concurrency on ``metadata.resourceVersion`` (409 on conflict)."""
        name = body["metadata"]["name"]
        return self.request("PUT", res.path(namespace, name, sub), body=body)

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        sub: str = "",
        content_type: str = MERGE,
    ) -> dict[str, Any]:
        return self.request(
            "PATCH", res.path(namespace, name, sub), body=patch, content_type=content_type
        )

    def delete(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        *,
        grace_seconds: int | None = None,
        uid: str | None = None,
    ) -> dict[str, Any] | None:
        """DELETE; None when the object was already gone."""
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_seconds is not None:
            opts["gracePeriodSeconds"] = grace_seconds
        if uid:
            opts["preconditions"] = {"uid": uid}
        try:
            return self.request("DELETE", res.path(namespace, name), body=opts)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- watches ----------------------------------------------------------------------
    def list_function(self, res: Resource) -> Callable[..., Any]:
        """The generated list/watch function for ``res`` (what ``Watch.stream`` drives)."""
        if res == PODS:
            return kclient.CoreV1Api(self.api_client).list_namespaced_pod
        if res.group and res.namespaced:
            api = kclient.CustomObjectsApi(self.api_client)

            def list_custom(namespace: str, **kwargs: Any) -> Any:
                return api.list_namespaced_custom_object(
                    res.group, res.version, namespace, res.plural, **kwargs
                )

            return list_custom
        raise ValueError(f"no watch function for {res.kind}")


def _q(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
