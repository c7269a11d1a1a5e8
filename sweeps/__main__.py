"""``python -m sweeps {run,report,check} ...``."""

import sys

from sweeps.commands import main

if __name__ == "__main__":
    sys.exit(main())
