"""The benchmark behind ``ginv bench``: the measures' cost next to the bare model, a naive
loop and tmeasures, with every number checked equal first.

Usage (the same options as ``ginv bench --help``)::

    python benchmarks/bench.py --size 8 --n 1000 --threads 1,2 --json
    python benchmarks/bench.py --size 28 --json --out bench-28.json

The logic lives in :mod:`ginvariance.bench`; ``benchmarks/tmeasures_worker.py`` runs
tmeasures in its own virtual environment.
"""

from __future__ import annotations

import sys

from ginvariance.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
