"""`python train.py …` in a checkout: the same as the installed command `spikebench-train …`
(the code is spikebench/train.py; `python train.py --help` describes it)."""

import sys

from spikebench.train import main

if __name__ == "__main__":
    sys.exit(main())
