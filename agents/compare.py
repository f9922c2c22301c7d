"""The side-by-side report: RL baselines against world-model agents at equal env steps.

``armworld compare RUN_DIRS... --out report/`` reads two kinds of directory:

- an RL run (``armworld rl train``): its ``progress.json`` gives success against env steps
  over training; runs whose ``config.json`` differs only in seed form one curve (mean over seeds, band from
  the lowest to the highest seed). Its final success comes from ``eval/results.json`` (the
  evaluation harness, ``armworld eval --agent sb3:RUN --out RUN/eval``) when present, else
  from the last training evaluation.
- an evaluation (``armworld eval --out DIR``): ``DIR/results.json``. A world-model agent
  (``wm:PATH``) is placed at the env steps its training data cost: the actions in the
  trajectory files listed in the checkpoint's metadata, each file counted once (data used
  only for encoder pretraining is not recorded there, so not counted). A file that is not
  where the metadata says (its paths are relative to where training ran) counts with the
  ``env_steps`` its metadata entry records, if any; otherwise the cost is reported as
  unknown, with a note saying which file is missing. Other agents (expert, random) appear
  in the table only.

Writes ``report.md`` (a table of final success with Wilson 95% intervals, training wall
time and acting time per step) and one ``success_<env>.png`` per env.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from armworld.agents.evaluate import wilson_interval
from armworld.agents.rl import CONFIG, PROGRESS


@dataclass
class Entry:
    """One row of the report: an RL configuration over its seeds, or one evaluated agent."""

    label: str
    env_id: str
    kind: str  # "rl", "wm" or "other"
    successes: int
    episodes: int
    env_steps: int | None  # what training cost (RL: steps trained; wm: actions in its data; None: unknown)
    source: str  # where the final success comes from
    note: str | None = None  # why env_steps is unknown
    seeds: list[int] = field(default_factory=list)
    seed_rates: list[float] = field(default_factory=list)
    wall_time_s: float | None = None  # mean over seeds
    act_time_per_step_s: float | None = None
    curve: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # steps, mean, low, high

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None


def data_files(checkpoint: Path) -> dict[str, dict]:
    """``{sha256: entry}`` of the trajectory files a world model learned from, one per file:
    the ``data`` entries (``path``, ``bytes``, ``sha256``, ...) of its checkpoint metadata."""
    from armworld.worldmodel.checkpoint import METADATA, resolve

    return {d["sha256"]: d for d in _read_json(resolve(checkpoint) / METADATA).get("data", [])}


def data_env_steps(checkpoint: Path) -> tuple[int | None, str | None]:
    """Env steps (actions) in the trajectory files a world model learned from, and None;
    or None and the reason they are unknown (no files listed, a file gone without its
    count in the metadata)."""
    from armworld.datasets.hdf5 import TrajectoryFile

    files = data_files(checkpoint)
    if not files:
        return None, f"{checkpoint}'s metadata lists no training data"
    total = 0
    for entry in files.values():
        path = Path(entry["path"])
        if path.is_file():
            with TrajectoryFile(path) as f:
                total += sum(f.num_samples(demo) for demo in f.split(None))
        elif entry.get("env_steps") is not None:
            total += int(entry["env_steps"])
        else:
            return None, (
                f"its training data {path} is not there (paths are relative to where it was trained: run compare "
                "from that directory to count its env steps)"
            )
    return total, None


def _curve(points_per_seed: list[list[dict]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Success rate against env steps: mean, min and max over seeds on the union of their
    evaluation steps (each seed interpolated linearly), up to the shortest seed's last step."""
    last = min(points[-1]["env_steps"] for points in points_per_seed)
    steps = np.array(sorted({p["env_steps"] for points in points_per_seed for p in points if p["env_steps"] <= last}))
    rates = np.stack([
        np.interp(steps, [p["env_steps"] for p in points], [p["success_rate"] for p in points]) for points in points_per_seed
    ])
    return steps, rates.mean(0), rates.min(0), rates.max(0)


