"""``python -m ketch``: the ``ketch`` command."""

import sys

from ketch.cli import main

sys.exit(main())
