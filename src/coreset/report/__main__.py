"""``python -m coreset.report``: see :mod:`coreset.report.cli`."""

import sys

from coreset.report.cli import main

sys.exit(main())
