"""Exploration (issue #12): schedules nobody wrote, run on real processes, shrunk, replayed.

World-neutral: ``schedule`` (steps, JSON, the T1…Tn table, saved files), ``draws`` (every
draw journaled with its index), ``result`` (one run's outcome and findings), ``engine``
(search, k-of-n confirmation, shrinking, budgets), ``regress`` (regression files,
``reconverge repro <file.json>``), ``merge`` (shards → one verdicts.json, JUnit, report),
``cli`` (``reconverge explore`` / ``reconverge merge``). One package per world:
``sandbox/`` (containerd 1.6.20, the stub shim, toxiproxy: ``world``, ``strategy``,
``execute``). See docs/explore.md.
"""
