"""CLI verbs for experiments: ``armworld experiment passive-video``.

    armworld experiment passive-video --scale small --out runs/passive-video --plan   # the points and a cost estimate
    armworld experiment passive-video --scale small --out runs/passive-video          # run (again: resumes)

A thin wrapper over :mod:`armworld.agents.passive_video`; see reports/passive_video/README.md.
"""

from __future__ import annotations

import argparse

from armworld.commands import check_output, fail, positive_int, user_errors

SCALE_NAMES = ("smoke", "small", "full")  # armworld.agents.passive_video.SCALES, named here without importing it


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    experiment = subparsers.add_parser("experiment", help="resumable experiments whose results make a report")
    verbs = experiment.add_subparsers(dest="experiment_command", metavar="EXPERIMENT", required=True)
    pv = verbs.add_parser(
        "passive-video",
        help="does actionless video cut the action data a world model needs, and where does RL stand at equal data?",
        description="Collect an actionless pool and action-labelled sets, pretrain, train the world-model arms and "
        "the RL baselines, evaluate each with the harness and gather results.json, results.md and success.png. "
        "Every point is its own directory with a completion marker: a rerun skips finished points.",
    )
    pv.add_argument("--scale", choices=SCALE_NAMES, required=True,
                    help="smoke: seconds, the test's; small: about two hours on 2 CPU cores; full: several GPU sittings")
    pv.add_argument("--out", required=True, help="experiment directory (resumed when it holds the same scale)")
    pv.add_argument("--plan", action="store_true", help="print the points, which are done and a rough cost; run nothing")
    pv.add_argument("--only", nargs="+", default=(), metavar="GLOB",
                    help="run only the points matching these globs (and what they need), e.g. 'rl/*-s1/*'")
    pv.add_argument("--report", action="store_true", help="only gather the finished points into the results")
    pv.add_argument("--device", default="", help="pretrain and train device: cpu, cuda or cuda:N (default: cuda if available)")
    pv.add_argument("--workers", type=positive_int, default=1, help="collection processes (default %(default)s)")
    pv.set_defaults(func=run_passive_video)


def run_passive_video(args: argparse.Namespace) -> int:
    from armworld.agents import passive_video
    from armworld.agents.loading import resolve_device
    from armworld.cli import main

    experiment = passive_video.Experiment(passive_video.SCALES[args.scale], args.out, args.device, args.workers, verb=main)
    try:
        if args.device:
            resolve_device(args.device)  # refused now, not hours later at the first training point
        check_output(args.out, folder=True)
        if args.plan:
            print(passive_video.plan(experiment, args.only))
            return 0
        results = passive_video.write_report(args.out) if args.report else passive_video.run(experiment, args.only)
    except user_errors(RuntimeError) as error:
        return fail(str(error))
    print(f"{len(results['points'])} evaluated points gathered into {args.out}/results.json, results.md and success.png")
    return 0
