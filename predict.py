"""`python predict.py …` in a checkout: the same as the installed command `spikebench-predict …`
(the code is spikebench/predict.py; `python predict.py --help` describes it)."""

import sys

from spikebench.predict import main

if __name__ == "__main__":
    sys.exit(main())
