"""ttrpc: containerd's lightweight RPC over unix sockets (no Python package exists).

``framing`` is sans-IO (bytes in, frames out); ``client`` and ``server`` are thin asyncio
shells around it. The wire facts (10-byte header, 4 MiB limit, odd client stream ids,
status codes as containerd's errdefs map them) are documented in
``docs/ttrpc.md``.
"""

from harness.ttrpc.client import Client
from harness.ttrpc.errors import Closed, Code, TTRPCError
from harness.ttrpc.server import CallContext, NoReply, Server

__all__ = ["CallContext", "Client", "Closed", "Code", "NoReply", "Server", "TTRPCError"]
