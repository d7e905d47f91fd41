"""Our own protobuf definitions for ttrpc, the containerd task-v2 shim API, containerd
events and the containerd gRPC API subset the harness uses, plus the generated modules.

Written from the documented field numbers (``docs`` of the shim protocol), not copied
from upstream files: the upstream files import gogoproto options that current protobuf
tooling rejects, and the PyPI ``containerd`` stubs no longer load with protobuf 5+.
Package and message names match upstream because type URLs (``containerd.events.TaskExit``)
and gRPC method paths are part of the wire contract. Regenerate with ``ci/regen-protos``;
a test fails when the committed modules differ from a fresh generation.
"""
