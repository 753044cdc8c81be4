"""`python -m completeverify.cli` runs the same command line as `python -m completeverify`."""

import sys

from . import main

sys.exit(main())
