"""The equal-budget experiment: RL baselines at a few env-step budgets, beside world-model agents.

For every env, observation mode and seed, one run trains to the largest budget and is
evaluated (training evaluations) at every budget on the way, so each budget costs no extra
training. State observations train SAC+HER, pixels train PPO on 64x64 ``rgb_front`` images
(2 envs); both take their hyperparameters from agents/hyperparams. Each final model is then
evaluated by the harness (``armworld eval``'s protocol) and everything goes into
``armworld compare``'s report, with a table of success at each budget appended.

    python examples/rl_budget.py --budgets 20000,50000,100000 --seeds 0,1,2 --out runs/rl_budget \\
        --wm-results results/wm_reach results/wm_push     # optional: `armworld eval` outputs of wm: agents

Runs already finished are reused and interrupted ones resumed from their latest
checkpoint (one interrupted before its first checkpoint starts over), so the script can
be rerun with larger budgets or more seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
from functools import reduce
from pathlib import Path

import numpy as np

from armworld.agents.compare import compare
from armworld.agents.evaluate import EvalConfig, evaluate, write_results
from armworld.agents.rl import PROGRESS, RLConfig, latest_checkpoint, load_sb3_agent, sb3_env_kwargs, train

ALGO_FOR = {"state": "sac", "pixels": "ppo"}


def ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def run_one(env_id: str, obs_mode: str, seed: int, budgets: list[int], out: Path, eval_episodes: int) -> Path:
    """Train (or reuse, or resume) one run to the largest budget; a run interrupted before
    its first checkpoint has nothing to resume and starts over."""
    run = out / f"{env_id}_{obs_mode}_s{seed}"
    progress = json.loads((run / PROGRESS).read_text()) if (run / PROGRESS).is_file() else {}
    if not (progress.get("finished") and progress["points"][-1]["env_steps"] >= max(budgets)):
        resume = latest_checkpoint(run) is not None
        if run.exists() and not resume:
            print(f"restarting {run}: it was interrupted before its first checkpoint")
            shutil.rmtree(run)
        config = RLConfig(
            algo=ALGO_FOR[obs_mode], env_id=env_id, obs_mode=obs_mode, steps=max(budgets), seed=seed, out=str(run),
            eval_freq=reduce(math.gcd, budgets), eval_episodes=eval_episodes, checkpoint_freq=min(budgets), resume=resume,
        )
        train(config)
    return run


def harness_eval(run: Path, episodes: int, seeds: tuple[int, ...]) -> None:
    """``armworld eval --agent sb3:RUN`` into ``RUN/eval`` (kept when it is newer than the model)."""
    results = run / "eval" / "results.json"
    if results.is_file() and results.stat().st_mtime > (run / "model.zip").stat().st_mtime:
        previous = json.loads(results.read_text())
        if previous["episodes_per_seed"] == episodes and tuple(previous["seeds"]) == seeds:
            return
    kwargs = sb3_env_kwargs(run)
    config = EvalConfig(kwargs["env_id"], seeds=seeds, episodes=episodes, env_kwargs=kwargs["env_kwargs"])
    result = evaluate(lambda env, seed: load_sb3_agent(str(run), env), config, agent_name=f"sb3:{run}")
    write_results(result, run / "eval")


def budget_table(runs: list[Path], budgets: list[int]) -> str:
    """Markdown: success at each budget (training evaluations), mean and range over seeds."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        p = json.loads((run / PROGRESS).read_text())
        groups.setdefault((p["env_id"], p["obs_mode"], p["algo"]), []).append(p)
    lines = [
        "## Success at equal budgets",
        "",
        "Training evaluations (evaluation seed 0's episodes, deterministic actions) at each budget, or at the "
        "first evaluation after it where rollouts overshoot (PPO collects 512 steps at a time): mean over seeds, "
        "lowest-highest in brackets.",
        "",
        "| env | obs | algo | seeds | " + " | ".join(f"{b:,} steps" for b in budgets) + " |",
        "|---|---|---|---:|" + "---:|" * len(budgets),
    ]
    for (env_id, obs, algo), progresses in sorted(groups.items()):
        cells = []
        for b in budgets:
            rates = [next((pt["success_rate"] for pt in p["points"] if pt["env_steps"] >= b), None) for p in progresses]
            rates = [r for r in rates if r is not None]
            cells.append(f"{np.mean(rates):.2f} [{min(rates):.2f}-{max(rates):.2f}]" if rates else "-")
        lines.append(f"| {env_id} | {obs} | {algo} | {len(progresses)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=ints, default=[20000, 50000, 100000], help="env steps, e.g. 20000,50000,100000")
    parser.add_argument("--seeds", type=ints, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--envs", default="armworld/FrankaReach-v0,armworld/FrankaPush-v0")
    parser.add_argument("--obs", default="state,pixels", help="observation modes: state, pixels or both")
    parser.add_argument("--train-eval-episodes", type=int, default=20, help="episodes per training evaluation")
    parser.add_argument("--eval-episodes", type=int, default=50, help="harness episodes per evaluation seed, final models")
    parser.add_argument("--eval-seeds", type=ints, default=[0, 1, 2], help="harness evaluation seeds (the protocol: 3 or more)")
    parser.add_argument("--wm-results", nargs="*", default=[], help="`armworld eval` output directories of wm: agents")
    parser.add_argument("--out", default="runs/rl_budget")
    args = parser.parse_args()

    out = Path(args.out)
    runs = []
    for env_id in args.envs.split(","):
        for obs_mode in args.obs.split(","):
            for seed in args.seeds:
                run = run_one(env_id.split("/")[-1], obs_mode, seed, args.budgets, out, args.train_eval_episodes)
                harness_eval(run, args.eval_episodes, tuple(args.eval_seeds))
                runs.append(run)
    command = "python examples/rl_budget.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = compare([*runs, *args.wm_results], out / "report", command=command)
    report.write_text(report.read_text() + "\n" + budget_table(runs, args.budgets))
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