def _rl_label(progress: dict) -> str:
    her = "+HER" if progress.get("her") else ""
    return f"{progress['algo'].upper()}{her} ({progress['obs_mode']})"


def _settings(run: Path) -> str:
    """What a run was trained with, but its seed: its ``config.json`` (RL config, resolved
    hyperparameters, env kwargs) without the seed and the run's own bookkeeping."""
    config = _read_json(run / CONFIG)
    config["config"] = {k: v for k, v in config["config"].items() if k not in ("seed", "out", "resume", "progress_bar")}
    config.pop("armworld_version", None)
    return json.dumps(config, sort_keys=True)


def rl_entries(run_dirs: list[Path]) -> list[Entry]:
    """One entry per configuration over the seeds among ``run_dirs``: runs whose
    ``config.json`` differs only in seed. Configurations that share a label (algo, HER, obs
    mode) are told apart by their first run's directory name."""
    groups: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
    for run in run_dirs:
        progress = _read_json(run / PROGRESS)
        if not progress.get("points"):
            raise ValueError(f"{run / PROGRESS} has no evaluation points yet; let the run evaluate at least once")
        runs = groups[_settings(run)]
        same_seed = [other for other, p in runs if p["seed"] == progress["seed"]]
        if same_seed:
            raise ValueError(f"{run} and {same_seed[0]} are the same configuration and seed ({progress['seed']}); compare one of them")
        runs.append((run, progress))
    labels = defaultdict(int)
    for runs in groups.values():
        labels[(runs[0][1]["env_id"], _rl_label(runs[0][1]))] += 1
    entries = []
    for runs in groups.values():
        env_id, label = runs[0][1]["env_id"], _rl_label(runs[0][1])
        if labels[(env_id, label)] > 1:
            label = f"{label} [{runs[0][0].name}]"
        successes = episodes = 0
        rates, acts, sources = [], [], set()
        for run, progress in runs:
            final = run / "eval" / "results.json"
            if final.is_file():
                result = _read_json(final)
                n, k, act = result["episodes"], result["successes"], result.get("plan_time_per_action_s")
                sources.add("harness")
            else:
                last = progress["points"][-1]
                n, k, act = last["episodes"], last["successes"], last.get("act_time_per_step_s")
                sources.add("training eval")
            successes, episodes = successes + k, episodes + n
            rates.append(k / n)
            if act is not None:
                acts.append(act)
        entries.append(Entry(
            label=label, env_id=env_id, kind="rl", successes=successes, episodes=episodes,
            env_steps=int(np.mean([p["points"][-1]["env_steps"] for _, p in runs])),
            source=" + ".join(sorted(sources)), seeds=[p["seed"] for _, p in runs], seed_rates=rates,
            wall_time_s=float(np.mean([p["train_wall_time_s"] for _, p in runs])),
            act_time_per_step_s=float(np.mean(acts)) if acts else None,
            curve=_curve([p["points"] for _, p in runs]),
        ))
    return entries


def eval_entry(directory: Path) -> Entry:
    """An agent evaluated by the harness (``results.json``)."""
    result = _read_json(directory / "results.json")
    agent = result["agent"]
    kind = "wm" if agent.startswith("wm:") else "other"
    steps = note = None
    if kind == "wm":
        from armworld.agents.loading import model_path
        from armworld.datasets.hdf5 import DatasetError
        from armworld.worldmodel.checkpoint import CheckpointError

        try:
            steps, note = data_env_steps(model_path(agent))
        except (CheckpointError, DatasetError, FileNotFoundError) as error:  # the model or its data gone or broken
            note = f"its training data's env steps are unknown: {error}"
    rates = [s["success_rate"] for s in result.get("per_seed", {}).values()]
    return Entry(
        label=agent, env_id=result["env_id"], kind=kind, successes=result["successes"], episodes=result["episodes"],
        env_steps=steps, source="harness", note=note, seeds=list(result.get("seeds", [])), seed_rates=rates,
        act_time_per_step_s=result.get("plan_time_per_action_s"),
    )


