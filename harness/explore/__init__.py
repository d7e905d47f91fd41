"""Exploration (issue #12): schedules nobody wrote, run on real processes, shrunk, replayed.

``schedule`` (the step vocabulary, JSON, the T1…Tn table), ``strategy`` (Hypothesis
strategies over it, every draw journaled), ``world`` (the real servers of one explore run:
containerd 1.6.20, the stub shim, toxiproxy), ``execute`` (one schedule → findings and an
outcome), ``engine`` (search, k-of-n confirmation, shrinking, determinism), ``regress``
(regression files, ``reconverge repro <file.json>``), ``merge`` (shards → one verdicts.json
and one JUnit), ``cli`` (``reconverge explore`` / ``reconverge merge``). See docs/explore.md.
"""
