"""``python -m riskmodel.cli`` (and ``torchrun ... -m riskmodel.cli``): the ``riskmodel`` command."""

import sys

from riskmodel.cli import main

if __name__ == "__main__":
    sys.exit(main())
