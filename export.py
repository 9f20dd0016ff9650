"""`python export.py …` in a checkout: the same as the installed command `spikebench-export …`
(the code is spikebench/export.py; `python export.py --help` describes it)."""

import sys

from spikebench.export import main

if __name__ == "__main__":
    sys.exit(main())
