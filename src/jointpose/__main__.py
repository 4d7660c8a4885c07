"""``python -m jointpose ...`` (also ``torchrun ... -m jointpose train ...``)."""

import sys

from .cli import main

sys.exit(main())
