"""`python -m faceanon`: the same command line as the `faceanon` script."""

import sys

from faceanon.cli import main

sys.exit(main())
