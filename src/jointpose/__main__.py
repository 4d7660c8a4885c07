"""``python -m jointpose ...`` (also ``torchrun ... -m jointpose train ...``)."""

import sys

from jointpose.cli import main

sys.exit(main())
