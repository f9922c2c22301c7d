"""CLI verbs for the envs: ``armworld envs`` lists them, ``armworld rollout`` films an agent."""

from __future__ import annotations

import argparse
from pathlib import Path

from armworld.commands import check_video_output, env_id, fail, image_side, non_negative_float, positive_int, seed


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    envs = subparsers.add_parser("envs", help="list the env ids with their spaces and step budgets")
    envs.set_defaults(func=list_envs)

    rollout = subparsers.add_parser("rollout", help="roll out the scripted expert and write an MP4 (or GIF)")
    rollout.add_argument("--env", type=env_id, default="armworld/FrankaPickPlace-v0", help="env id (see `armworld envs`)")
    rollout.add_argument("--episodes", type=positive_int, default=3)
    rollout.add_argument("--seed", type=seed, default=0, help="reset seed of the first episode")
    rollout.add_argument("--noise", type=non_negative_float, default=0.0, help="std of the expert's action noise")
    rollout.add_argument("--size", type=image_side, default=256, help="video frame side (pixels, 8..640)")
    rollout.add_argument("--out", default="rollout.mp4", help="the video written (.mp4 or .gif)")
    rollout.set_defaults(func=run_rollout)


def list_envs(args: argparse.Namespace) -> int:
    import gymnasium

    from armworld.envs.registry import ENV_IDS

    for env_id, entry in ENV_IDS.items():
        env = gymnasium.make(env_id)
        keys = ", ".join(f"{k}{tuple(v.shape)}" for k, v in env.observation_space.spaces.items())
        print(f"{env_id}  task={entry.task.name}  steps={entry.max_episode_steps}  action={env.action_space}  obs: {keys}")
        env.close()
    return 0


def run_rollout(args: argparse.Namespace) -> int:
    import gymnasium
    import imageio.v2 as imageio

    from armworld.agents import make_expert
    from armworld.envs.episode import RenderEach, run_episode

    try:
        check_video_output(args.out)
    except ValueError as error:
        return fail(str(error))
    env = gymnasium.make(args.env, render_mode="rgb_array", render_size=args.size)
    expert = make_expert(env, noise=args.noise, seed=args.seed)
    successes = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(args.out, fps=env.metadata["render_fps"], macro_block_size=1) as video:
        filming = RenderEach(env, video.append_data)
        for episode in range(args.episodes):
            info = run_episode(env, expert, args.seed + episode, observers=[filming]).info
            successes.append(info["is_success"])
            print(f"episode {episode}: success={info['is_success']} final distance={info['distance']:.3f} m")
    print(f"{sum(successes)}/{len(successes)} succeeded; video: {args.out}")
    return 0
