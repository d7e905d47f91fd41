"""reconverge: real servers, injected faults, and checks that a reconciler converges.

The pipeline is providers -> reconciler -> checks -> journal -> report. Only the names
re-exported here are public; modules below may change.
"""

from harness.errors import ReconvergeError, TooSlow
from harness.wait import wait_for

__all__ = ["ReconvergeError", "TooSlow", "wait_for"]
