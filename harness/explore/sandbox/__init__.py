"""The sandbox world: containerd 1.6.20 + the stub shim + toxiproxy + the reference sandbox
reconciler (``world``), its Hypothesis strategy (``strategy``) and one schedule's run and
judgement (``execute``). The step vocabulary is in :mod:`harness.explore.schedule`.
"""
