"""``python -m reliability.malformed``."""

import sys

from reliability.malformed.cli import main

if __name__ == "__main__":
    sys.exit(main())
