"""Figure of sections 8 and 9: success undisturbed and under ``randomization="default"``, per model.

Reads the ``results.json`` of the evaluations named below (folders of this report; a folder's
``seed1``, ``seed2`` sub-folders count too) and draws success with Wilson 95% intervals.

    python reports/goal_image/robustness.py --figure worldmodel/figures/robustness.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

from armworld.agents.evaluate import wilson_interval

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
# panel -> model -> (undisturbed folders, randomised folders)
RUNS = {
    "FrankaReach, the goal image alone": {
        "15,000 steps\n(shipped before)": (["wm-sigreg-15k-reach-icem-h3"], ["wm-sigreg-15k-reach-rand-icem-h3"]),
        "+ 3,000 on plain scenes\n(control)": ([], ["wm-ftplain-reach-rand"]),
        "+ 3,000 on plain and\nrandomised scenes (shipped)": (["wm-ftrand-reach"], ["wm-ftrand-reach-rand"]),
        "the same 18,000 steps,\ninitialised encoder": (["wm-init18k-reach"], ["wm-init18k-reach-rand"]),
    },
    "FrankaPush, through the sub-goal images": {
        "15,000 steps\n(shipped before)": (["wm-sigreg-15k-push-subgoals-icem-h3"], ["wm-sigreg-15k-push-subgoals-rand-icem-h3"]),
        "+ 3,000 on plain and\nrandomised scenes (shipped)": (["wm-ftrand-push-subgoals"], ["wm-ftrand-push-subgoals-rand"]),
    },
}


def count(folders: list[str]) -> tuple[int, int]:
    """Successes and episodes over the folders' ``results.json``, their seed sub-folders included."""
    files = [f for name in folders for f in sorted((HERE / name).glob("**/results.json"))]
    results = [json.loads(f.read_text()) for f in files]
    return sum(r["successes"] for r in results), sum(r["episodes"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", required=True, help="PNG to write")
    args = parser.parse_args()
    widths = [len(models) for models in RUNS.values()]  # a panel's width follows its number of models
    fig, axes = plt.subplots(1, len(RUNS), figsize=(2.2 * sum(widths), 4.2), squeeze=False, width_ratios=widths)
    table = {}
    for ax, (panel, models) in zip(axes[0], RUNS.items()):
        for i, (model, folders) in enumerate(models.items()):
            for offset, (condition, colour, names) in enumerate(
                zip(("undisturbed", "randomised"), ("tab:blue", "tab:orange"), folders)
            ):
                if not names:
                    continue
                successes, episodes = count(names)
                low, high = wilson_interval(successes, episodes)
                rate, x = successes / episodes, i + (offset - 0.5) * 0.38
                ax.bar(x, 100 * rate, 0.36, color=colour, label=condition if i == 0 else None)
                ax.errorbar(x, 100 * rate, [[100 * (rate - low)], [100 * (high - rate)]], color="black", capsize=3)
                ax.text(x, 3, f"{successes}/{episodes}", ha="center", fontsize=7, color="white")
                table[f"{panel} | {model.replace(chr(10), ' ')} | {condition}"] = [successes, episodes]
        ax.set_xticks(range(len(models)), list(models), fontsize=8)
        ax.set_ylim(0, 118)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("success (%), Wilson 95%")
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=120)
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
