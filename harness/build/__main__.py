"""``python -m harness.build``."""

import sys

from harness.build.main import main

sys.exit(main())
