"""`python evaluate.py …` in a checkout: the same as the installed command `spikebench-evaluate …`
(the code is spikebench/evaluate.py; `python evaluate.py --help` describes it)."""

import sys

from spikebench.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
