"""``python -m chipqa.cli``: the same as the ``chipqa`` console script."""

import sys

from chipqa.cli.main import main

sys.exit(main())
