"""``python -m shared.operator``: see :mod:`shared.operator`."""

import sys

from shared.operator.cli import main

sys.exit(main())
