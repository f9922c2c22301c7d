"""CLI verbs for the RL baselines: ``armworld rl train`` and ``armworld compare``.

    armworld rl train --algo sac --her --env FrankaReach-v0 --obs-mode state --steps 20000 --seed 0 --out runs/rl/reach_sac_s0
    armworld rl train ... --out runs/rl/reach_sac_s0 --resume      # continue from the latest checkpoint
    armworld compare runs/rl/reach_sac_s* results/wm_reach --out report/
"""

from __future__ import annotations

import argparse
import shlex

import yaml

from armworld.agents.rl_config import ALGO_NAMES, RLConfig
from armworld.commands import check_output, env_id, fail, user_errors
from armworld.envs.argtypes import add_options, options_from


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (VALUE in YAML, e.g. gamma=0.98), got {text!r}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"the value of {key} is not valid YAML ({error.problem}), in {text!r}") from None


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    rl = subparsers.add_parser("rl", help="Stable-Baselines3 baselines (PPO, SAC, TD3, TQC)")
    verbs = rl.add_subparsers(dest="rl_command", metavar="VERB", required=True)
    tr = verbs.add_parser(
        "train",
        help="train an SB3 baseline on an armworld env",
        description="Train PPO, SAC, TD3 or TQC (+HER) with the hyperparameters in agents/hyperparams/<algo>.yaml; "
        "writes model.zip, progress.json (success against env steps), checkpoints and TensorBoard logs.",
    )
    tr.add_argument("--algo", required=True, choices=ALGO_NAMES)
    tr.add_argument("--her", action=argparse.BooleanOptionalAction, default=None, help="HER replay (default: the YAML's)")
    tr.add_argument("--env", type=env_id, required=True, help="env id, e.g. FrankaReach-v0 or armworld/FrankaPush-v0")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--hyperparams", "-p", nargs="*", type=_override, default=[], metavar="KEY=VALUE", help="override YAML keys")
    add_options(tr, RLConfig())  # the other options, declared on RLConfig
    tr.set_defaults(func=run_train)

    cmp = subparsers.add_parser(
        "compare",
        help="report: RL success against env steps beside world-model agents",
        description="Read RL runs (progress.json) and evaluations (results.json) and write report.md with "
        "success-against-env-steps plots and a table of final success with Wilson intervals.",
    )
    cmp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="RL run directories and `armworld eval` output directories")
    cmp.add_argument("--out", required=True, help="report directory")
    cmp.set_defaults(func=run_compare)


def run_train(args: argparse.Namespace) -> int:
    import gymnasium

    from armworld.agents.rl import train

    try:
        check_output(args.out, folder=True)
        config = options_from(
            RLConfig, args, algo=args.algo, env_id=args.env, her=args.her, out=args.out, hyperparams=dict(args.hyperparams)
        )
        run_dir = train(config)
    except user_errors(FileExistsError, TypeError, gymnasium.error.Error) as error:
        return fail(str(error))
    print(f"trained {run_dir}: model.zip, progress.json; evaluate with `armworld eval --agent sb3:{run_dir} ...`")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from armworld.agents.compare import compare

    command = "armworld compare " + " ".join(shlex.quote(r) for r in args.runs) + f" --out {shlex.quote(args.out)}"
    try:
        check_output(args.out, *args.runs, folder=True)
        report = compare(args.runs, args.out, command=command)
    except user_errors() as error:
        return fail(str(error))
    print(f"wrote {report}")
    return 0
