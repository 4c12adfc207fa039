import sys

from coreset.cli import main

sys.exit(main())
