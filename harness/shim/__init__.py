"""The shim stub: a pure-Python runtime-v2 shim (``io.containerd.stub.v2``) that real
containerd launches and talks ttrpc to, with failpoints at every RPC phase.

``main`` is the binary protocol (``start``/``delete``; kept free of asyncio and protobuf
imports because both run inside containerd's deadlines), ``states`` the task state table,
``service`` the task service backed by real child processes, ``events`` the publisher,
``daemon`` the long-lived server. See ``docs/shim.md``.
"""
