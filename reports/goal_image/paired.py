"""Paired comparison of two `armworld eval` runs on the episodes both evaluated (matched by
reset seed): discordant counts and the exact two-sided McNemar test.

    python reports/goal_image/paired.py reports/goal_image/wm-sigreg-reach/results.json reports/goal_image/wm-init-reach/results.json
"""

from __future__ import annotations

import json
import sys
from math import comb


def main() -> None:
    first, second = ({e["reset_seed"]: e["success"] for e in json.load(open(path))["episode_results"]} for path in sys.argv[1:3])
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