def collect(run_dirs: list[str | Path]) -> list[Entry]:
    """Entries for every directory: RL runs grouped over seeds, evaluations one each."""
    rl, evals = [], []
    for d in map(Path, run_dirs):
        if (d / PROGRESS).is_file():
            rl.append(d)
        elif (d / "results.json").is_file():
            evals.append(eval_entry(d))
        else:
            raise ValueError(f"{d} is neither an RL run ({PROGRESS}) nor an evaluation (results.json)")
    return rl_entries(rl) + evals


def plot_env(entries: list[Entry], env_id: str, path: Path) -> None:
    """Success rate against env steps for one env: RL curves with their seed band, world-model
    agents as points with Wilson 95% error bars at their data's env-step cost (if known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for e in entries:
        if e.curve is not None:
            steps, mean, low, high = e.curve
            (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=f"{e.label}, {len(e.seeds)} seed(s)")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        elif e.kind == "wm" and e.env_steps is not None:
            lo, hi = wilson_interval(e.successes, e.episodes)
            ax.errorbar([e.env_steps], [e.success_rate], yerr=[[e.success_rate - lo], [hi - e.success_rate]],
                        fmt="*", markersize=12, capsize=4, label=f"{e.label} (data cost)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(env_id)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def markdown(entries: list[Entry], plots: dict[str, str], command: str | None = None) -> str:
    """report.md: per env, a table of final success and cost, and the plot."""
    lines = ["# RL baselines and world-model agents", ""]
    if command:
        lines += ["Made with:", "", "```", command, "```", ""]
    lines += [
        "Final success is judged after the episode's last step (goal within 0.05 m), pooled over seeds, with a "
        "Wilson 95% interval; per-seed rates follow. RL curves show the mean over seeds with a band from the lowest "
        "to the highest seed. Env steps: what training cost (RL: steps trained; world models: actions in their "
        "training data). Wall time: RL training time without its evaluations, mean over seeds. Act time: median "
        "seconds per action.",
        "",
    ]
    for env_id in sorted({e.env_id for e in entries}):
        lines += [f"## {env_id}", ""]
        if env_id in plots:
            lines += [f"![success against env steps]({plots[env_id]})", ""]
        lines += [
            "| agent | env steps | success | Wilson 95% CI | episodes | per-seed success | train wall time (s) | act time / step (ms) | source |",
            "|---|---:|---:|---|---:|---|---:|---:|---|",
        ]
        for e in sorted((e for e in entries if e.env_id == env_id), key=lambda e: (e.kind != "rl", e.label)):
            lo, hi = wilson_interval(e.successes, e.episodes)
            per_seed = ", ".join(f"{r:.2f}" for r in e.seed_rates) or "-"
            steps = ("unknown" if e.note else "-") if e.env_steps is None else f"{e.env_steps:,}"
            lines.append(
                f"| {e.label} | {steps} | {e.success_rate:.1%} ({e.successes}/{e.episodes}) | [{lo:.1%}, {hi:.1%}] | "
                f"{e.episodes} | {per_seed} | {_fmt(e.wall_time_s, digits=0)} | {_fmt(e.act_time_per_step_s, 1e3, 2)} | {e.source} |"
            )
        notes = [f"- {e.label}: env steps unknown: {e.note}." for e in entries if e.env_id == env_id and e.note]
        lines += ["", *notes] if notes else []
        lines.append("")
    return "\n".join(lines)


def compare(run_dirs: list[str | Path], out: str | Path, command: str | None = None) -> Path:
    """Write ``out/report.md`` and ``out/success_<env>.png``; returns the report's path."""
    if not run_dirs:
        raise ValueError("give at least one RL run or evaluation directory to compare")
    entries = collect(run_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for env_id in sorted({e.env_id for e in entries}):
        env_entries = [e for e in entries if e.env_id == env_id]
        if any(e.curve is not None or (e.kind == "wm" and e.env_steps is not None) for e in env_entries):
            name = f"success_{env_id.split('/')[-1].replace('-', '_')}.png"
            plot_env(env_entries, env_id, out / name)
            plots[env_id] = name
    report = out / "report.md"
    report.write_text(markdown(entries, plots, command))
    return report
