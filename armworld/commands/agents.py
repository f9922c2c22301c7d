"""CLI verbs for agents: ``armworld eval`` (the evaluation harness) and ``armworld demo``.

    armworld eval --agent wm:runs/wm --env armworld/FrankaReach-v0 --episodes 50 --seeds 0,1,2 --out results/ --videos 2
    armworld demo                     # the shipped models plan toward the goal image alone in Reach and Push
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import TYPE_CHECKING

from armworld.commands import (
    check_output,
    check_video_output,
    comma_list,
    env_id,
    error_text,
    fail,
    image_side,
    positive_float,
    positive_int,
    seed,
    user_errors,
)
from armworld.agents.eval_config import FILM_HEIGHT, VIDEO_HEIGHT_HELP, EvalConfig, film_height
from armworld.agents.world_model_agent_config import DEFAULT_PLANNER, WorldModelAgentConfig
from armworld.envs.argtypes import add_options, option_values, options_from, with_default

if TYPE_CHECKING:
    from armworld.agents.planners import PlannerKind

DEMO_ENVS = ("armworld/FrankaReach-v0", "armworld/FrankaPush-v0")
DEMO_MODELS = {"armworld/FrankaPush-v0": "objects"}
"""The shipped model the demo plans with toward the goal image alone, where it is not ``default``:
``wm:default`` pushes only through the sim's sub-goal images, ``wm:objects`` from the goal image
(README, results table)."""


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}); write e.g. '{{\"action_dim\": 4}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of env arguments, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    """An argparse ``type=``: ``KEY=VALUE`` as ``(KEY, VALUE)``."""
    key, equals, value = text.partition("=")
    if not (key.strip() and equals and value.strip()):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. momentum=0.3; got {text!r}")
    return key.strip(), value.strip()


def _add_planner_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("world-model planner (wm: agents)")
    group.add_argument("--planner", default=DEFAULT_PLANNER, metavar="NAME",
                       help="a registered planner (see agents/README.md; default %(default)s)")
    group.add_argument("--samples", type=positive_int, default=None,
                       help="candidates per iteration (iCEM: of the first, later ones shrink; default: what the model "
                       "recommends, else the planner's: icem 128, cem and mppi 256)")
    group.add_argument("--iterations", type=positive_int, default=None, help="planner iterations per action")
    group.add_argument("--top-k", type=positive_int, default=None,
                       help="the planner's elite count (e.g. CEM's top_k; default: the planner's, at most what "
                       "--samples allows)")
    group.add_argument("--horizon", type=positive_int, default=None,
                       help="planned steps (default: what the model recommends, else the planner's: icem 3, cem and mppi 1)")
    group.add_argument(
        "--planner-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
        help="set another field of the planner's config (agents/planners.py), e.g. momentum=0.3 or init_std=0.5 "
        "(cem), temperature=0.5, min_std or max_std (mppi), warm_start=false; repeatable",
    )
    group.add_argument("--l1-radius", type=positive_float, default=None, help="keep each xyz move in an L1 ball (m)")
    group.add_argument("--rotate", action="store_true", help="let the planner rotate the hand (default: held)")
    gripper = group.add_mutually_exclusive_group()
    gripper.add_argument("--no-gripper", action="store_true", help="keep the grip as it is")
    gripper.add_argument(
        "--gripper", choices=("plan", "goal"), default=None,
        help="plan the gripper, or command it from the sim's goal image headed for (open or closed)",
    )
    group.add_argument(
        "--subgoals", action=argparse.BooleanOptionalAction, default=None,
        help="head for the sim's images of the task's stages in turn (env.goal_sequence), then the goal image",
    )
    group.add_argument(
        "--retrieve", nargs="+", default=None, metavar="FILE.h5",
        help="head for sub-goals retrieved from these recorded episodes (a latent search from the current image to "
        "the goal image), then the goal image; the model's training data, never evaluation seeds",
    )
    add_options(group, WorldModelAgentConfig)  # --context-frames, --no-reuse-context, --energy, --retrieved-subgoals, --subgoal-stages
    group.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    model = parser.add_argument_group("where the world model runs, and the released V-JEPA 2-AC (vjepa2-ac: agents)")
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)")
    model.add_argument("--image-size", type=image_side, default=None,
                       help="frame side of a vjepa2-ac: agent (px; default 256, the released size)")
    model.add_argument("--encoder", default=None, metavar="ENTRY|HF_DIR",
                       help="vjepa2-ac: the checkpoint entry holding the encoder (default target_encoder), or a "
                       "local Hugging Face V-JEPA 2 directory whose encoder to use instead")
    model.add_argument("--other-robot", action="store_true",
                       help="plan with a wm: model on an env whose robot its training data were not collected with "
                       "(refused otherwise, where the model's metadata names the robots)")


def _planner_options(args: argparse.Namespace, spec: str):
    """The chosen planner's config from the flags: ``--samples``, ``--iterations``,
    ``--horizon``, ``--top-k`` (its elite count) and ``--planner-option KEY=VALUE`` for any
    other field; where a flag is not given, the setting the model ``spec`` recommends
    (:func:`armworld.agents.loading.planner_settings`), else the planner's default; without
    ``--top-k``, its default elites, at most what the samples allow (``max_elites`` of the
    planner's kind)."""
    from armworld.agents.loading import planner_settings
    from armworld.agents.planners import ActionBounds, PlannerOptions, planner_kind

    try:
        kind = planner_kind(args.planner)
    except ValueError as error:
        raise ValueError(f"argument --planner: {error}") from None
    flags = {"samples": "--samples", "iterations": "--iterations", "horizon": "--horizon", kind.elites: "--top-k"}
    given = {"samples": args.samples, "iterations": args.iterations, "horizon": args.horizon, kind.elites: args.top_k}
    overrides = planner_settings(spec) | {name: value for name, value in given.items() if value is not None}
    if args.top_k is None and "samples" in overrides:
        overrides[kind.elites] = min(getattr(kind.config(), kind.elites), kind.max_elites(overrides["samples"]))
    overrides |= _planner_option_values(kind, args.planner_option, flags)
    try:
        config = kind.config(**overrides)
    except ValueError as error:
        hint = f" ({kind.elites} is --top-k)" if str(error).startswith(kind.elites) else ""
        raise ValueError(f"{args.planner} planner settings: {error}{hint}") from None
    planned = not args.no_gripper and args.gripper != "goal"
    bounds = ActionBounds.world_model(hold_rotation=not args.rotate, gripper=planned, l1_radius=args.l1_radius)
    return PlannerOptions(args.planner, config, bounds)


def _planner_option_values(kind: PlannerKind, pairs: list[tuple[str, str]], flags: dict[str, str]) -> dict:
    """``--planner-option KEY=VALUE`` pairs as config fields of the planner ``kind``, each
    value converted to its field's type (int, float, bool or str)."""
    fields = kind.fields()
    options = [name for name in fields if name not in flags]
    values = {}
    for key, text in pairs:
        if key in flags:
            raise ValueError(f"argument --planner-option: {key} is set by {flags[key]}")
        if key not in options:
            raise ValueError(f"argument --planner-option: the {kind.name} planner has no option {key!r}; "
                             f"its options: {', '.join(options)}")
        values[key] = _field_value(key, fields[key], text)
    return values


def _field_value(key: str, field_type: type, text: str) -> int | float | bool | str:
    """``text`` as a value of the config field ``key`` of type ``field_type``."""
    if field_type is bool:
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if text.lower() not in words:
            raise ValueError(f"argument --planner-option: {key} takes true or false, got {text!r}")
        return words[text.lower()]
    if field_type not in (int, float, str):
        raise ValueError(f"argument --planner-option: {key} is a {field_type}, which the command line cannot set")
    try:
        value = field_type(text)
    except ValueError:
        raise ValueError(f"argument --planner-option: {key} takes {'an int' if field_type is int else 'a float'}, "
                         f"got {text!r}") from None
    if field_type is float and not math.isfinite(value):
        raise ValueError(f"argument --planner-option: {key} takes a finite number, got {text!r}")
    return value


def _agent_options(args: argparse.Namespace, spec: str) -> dict:
    """Options of the world-model agent ``spec`` from the planner arguments."""
    from armworld.agents.loading import resolve_device

    return option_values(WorldModelAgentConfig, args) | dict(
        planner=_planner_options(args, spec), device=resolve_device(args.device), image_size=args.image_size, encoder=args.encoder,
        goal="subgoals" if args.subgoals and not args.retrieve else "env", retrieve_from=tuple(args.retrieve or ()),
        gripper="plan" if args.no_gripper else args.gripper or WorldModelAgentConfig.gripper,  # --no-gripper: held, not planned
    )


def _recorded(options: dict) -> dict:
    """Agent options as ``results.json`` records them: dataclasses (the planner, its config and
    bounds) as objects, devices by name."""
    plain = {key: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value for key, value in options.items()}
    return json.loads(json.dumps(plain, default=str))


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    from armworld.agents.loading import agent_help, agent_specs

    ev = subparsers.add_parser(
        "eval",
        help="evaluate an agent: success rate with a Wilson 95%% interval, final distance, planning time",
        description="Evaluate any agent on any env with one evaluation protocol (agents/README.md); writes "
        "results.json, results.md and MP4s of chosen episodes.",
    )
    ev.add_argument("--agent", required=True, help=agent_help())
    ev.add_argument("--env", type=env_id, required=True, help="env id, e.g. armworld/FrankaReach-v0")
    add_options(ev, EvalConfig)  # --seeds, --episodes, --max-steps, --videos, --video-height
    ev.add_argument("--out", required=True, help="output directory")
    ev.add_argument("--env-kwargs", type=_json_object, default={}, help='extra env arguments as JSON, e.g. \'{"action_dim": 4}\'')
    ev.add_argument("--dataset", nargs="*", default=[], help="trajectory files the agent learned from: their seeds must not be evaluated on")
    ev.add_argument("--goal", nargs="+", default=None, help="goal image file(s) instead of the sim's goal image (wm: agents)")
    ev.add_argument("--subgoal-steps", type=comma_list(positive_int, "4,10"), default=WorldModelAgentConfig.subgoal_steps,
                    help="actions spent on each goal but the last, e.g. 4,10")
    _add_planner_arguments(ev)
    ev.set_defaults(func=run_eval)

    demo = subparsers.add_parser(
        "demo",
        help="the shipped world models plan toward goal images in FrankaReach and FrankaPush",
        description="Load world models (the shipped ones by default), plan toward the sim's goal images from "
        "fresh evaluation seeds, write an MP4 and print success and planning time per action. By default each env "
        "heads for its goal image alone, with the gripper planned, using the shipped model that does it best "
        f"({', '.join(f'{name}: wm:{model}' for name, model in DEMO_MODELS.items())}; elsewhere wm:default); "
        "--subgoals heads for the task's sub-goal images in turn with wm:default, the gripper commanded from them.",
    )
    demo.add_argument("--model", default=None,
                      help=f"world-model run or checkpoint, or a world-model agent: {agent_specs(world_models=True)}, "
                      "for every env (default: the shipped model chosen per env, see above)")
    demo.add_argument("--episodes", type=positive_int, default=2, help="episodes per env")
    demo.add_argument("--max-steps", type=positive_int, default=None, help="step budget per episode (default: the env's)")
    demo.add_argument("--seed", type=seed, default=None, help="evaluation seed (default: a fresh random one)")
    demo.add_argument("--envs", type=comma_list(env_id, DEMO_ENVS[0]), default=DEMO_ENVS, help="comma-separated env ids")
    demo.add_argument("--out", default="armworld-demo.mp4", help="the video written (.mp4 or .gif)")
    demo.add_argument("--video-height", type=film_height, default=FILM_HEIGHT, help=with_default(VIDEO_HEIGHT_HELP, FILM_HEIGHT))
    _add_planner_arguments(demo)
    demo.set_defaults(func=run_demo)


def demo_model(args: argparse.Namespace, env_name: str) -> str:
    """The world-model agent the demo plans with in ``env_name``: ``--model``'s, else the shipped
    model of :data:`DEMO_MODELS` toward the goal image alone, else ``wm:default``."""
    from armworld.agents.loading import is_world_model

    if args.model is not None:
        return args.model if is_world_model(args.model) else f"wm:{args.model}"
    alone = not args.subgoals and not args.retrieve
    return f"wm:{DEMO_MODELS.get(env_name, 'default') if alone else 'default'}"


def _errors() -> tuple[type[BaseException], ...]:
    import gymnasium

    return user_errors(KeyError, TypeError, gymnasium.error.Error)


def _dataset_seeds(paths: list[str]) -> set[int]:
    from armworld.datasets.hdf5 import TrajectoryFile

    seeds: set[int] = set()
    for path in paths:
        with TrajectoryFile(path) as file:
            seeds.update(int(file.attrs(demo)["seed"]) for demo in file.demos)
    return seeds


def run_eval(args: argparse.Namespace) -> int:
    try:
        return _run_eval(args)
    except _errors() as error:
        return fail(error_text(error))


def _run_eval(args: argparse.Namespace) -> int:
    import gymnasium
    import torch
    from tqdm import tqdm

    from armworld.agents.evaluate import evaluate, write_results
    from armworld.agents.loading import (
        agent_specs,
        check_robot,
        check_spec,
        env_kwargs_for,
        is_shipped,
        is_world_model,
        load_agent,
    )
    from armworld.agents.world_model_agent import load_goal_image

    check_spec(args.agent)
    is_wm = is_world_model(args.agent)
    if not is_wm and (args.goal is not None or args.subgoal_steps or args.subgoals or args.subgoal_stages or args.gripper
                      or args.device or args.image_size or args.encoder or args.other_robot):
        raise ValueError("--goal, --subgoal-steps, --subgoals, --subgoal-stages, --gripper, --device, --image-size, --encoder and "
                         f"--other-robot are for world-model agents ({agent_specs(world_models=True)})")
    if args.subgoals and args.goal:
        raise ValueError("--subgoals heads for the sim's images: give no --goal files with it")
    if args.subgoal_stages and not args.subgoals:
        raise ValueError("--subgoal-stages chooses among the sim's sub-goal images: give --subgoals with it")
    if args.retrieve and (args.subgoals or args.goal):
        raise ValueError("--retrieve finds sub-goals on the way to the sim's goal image: give no --subgoals or --goal with it")
    if args.retrieve and not is_wm:
        raise ValueError(f"--retrieve is for world-model agents ({agent_specs(world_models=True)})")
    agent_path = args.agent.split(":", 1)[1] if ":" in args.agent and not is_shipped(args.agent) else None
    check_output(
        args.out, *args.dataset, *(args.goal or ()), *(args.retrieve or ()), *([agent_path] if agent_path else []),
        folder=True,
    )
    if args.goal:
        size = env_kwargs_for(args.agent, args.image_size)["image_size"]
        for goal in args.goal:  # refused now, not when the first episode starts
            load_goal_image(goal, size)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = options_from(
        EvalConfig, args, env_id=args.env, env_kwargs={**env_kwargs_for(args.agent, args.image_size), **args.env_kwargs}
    )
    if not args.other_robot:
        check_robot(args.agent, config.env_id, config.env_kwargs)
    # bad --env-kwargs are refused now, in one line, not after the progress bar has started
    budget = {"max_episode_steps": config.max_steps} if config.max_steps else {}
    gymnasium.make(config.env_id, **budget, **config.env_kwargs).close()
    options = {}
    if is_wm:
        options = _agent_options(args, args.agent)
        options["subgoal_steps"] = args.subgoal_steps
        if args.goal:
            options["goal"] = args.goal if len(args.goal) > 1 else args.goal[0]
    dataset_seeds = _dataset_seeds(args.dataset) if args.dataset else None

    with tqdm(total=len(config.seeds) * config.episodes, desc=f"eval {args.agent}", unit="ep", file=sys.stderr) as bar:
        result = evaluate(
            lambda env, seed: load_agent(args.agent, env, seed=seed, **options),
            config, agent_name=args.agent, out=args.out, dataset_seeds=dataset_seeds,
            progress=lambda episode: bar.update(1), agent_options=_recorded(options),
        )
    json_path, md_path = write_results(result, args.out)
    print(result.markdown())
    print(f"wrote {json_path}, {md_path}" + (f" and {len(result.videos)} video(s)" if result.videos else ""))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    try:
        return _run_demo(args)
    except _errors() as error:
        return fail(error_text(error))


def _run_demo(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from armworld.agents.evaluate import evaluate, write_episode_video
    from armworld.agents.film import FilmConfig
    from armworld.agents.loading import check_robot, env_kwargs_for, load_agent
    check_video_output(args.out)  # before minutes of planning, not after
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.subgoals and args.gripper is None and not args.no_gripper:
        args.gripper = "goal"  # the sub-goal images say when to close the hand
    specs = {name: demo_model(args, name) for name in args.envs}
    for name, spec in () if args.other_robot else specs.items():  # refused before any planning
        check_robot(spec, name, env_kwargs_for(spec, args.image_size))
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(1000, 100_000))
    goals = (
        "sub-goals retrieved from the recorded episodes, then the sim's goal image" if args.retrieve
        else "the sim's sub-goal images, then the goal image" if args.subgoals else "the sim's goal image alone"
    )
    print(f"armworld demo: evaluation seed {seed} (repeat with --seed {seed}); "
          f"heading for {goals}, gripper: {'held' if args.no_gripper else args.gripper or 'planned'}")
    videos = []
    start = time.perf_counter()
    for name, spec in specs.items():
        options = _agent_options(args, spec)
        film = FilmConfig(height=args.video_height, caption=f"world model {spec.removeprefix('wm:')}")
        config = EvalConfig(env_id=name, seeds=(seed,), episodes=args.episodes, max_steps=args.max_steps,
                            env_kwargs=env_kwargs_for(spec, args.image_size), videos=args.episodes,
                            video_height=args.video_height)
        result = evaluate(lambda env, seed: load_agent(spec, env, seed=seed, **options), config, film.caption)
        videos += [episode.frames for episode in result.episodes]
        s = result.overall
        print(
            f"{name} ({spec}): success {s.successes}/{s.episodes}, final distance {s.mean_final_distance:.3f} m, "
            f"planning {s.plan_time_per_action_s:.3f} s per action (median, {s.mean_episode_length:.0f} actions per episode)"
        )
    write_episode_video(args.out, np.concatenate(videos), FilmConfig().fps)
    print(f"wrote {args.out} ({sum(len(v) for v in videos)} frames: front view | what the model sees | goal image), "
          f"{time.perf_counter() - start:.0f} s in all")
    return 0
