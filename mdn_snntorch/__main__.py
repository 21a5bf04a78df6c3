"""``python -m mdn_snntorch`` is the ``mdn`` command."""

import sys

from mdn_snntorch.cli import main

sys.exit(main())
