"""``python -m seqflow`` runs the ``seqflow`` command line."""

import sys

from seqflow.cli import main

sys.exit(main())
