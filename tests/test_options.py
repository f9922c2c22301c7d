"""Options declared once: every field of the training loop's :class:`LoopConfig` is a flag of
``armworld pretrain`` and ``train``, every field of :class:`PretrainConfig` and :class:`TrainConfig`
(but their loop) a flag of its verb, and the options of :class:`RLConfig`, :class:`CollectConfig` and
:class:`PolicySpec`, :class:`EvalConfig` and :class:`WorldModelAgentConfig` flags of ``armworld rl train``,
``armworld collect``, ``armworld eval`` (and ``demo``), made from the fields (name, default, help, range); parsing gives back the dataclass, and
a value out of range is refused at parse time naming the flag, and by the dataclass itself
naming field and flag."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from armworld.agents.eval_config import EvalConfig
from armworld.agents.policy_spec import PolicySpec
from armworld.agents.rl_config import RLConfig
from armworld.agents.world_model_agent_config import WorldModelAgentConfig
from armworld.cli import build_parser, main
from armworld.datasets.collect_config import CollectConfig
from armworld.worldmodel.arguments import loop_config
from armworld.envs.argtypes import OPTION, option_fields, option_flag, option_text, option_values, options_from
from armworld.worldmodel.configs import PretrainConfig, TrainConfig
from armworld.worldmodel.loop_config import LoopConfig, pretrain_loop

VERBS = {"pretrain": pretrain_loop(), "train": LoopConfig()}  # each verb's loop defaults
REQUIRED = ["--data", "d.h5", "--out", "run"]


def flags_of(*verbs: str) -> dict[str, argparse.Action]:
    """The flags of ``armworld VERB [SUBVERB]``, each with its argparse action."""
    parser = build_parser()
    for verb in verbs:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[verb]
    return {flag: action for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("verb", VERBS)
def test_every_loop_field_is_a_flag_of_the_verb(verb):
    assert option_fields(LoopConfig) == list(dataclasses.fields(LoopConfig))  # no field left out of the CLI
    flags = flags_of(verb)
    for f in dataclasses.fields(LoopConfig):
        action = flags[option_flag(f)]
        assert action.dest == f.name and action.help, f.name
    for flag in ("--batch-size", "--eval-every", "--save-every", "--warmup-steps", "--start-lr", "--workers",
                 "--data-in-memory", "--device", "--log-every", "--eval-batches", "--keep-checkpoints", "--final-lr",
                 "--no-progress"):
        assert flag in flags


@pytest.mark.parametrize("verb, defaults", VERBS.items())
def test_defaults_are_the_dataclass_defaults_and_values_round_trip(verb, defaults):
    parser = build_parser()
    assert loop_config(parser.parse_args([verb, *REQUIRED])) == defaults
    changed = {"steps": 7, "batch_size": 3, "lr": 0.002, "start_lr": 0.001, "final_lr": 0.0, "warmup_steps": 0,
               "weight_decay": 0.0, "grad_clip": 0.5, "seed": 11, "log_every": 2, "eval_every": 3, "eval_batches": 4,
               "save_every": 5, "keep_checkpoints": 6, "num_workers": 1, "device": "cpu", "data_in_memory": "no",
               "progress": False}
    assert set(changed) == {f.name for f in dataclasses.fields(LoopConfig)}
    argv = [verb, *REQUIRED]
    for f in dataclasses.fields(LoopConfig):
        value = changed[f.name]
        assert value != getattr(defaults, f.name), f.name
        argv += [option_flag(f)] if isinstance(value, bool) else [option_flag(f), str(value)]
    assert loop_config(parser.parse_args(argv)) == LoopConfig(**changed)


@pytest.mark.parametrize("f", [f for f in dataclasses.fields(LoopConfig) if f.metadata[OPTION]["type"]], ids=lambda f: f.name)
def test_a_value_out_of_range_is_refused_naming_the_flag(f, capsys):
    assert main(["pretrain", *REQUIRED, option_flag(f), "-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: armworld pretrain: argument {option_flag(f)}: expected ") and "Traceback" not in err
    with pytest.raises(ValueError, match=rf"^{f.name} \({option_flag(f)}\): expected .*, got '-1'$"):
        LoopConfig(**{f.name: -1})


def test_the_dataclass_checks_what_the_flags_check():
    with pytest.raises(ValueError, match=r"^eval_every \(--eval-every\): expected an integer >= 1, got '0'$"):
        LoopConfig(eval_every=0)
    with pytest.raises(ValueError, match=r"^num_workers \(--workers\): expected an integer >= 0"):
        LoopConfig(num_workers=-2)
    with pytest.raises(ValueError, match=r"^data_in_memory \(--data-in-memory\) is one of \['auto', 'yes', 'no'\], got 'maybe'$"):
        LoopConfig(data_in_memory="maybe")
    with pytest.raises(ValueError, match=r"^lr \(--lr\): expected a number > 0.0, got 'nan'$"):
        LoopConfig(lr=float("nan"))


CONFIGS = {"pretrain": PretrainConfig, "train": TrainConfig}  # each verb's own options, besides its loop
FROM_THE_START = {"predictor", "camera", "frame_skip"}  # train's flags that default to None: worked out by train.run


def verb_config(verb: str, argv: list[str]) -> PretrainConfig | TrainConfig:
    """The config of ``armworld VERB`` built from ``argv`` as the verb builds it, for a fresh encoder."""
    args = build_parser().parse_args([verb, *REQUIRED, *argv])
    if verb == "pretrain":
        return options_from(PretrainConfig, args, loop=loop_config(args))
    from armworld.worldmodel.train import starting_settings

    return options_from(TrainConfig, args, predictor=args.predictor or TrainConfig.predictor, loop=loop_config(args),
                        **starting_settings(None, None, args.camera, args.frame_skip))


@pytest.mark.parametrize("verb", CONFIGS)
def test_every_config_field_is_a_flag_of_its_verb(verb):
    cls = CONFIGS[verb]
    assert [f.name for f in dataclasses.fields(cls) if f not in option_fields(cls)] == ["loop"]
    flags = flags_of(verb)
    for f in option_fields(cls):
        action = flags[option_flag(f)]
        assert action.dest == f.name and action.help, f.name
    assert {"--preset", "--clip-len", "--frame-skip", "--camera", "--ema", "--objective", "--sigreg-weight", "--augment",
            "--lerobot-keys"} <= set(flags_of("pretrain"))
    assert {"--predictor", "--clip-len", "--frame-skip", "--rollout-steps", "--camera", "--end-to-end",
            "--sigreg-weight", "--lerobot-keys", "--encoder", "--preset", "--init"} <= set(flags_of("train"))


@pytest.mark.parametrize("verb", CONFIGS)
def test_config_defaults_are_the_dataclass_defaults_and_values_round_trip(verb):
    cls = CONFIGS[verb]
    args = build_parser().parse_args([verb, *REQUIRED])
    for f in option_fields(cls):
        expected = None if verb == "train" and f.name in FROM_THE_START else f.default
        assert getattr(args, f.name) == expected, f.name
    assert verb_config(verb, []) == cls()
    changed = {
        "pretrain": {"preset": "tiny-p8", "clip_len": 4, "frame_skip": 2, "camera": "wrist", "ema": 0.9,
                     "objective": "sigreg", "sigreg_weight": 0.2, "augment": True, "lerobot_keys": "droid"},
        "train": {"predictor": "small", "clip_len": 6, "frame_skip": 3, "rollout_steps": 4, "camera": "top",
                  "end_to_end": True, "sigreg_weight": 0.5, "lerobot_keys": "droid"},
    }[verb]
    assert set(changed) == {f.name for f in option_fields(cls)}
    argv = []
    for f in option_fields(cls):
        value = changed[f.name]
        assert value != f.default, f.name
        argv += [option_flag(f)] if isinstance(value, bool) else [option_flag(f), str(value)]
    assert verb_config(verb, argv) == cls(**changed, loop=VERBS[verb])


@pytest.mark.parametrize(
    "verb, f", [(verb, f) for verb, cls in CONFIGS.items() for f in option_fields(cls)
                if f.metadata[OPTION]["type"] or f.metadata[OPTION]["choices"]],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_a_bad_config_value_is_refused_naming_the_flag(verb, f, capsys):
    assert main([verb, *REQUIRED, option_flag(f), "-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: armworld {verb}: argument {option_flag(f)}: ") and "Traceback" not in err
    with pytest.raises(ValueError, match=rf"^{f.name} \({option_flag(f)}\)(:| is one of)"):
        CONFIGS[verb](**{f.name: -1})


def test_a_default_is_written_inside_a_closing_parenthesis_of_the_help():
    helps = {flag: action.help for flag, action in flags_of("pretrain").items()}
    assert helps["--lerobot-keys"].endswith("a JSON key-map file (see datasets/README.md; default %(default)s)")
    assert helps["--ema"].endswith("in [0, 1) (default %(default)s)")  # an interval's parenthesis stays


def test_the_configs_check_what_the_flags_check():
    with pytest.raises(ValueError, match=r"^ema \(--ema\): expected a number >= 0.0 and < 1.0, got '1.0'$"):
        PretrainConfig(ema=1.0)
    with pytest.raises(ValueError, match=r"^clip_len \(--clip-len\): expected an integer >= 2, got '1'$"):
        TrainConfig(clip_len=1)
    with pytest.raises(ValueError, match=r"^rollout_steps \(--rollout-steps\) must lie in \[0, clip_len - 1\] = \[0, 3\]"):
        TrainConfig(rollout_steps=4)
    assert TrainConfig(predictor=None).predictor is None  # training from --init: its model brings the predictor


@pytest.mark.parametrize("verb", ["", "eval", "demo"])
def test_the_help_imports_no_torch_nor_h5py(verb):
    """``armworld --help``, ``armworld eval --help`` and ``armworld demo --help`` (the planners'
    names included) stay fast: neither torch nor h5py (``CollectConfig`` is read from its own module)."""
    script = (f"import sys, armworld.cli; sys.argv[1:] = {[verb, '--help'] if verb else ['--help']!r}\n"
              "try: armworld.cli.main()\nexcept SystemExit: pass\n"
              "heavy = {'torch', 'h5py'} & set(sys.modules); assert not heavy, heavy")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and "usage: armworld" in run.stdout, run.stderr


RL_TRAIN = ["rl", "train", "--algo", "sac", "--env", "FrankaReach-v0", "--out", "run"]


def rl_config(argv: list[str]) -> RLConfig:
    """The :class:`RLConfig` that ``armworld rl train`` builds from ``argv`` (no training)."""
    args = build_parser().parse_args(argv)
    return options_from(RLConfig, args, algo=args.algo, env_id=args.env, her=args.her, out=args.out,
                        hyperparams=dict(args.hyperparams))


def test_rl_train_options_are_the_rl_config_fields():
    train_flags = set(flags_of("rl", "train"))
    assert {option_flag(f) for f in option_fields(RLConfig)} <= train_flags
    assert {"--no-progress-bar", "--resume", "--checkpoint-freq", "--eval-episodes", "--image-size"} <= train_flags
    assert rl_config(RL_TRAIN) == RLConfig(algo="sac", env_id="armworld/FrankaReach-v0", out="run")
    changed = rl_config([*RL_TRAIN, "--obs-mode", "pixels", "--steps", "5", "--seed", "3", "--image-size", "32",
                         "--eval-freq", "7", "--eval-episodes", "2", "--checkpoint-freq", "0", "--no-progress-bar",
                         "--resume", "--her", "-p", "gamma=0.9"])
    assert changed == RLConfig(algo="sac", env_id="armworld/FrankaReach-v0", out="run", obs_mode="pixels", steps=5,
                               seed=3, image_size=32, eval_freq=7, eval_episodes=2, checkpoint_freq=0,
                               progress_bar=False, resume=True, her=True, hyperparams={"gamma": 0.9})
    with pytest.raises(ValueError, match=r"^checkpoint_freq \(--checkpoint-freq\): expected an integer >= 0"):
        RLConfig(checkpoint_freq=-1)
    with pytest.raises(ValueError, match=r"^obs_mode \(--obs-mode\) is one of \['state', 'pixels'\]"):
        RLConfig(obs_mode="depth")


COLLECT = ["collect", "--env", "FrankaReach-v0", "--episodes", "3", "--out", "d.h5"]


def collect_config(argv: list[str]) -> CollectConfig:
    """The :class:`CollectConfig` that ``armworld collect`` builds from ``argv`` (no collection)."""
    args = build_parser().parse_args(argv)
    return options_from(CollectConfig, args, env_id=args.env, episodes=args.episodes)


def test_collect_options_are_the_collect_config_fields(capsys):
    flags = flags_of("collect")
    assert [option_flag(f) for f in option_fields(CollectConfig)] == ["--seed", "--workers", "--max-steps"]
    for f in option_fields(CollectConfig):
        assert flags[option_flag(f)].dest == f.name
    assert collect_config(COLLECT) == CollectConfig("armworld/FrankaReach-v0", 3)
    changed = collect_config([*COLLECT, "--seed", "9", "--workers", "2", "--max-steps", "5"])
    assert changed == CollectConfig("armworld/FrankaReach-v0", 3, seed=9, workers=2, max_episode_steps=5)
    for f in option_fields(CollectConfig):
        assert main([*COLLECT, option_flag(f), "0" if f.name != "seed" else "-1"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: armworld collect: argument {option_flag(f)}: expected ") and "Traceback" not in err
    with pytest.raises(ValueError, match=r"^workers \(--workers\): expected an integer >= 1, got '0'$"):
        CollectConfig("armworld/FrankaReach-v0", 3, workers=0)
    with pytest.raises(ValueError, match=r"^seed \(--seed\): expected an integer >= 0 and <= 2147483647, got '-1'$"):
        CollectConfig("armworld/FrankaReach-v0", 3, seed=-1)
    with pytest.raises(ValueError, match=r"^episodes must be >= 0, got -1$"):
        CollectConfig("armworld/FrankaReach-v0", -1)


EVAL = ["eval", "--agent", "expert", "--env", "FrankaReach-v0", "--out", "results"]


def eval_config(argv: list[str]) -> EvalConfig:
    """The :class:`EvalConfig` that ``armworld eval`` builds from ``argv`` (no evaluation)."""
    return options_from(EvalConfig, build_parser().parse_args(argv), env_id="armworld/FrankaReach-v0")


def test_eval_options_are_the_eval_config_fields():
    flags = flags_of("eval")
    assert [f.name for f in dataclasses.fields(EvalConfig) if f not in option_fields(EvalConfig)] == ["env_id", "env_kwargs"]
    assert [option_flag(f) for f in option_fields(EvalConfig)] == ["--seeds", "--episodes", "--max-steps", "--videos",
                                                                   "--video-height"]
    for f in option_fields(EvalConfig):
        assert flags[option_flag(f)].dest == f.name and flags[option_flag(f)].help, f.name
    assert flags["--seeds"].help.endswith("(default 0,1,2)")  # a tuple is shown as the command line writes it
    assert eval_config(EVAL) == EvalConfig("armworld/FrankaReach-v0")
    changed = {"seeds": (4, 5), "episodes": 3, "max_steps": 9, "videos": 2, "video_height": 128}
    assert set(changed) == {f.name for f in option_fields(EvalConfig)}
    argv = [*EVAL]
    for f in option_fields(EvalConfig):
        assert changed[f.name] != f.default, f.name
        argv += [option_flag(f), ",".join(map(str, changed[f.name])) if f.name == "seeds" else str(changed[f.name])]
    assert eval_config(argv) == EvalConfig("armworld/FrankaReach-v0", **changed)


@pytest.mark.parametrize("f", option_fields(EvalConfig), ids=lambda f: f.name)
def test_a_bad_eval_value_is_refused_naming_the_flag(f, capsys):
    assert main([*EVAL, option_flag(f), "-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: armworld eval: argument {option_flag(f)}: expected ") and "Traceback" not in err
    bad = (-1,) if f.name == "seeds" else -1
    with pytest.raises(ValueError, match=rf"^{f.name} \({option_flag(f)}\): expected .*, got '-1'"):
        EvalConfig("armworld/FrankaReach-v0", **{f.name: bad})
    with pytest.raises(ValueError, match=r"^seeds must be distinct, got \(1, 1\)$"):
        EvalConfig("armworld/FrankaReach-v0", seeds=(1, 1))
    with pytest.raises(ValueError, match=r"^video_height \(--video-height\): expected an even number of pixels"):
        EvalConfig("armworld/FrankaReach-v0", video_height=321)


PLANNER_VERBS = {"eval": EVAL, "demo": ["demo"]}  # the verbs with the world-model planner's flags


@pytest.mark.parametrize("verb", PLANNER_VERBS)
def test_world_model_agent_options_are_the_config_fields(verb):
    flags = flags_of(verb)
    assert [option_flag(f) for f in option_fields(WorldModelAgentConfig)] == [
        "--context-frames", "--no-reuse-context", "--energy", "--retrieved-subgoals", "--subgoal-stages"]
    for f in option_fields(WorldModelAgentConfig):
        assert flags[option_flag(f)].dest == f.name and flags[option_flag(f)].help, f.name
    assert {"--gripper", "--no-gripper", "--subgoals", "--retrieve"} <= set(flags)  # several fields at once: the verb's
    parser = build_parser()
    defaults = WorldModelAgentConfig(**option_values(WorldModelAgentConfig, parser.parse_args(PLANNER_VERBS[verb])))
    assert defaults == WorldModelAgentConfig()
    changed = {"context_frames": 3, "reuse_context": False, "energy": "last", "retrieved_subgoals": 2, "subgoal_stages": (1,)}
    assert set(changed) == {f.name for f in option_fields(WorldModelAgentConfig)}
    argv = [*PLANNER_VERBS[verb]]
    for f in option_fields(WorldModelAgentConfig):
        assert changed[f.name] != f.default, f.name
        argv += [option_flag(f)] if isinstance(changed[f.name], bool) else [option_flag(f), option_text(changed[f.name])]
    assert option_values(WorldModelAgentConfig, parser.parse_args(argv)) == changed


@pytest.mark.parametrize("f", [f for f in option_fields(WorldModelAgentConfig) if not isinstance(f.default, bool)],
                         ids=lambda f: f.name)
def test_a_bad_world_model_agent_value_is_refused_naming_the_flag(f, capsys):
    bad = (-1,) if f.name == "subgoal_stages" else 0  # stage 0 is a stage; a count of 0 is not a count
    assert main([*EVAL, option_flag(f), option_text(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: armworld eval: argument {option_flag(f)}: ") and "Traceback" not in err
    with pytest.raises(ValueError, match=rf"^{f.name} \({option_flag(f)}\)(:| is one of)"):
        WorldModelAgentConfig(**{f.name: bad})


def test_collect_policy_options_are_the_policy_spec_fields(capsys):
    flags = flags_of("collect")
    assert [option_flag(f) for f in option_fields(PolicySpec)] == ["--policy", "--noise", "--beta", "--random-fraction"]
    assert option_fields(PolicySpec) == list(dataclasses.fields(PolicySpec))
    for f in option_fields(PolicySpec):
        assert flags[option_flag(f)].dest == f.name and flags[option_flag(f)].help, f.name
    parser = build_parser()
    assert options_from(PolicySpec, parser.parse_args(COLLECT)) == PolicySpec()
    changed = {"name": "mixed", "noise": 0.2, "beta": 2.0, "random_fraction": 0.5}
    argv = [*COLLECT]
    for f in option_fields(PolicySpec):
        assert changed[f.name] != f.default, f.name
        argv += [option_flag(f), str(changed[f.name])]
    assert options_from(PolicySpec, parser.parse_args(argv)) == PolicySpec(**changed)
    for f in option_fields(PolicySpec):
        assert main([*COLLECT, option_flag(f), "-1"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: armworld collect: argument {option_flag(f)}: ") and "Traceback" not in err
        with pytest.raises(ValueError, match=rf"^{f.name} \({option_flag(f)}\)(:| is one of)"):
            PolicySpec(**{f.name: -1})
    with pytest.raises(ValueError, match=r"^random_fraction \(--random-fraction\): expected a number >= 0.0 and <= 1.0"):
        PolicySpec("mixed", random_fraction=1.5)
