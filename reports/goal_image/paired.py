"""Paired comparison of two `armworld eval` runs on the episodes both evaluated (matched by
reset seed): discordant counts and the exact two-sided McNemar test. Each run is a
``results.json`` or a folder, whose ``results.json`` files (its seed sub-folders' included)
count as one run.

    python reports/goal_image/paired.py reports/goal_image/wm-sigreg-reach/results.json reports/goal_image/wm-init-reach/results.json
    python reports/goal_image/paired.py reports/goal_image/wm-ftrand-reach reports/goal_image/wm-init18k-reach
"""

from __future__ import annotations

import json
import sys
from math import comb
from pathlib import Path


def outcomes(path: Path) -> dict[int, bool]:
    """Success per reset seed of the run at ``path`` (a ``results.json`` or a folder of them)."""
    files = sorted(path.glob("**/results.json")) if path.is_dir() else [path]
    return {e["reset_seed"]: e["success"] for f in files for e in json.loads(f.read_text())["episode_results"]}


def main() -> None:
    first, second = (outcomes(Path(path)) for path in sys.argv[1:3])
    pairs = [(first[seed], second[seed]) for seed in first if seed in second]
    if not pairs:
        raise SystemExit("error: the two runs evaluated no episode in common")
    only_a, only_b = sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    print(json.dumps({"episodes": len(pairs), "both": sum(a and b for a, b in pairs), "only_first": only_a,
                      "only_second": only_b, "mcnemar_exact_p": p}, indent=1))


if __name__ == "__main__":
    main()
