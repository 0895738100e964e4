"""``python -m splitnet``."""

import sys

from splitnet.cli import main

sys.exit(main())
