"""``python -m coreset.experiments.report``: see :mod:`coreset.experiments.report.cli`."""

import sys

from coreset.experiments.report.cli import main

sys.exit(main())
