"""``python -m harness.cli``: the ``reconverge`` command without its console script."""

from harness.cli import main

raise SystemExit(main())
