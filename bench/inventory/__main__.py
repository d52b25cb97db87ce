"""``python -m bench.inventory``: run the benchmark and exit with its status (see ``cli``)."""

from __future__ import annotations

import sys

from bench.inventory.cli import main

if __name__ == "__main__":
    sys.exit(main())
