"""The reference claim operator (seed d: matrixone-operator PR #592) and its bug switches.

::

    from harness.reconciler.claims import ClaimOperator, Timing, bugs
    op = ClaimOperator(api=endpoint, namespace=ns, bugs={bugs.POD_WATCH_LABEL_ONLY},
                       timing=Timing().scaled(0.1)).start()

One module per concern: ``controller.py`` (wiring, Bind/Sync, pod watch mapping),
``finalize.py``, ``claimset.py``, ``scalein.py``, ``migrate.py``, ``watch.py`` (informers
and the watch loop), ``queue.py``, ``store.py`` (the MatrixOne store stub),
``bugs.py`` (switch names and symptoms), ``timing.py``, ``model.py``.
"""

from harness.reconciler.claims import bugs
from harness.reconciler.claims.bugs import Bugs
from harness.reconciler.claims.controller import ClaimOperator
from harness.reconciler.claims.store import CNStore, StoreError
from harness.reconciler.claims.timing import SUITE_SCALE, Timing

__all__ = ["SUITE_SCALE", "Bugs", "CNStore", "ClaimOperator", "StoreError", "Timing", "bugs"]
