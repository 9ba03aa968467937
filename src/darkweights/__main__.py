"""``python -m darkweights`` = the ``darkweights`` command."""

import sys

from .cli import main

sys.exit(main())
