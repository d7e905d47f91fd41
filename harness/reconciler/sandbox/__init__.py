"""The reference sandbox reconciler (seeds a, b, c): a node agent managing sandboxes through
containerd, with every bug of §4.4 of ``sandbox-lifecycle-domain.md`` as a named switch.

Data flows one way: containerd (truth) → this reconciler (view) → ``harness.checks.sandbox``.
"""

from harness.reconciler.sandbox.bugs import SWITCHES
from harness.reconciler.sandbox.errors import SandboxError
from harness.reconciler.sandbox.host import ReconcilerHost
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.timing import Timing

__all__ = ["SWITCHES", "ReconcilerHost", "SandboxError", "SandboxReconciler", "Timing"]
