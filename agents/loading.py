"""Agents by name, wherever the CLI or a script names one, and the device they run on.

| spec | agent |
|---|---|
| ``expert`` | the task's scripted expert (``armworld.agents.make_expert``) |
| ``random`` | coloured-noise exploration (``armworld.agents.exploration.ColoredNoiseAgent``) |
| ``wm:PATH`` | a :class:`WorldModelAgent` over the world model at ``PATH`` (an ``armworld train`` run or checkpoint) |
| ``wm:default``, ``wm:objects`` | the same over a world model shipped in ``armworld.worldmodel`` / ``weights/NAME`` (:data:`SHIPPED_MODELS`) |
| ``vjepa2-ac:FILE.pt`` | the same over Meta's released V-JEPA 2-AC checkpoint (:mod:`armworld.worldmodel.official`) |
| ``sb3:PATH`` | a Stable-Baselines3 policy, loaded by ``armworld.agents.rl.load_sb3_agent(PATH, env)`` |

Each kind is one :class:`AgentKind` in :data:`AGENT_KINDS` (added by
:func:`register_agent_kind`): how a spec names it, whether it plans toward goal images, the
env arguments it needs and how it loads. :func:`check_spec`, :func:`is_world_model`,
:func:`env_kwargs_for`, :func:`load_agent` and :func:`agent_specs` (the help's list) read
that table. Other packages add kinds through the entry-point group ``armworld.agents``
(:data:`ENTRY_POINT_GROUP`): each entry point names an :class:`AgentKind`, registered the
first time a spec matches no kind registered so far.

World-model agents plan from camera images: :func:`env_kwargs_for` gives the env
arguments they need (``obs_mode``, ``cameras``, ``image_size``), read from the checkpoint
(for ``vjepa2-ac:``, the ``front`` camera at the frame size asked for, 256 px by default).
They run on the device :func:`resolve_device` names (CUDA when available, else the CPU),
their planner with them.

Importing this module imports no torch (the CLI reads the table while it builds its parser).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from armworld.agents.base import Agent

if TYPE_CHECKING:
    import gymnasium
    import torch

    from armworld.agents.planners import PlannerOptions

RELEASED_CAMERA = "front"  # the view a vjepa2-ac: agent plans from (an exocentric one, as DROID's)
DEVICES = "cpu, cuda, cuda:N or mps"
ENTRY_POINT_GROUP = "armworld.agents"


class DeviceError(ValueError):
    """A device that is malformed or not available on this machine."""


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device ``name`` names: ``cpu``, ``cuda`` (the first GPU), ``cuda:N`` or ``mps``;
    ``None`` or ``""``: ``cuda:0`` when CUDA is available, else the CPU.

    Raises :class:`DeviceError` for another name or a device this machine lacks.
    """
    import torch

    if name is None or name == "":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r}; name one of {DEVICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(name)!r} asked for, but CUDA is not available here; use --device cpu")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(name)!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {str(name)!r} asked for, but MPS (Apple GPU) is not available here; use --device cpu")
        return torch.device("mps", 0)  # indexed, as the tensors on it report their device
    raise DeviceError(f"unknown device {str(name)!r}; name one of {DEVICES}")


class AgentSpecError(ValueError):
    """An agent name that does not resolve to an agent."""


SHIPPED_MODELS = ("default", "objects")
"""The world models shipped in ``armworld.worldmodel`` / ``weights/NAME``, named ``wm:NAME``:
``default`` (V-JEPA 2-AC style, MODEL_CARD.md) and ``objects`` (an object world model,
worldmodel/object_model.py; MODEL_CARD.md, "The object world model")."""


def shipped_model_path(name: str) -> Path:
    """Where the shipped world model ``name`` (one of :data:`SHIPPED_MODELS`) lives."""
    path = Path(str(resources.files("armworld.worldmodel") / "weights" / name))
    if name not in SHIPPED_MODELS or not ((path / "latest").is_file() or (path / "config.json").is_file()):
        raise AgentSpecError(
            f"the world model wm:{name} is not shipped in this version of armworld (shipped: "
            f"{', '.join(f'wm:{n}' for n in SHIPPED_MODELS)}); train one with `armworld collect` and `armworld train` "
            "(or `armworld train-objects`), then pass --agent wm:RUN_DIR"
        )
    return path


def is_shipped(spec: str) -> bool:
    """Whether ``spec`` names a shipped world model (``wm:default``, ``wm:objects``) rather than a path."""
    return spec.startswith("wm:") and spec[3:] in SHIPPED_MODELS


def model_path(spec: str) -> Path:
    """The checkpoint path a ``wm:`` spec names."""
    if not spec.startswith("wm:") or not spec[3:]:
        raise AgentSpecError(f"{spec!r} is not a world-model agent; write wm:PATH, wm:default or wm:objects")
    return shipped_model_path(spec[3:]) if is_shipped(spec) else Path(spec[3:])


def _model_config(path: str | Path) -> dict[str, Any]:
    from armworld.worldmodel.checkpoint import CONFIG, CheckpointError, resolve

    checkpoint = resolve(path)
    try:
        config = json.loads((checkpoint / CONFIG).read_text())
        if not isinstance(config, dict) or "image_size" not in (config.get("encoder") or {}):
            raise ValueError("no 'encoder' with an 'image_size'")
        return config
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{checkpoint} has no readable world-model config ({error})") from None


def model_settings(path: str | Path) -> tuple[str, int]:
    """The camera a world model was trained on and its encoder's image size."""
    config = _model_config(path)
    return str(config.get("train", {}).get("camera", "front")), int(config["encoder"]["image_size"])


def planner_settings(spec: str) -> dict[str, int]:
    """The planner settings a ``wm:`` model's config recommends (its ``planner``: an object
    world model's ``{"horizon": 10, "samples": 256}``), for the fields nobody set; ``{}`` for
    other agents and for models that recommend none (the planner's defaults then)."""
    return dict(_model_config(model_path(spec)).get("planner", {})) if spec.startswith("wm:") else {}


def released_image_size(image_size: int | None) -> int:
    """The frame side (px) of a ``vjepa2-ac:`` agent: ``image_size``, or the released 256."""
    from armworld.worldmodel.official import RELEASED_IMAGE_SIZE

    return RELEASED_IMAGE_SIZE if image_size is None else image_size


@functools.lru_cache(maxsize=1)
def _released_world_model(path: str, encoder: str, image_size: int, device: torch.device):
    """A released V-JEPA 2-AC model on ``device``, loaded once per process (evaluation builds
    one agent per seed; reading a ViT-g takes long)."""
    from armworld.worldmodel.official import world_model_from_official

    return world_model_from_official(path, encoder=encoder, image_size=image_size).to(device)


def load_world_model_for(
    spec: str, device: str | torch.device | None = None, image_size: int | None = None, encoder: str | None = None
) -> tuple[torch.nn.Module, str]:
    """The world model a ``wm:`` or ``vjepa2-ac:`` spec names, in eval mode on ``device``
    (:func:`resolve_device`), and the camera it plans from.

    ``image_size`` and ``encoder`` are for ``vjepa2-ac:`` (refused otherwise): the frame side
    (default 256) and the checkpoint entry holding the encoder (default ``target_encoder``)
    or a local Hugging Face V-JEPA 2 directory (see
    :func:`armworld.worldmodel.official.world_model_from_official`).
    """
    target = resolve_device(device)
    if spec.startswith("vjepa2-ac:") and spec[len("vjepa2-ac:") :]:
        path = spec[len("vjepa2-ac:") :]
        model = _released_world_model(path, encoder or "target_encoder", released_image_size(image_size), target)
        return model, RELEASED_CAMERA
    if image_size is not None or encoder is not None:
        raise AgentSpecError(f"{spec}: the image size and the encoder are chosen for vjepa2-ac: agents; wm: models fix their own")
    from armworld.worldmodel.checkpoint import load_world_model

    path = model_path(spec)
    camera, _ = model_settings(path)
    return load_world_model(path).to(target).eval(), camera


@functools.lru_cache(maxsize=2)
def episode_library(
    spec: str, files: tuple[str, ...], camera: str, device: torch.device, image_size: int | None, encoder: str | None
):
    """The :class:`armworld.agents.retrieval.EpisodeLibrary` of ``files`` under the world model
    ``spec`` names, encoded once per process on ``device`` (evaluation builds one agent per seed)."""
    from armworld.agents.retrieval import EpisodeLibrary, world_model_encoder

    world_model, _ = load_world_model_for(spec, device, image_size, encoder)
    return EpisodeLibrary(files, world_model_encoder(world_model), camera)


def load_world_model_agent(
    spec: str,
    env: gymnasium.Env,
    seed: int | None = None,
    goal: Any = "env",
    planner: PlannerOptions | None = None,
    retrieve_from: Sequence[str] = (),
    device: str | torch.device | None = None,
    image_size: int | None = None,
    encoder: str | None = None,
    **config: Any,
) -> Agent:
    """A :class:`WorldModelAgent` over the world model ``spec`` names (``wm:PATH``,
    ``wm:default``, ``vjepa2-ac:FILE.pt``), it and its planner on ``device``
    (:func:`resolve_device`: CUDA when available, else the CPU). ``config`` overrides
    :class:`WorldModelAgentConfig` fields (the camera defaults to the model's). ``planner``:
    which planner, and how (default: iCEM, over three steps unless the model recommends other
    settings, :func:`planner_settings`).
    ``retrieve_from``: trajectory files to retrieve sub-goals from on the way to the env's
    goal image (``goal="retrieve"``, :mod:`armworld.agents.retrieval`). ``image_size``,
    ``encoder``: see :func:`load_world_model_for`."""
    from armworld.agents.planners import PlannerOptions, planner_kind
    from armworld.agents.world_model_agent import WorldModelAgent, WorldModelAgentConfig
    from armworld.agents.world_model_agent_config import DEFAULT_PLANNER

    planner = planner or PlannerOptions(config=planner_kind(DEFAULT_PLANNER).config(**planner_settings(spec)))
    target = resolve_device(device)
    world_model, camera = load_world_model_for(spec, target, image_size, encoder)
    agent_config = WorldModelAgentConfig(**{"camera": camera, **config})
    library = None
    if retrieve_from:
        if goal not in ("env", "retrieve"):
            raise ValueError("sub-goals are retrieved on the way to the env's goal image: give no other goal with them")
        files = tuple(map(str, retrieve_from))
        goal, library = "retrieve", episode_library(spec, files, agent_config.camera, target, image_size, encoder)
    return WorldModelAgent(
        world_model, planner.make(seed, target), goal=goal, env=env, config=agent_config, library=library
    )


def _load_expert(spec: str, env: gymnasium.Env, seed: int | None) -> Agent:
    from armworld.agents.scripted import make_expert

    return make_expert(env, seed=seed)


def _load_random(spec: str, env: gymnasium.Env, seed: int | None) -> Agent:
    from armworld.agents.exploration import ColoredNoiseAgent

    return ColoredNoiseAgent.for_env(env, seed=seed)


def _load_sb3(spec: str, env: gymnasium.Env, seed: int | None) -> Agent:
    try:
        rl = importlib.import_module("armworld.agents.rl")
    except ModuleNotFoundError as error:
        raise AgentSpecError(f"sb3 agents need armworld.agents.rl, which this install lacks ({error})") from None
    if not hasattr(rl, "load_sb3_agent"):
        raise AgentSpecError("armworld.agents.rl has no load_sb3_agent(path, env): sb3 agents cannot be loaded")
    return rl.load_sb3_agent(spec[len("sb3:") :], env)


def _world_model_env_kwargs(spec: str, image_size: int | None) -> dict[str, Any]:
    camera, size = model_settings(model_path(spec))
    return {"obs_mode": "pixels_state", "cameras": (camera,), "image_size": size}


def _released_env_kwargs(spec: str, image_size: int | None) -> dict[str, Any]:
    return {"obs_mode": "pixels_state", "cameras": (RELEASED_CAMERA,), "image_size": released_image_size(image_size)}


def _sb3_env_kwargs(spec: str, image_size: int | None) -> dict[str, Any]:
    from armworld.agents.rl import sb3_env_kwargs

    return sb3_env_kwargs(spec[len("sb3:") :])["env_kwargs"]


def _no_env_kwargs(spec: str, image_size: int | None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class AgentKind:
    """One kind of agent, as :data:`AGENT_KINDS` holds it.

    name: the spec itself (``expert``), or, ending in ``:``, the prefix of specs that go on
    with a non-empty argument (``wm:`` for ``wm:PATH``). usage: how the help writes its
    specs (``("wm:PATH", "wm:default")``). load: ``load(spec, env, seed, **options) -> Agent``,
    ``options`` being what :func:`load_agent` got beyond the seed. env_kwargs:
    ``env_kwargs(spec, image_size) -> dict``, the env arguments the agent needs (``{}``: the
    env's own). goal_images: it plans toward goal images, and takes a world-model agent's
    options (``goal``, ``planner``, ``device``, ...). image_size: the caller chooses the
    frame side (px) it plans from (``vjepa2-ac:``); other kinds fix their own.
    """

    name: str
    usage: tuple[str, ...]
    load: Callable[..., Agent]
    env_kwargs: Callable[[str, int | None], dict[str, Any]] = _no_env_kwargs
    goal_images: bool = False
    image_size: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name == ":" or ":" in self.name[:-1]:
            raise ValueError(f"agent kind name {self.name!r}: give a name (expert) or a prefix with one ':', at its end (wm:)")
        if not self.usage:
            raise ValueError(f"agent kind {self.name!r}: give its usage, how the help writes its specs (e.g. {self.name}PATH)")

    def matches(self, spec: str) -> bool:
        """Whether ``spec`` names this kind: equal to its name, or its prefix and a non-empty argument."""
        if self.name.endswith(":"):
            return spec.startswith(self.name) and len(spec) > len(self.name)
        return spec == self.name


AGENT_KINDS: dict[str, AgentKind] = {}
"""The registered agent kinds by name, in registration order (the help's order)."""


def register_agent_kind(kind: AgentKind) -> AgentKind:
    """Add ``kind`` to :data:`AGENT_KINDS` (again: nothing); refused when another kind has its
    name (names hold at most a final ``:``, so no spec can name two kinds)."""
    if AGENT_KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"an agent kind named {kind.name!r} is registered already; choose another name")
    AGENT_KINDS[kind.name] = kind
    return kind


register_agent_kind(AgentKind("expert", ("expert",), _load_expert))
register_agent_kind(AgentKind("random", ("random",), _load_random))
register_agent_kind(
    AgentKind("wm:", ("wm:PATH", "wm:default", "wm:objects"), load_world_model_agent, _world_model_env_kwargs, goal_images=True)
)
register_agent_kind(
    AgentKind(
        "vjepa2-ac:", ("vjepa2-ac:FILE.pt",), load_world_model_agent, _released_env_kwargs, goal_images=True, image_size=True
    )
)
register_agent_kind(AgentKind("sb3:", ("sb3:PATH",), _load_sb3, _sb3_env_kwargs))


@functools.cache
def _register_plugins() -> None:
    """Register the kinds other packages declare under :data:`ENTRY_POINT_GROUP` (once per process)."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            kind = entry.load()
        except Exception as error:  # a plugin's bug or missing dependency: any error its import raises
            raise AgentSpecError(
                f"the entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP}) failed to load: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(kind, AgentKind):
            raise AgentSpecError(
                f"the entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP}) must name an "
                f"armworld.agents.loading.AgentKind, not a {type(kind).__name__}"
            )
        register_agent_kind(kind)


def _registered_kind(spec: str) -> AgentKind | None:
    return next((kind for kind in AGENT_KINDS.values() if kind.matches(spec)), None)


def _find_kind(spec: str) -> AgentKind | None:
    """The kind ``spec`` names, among the registered kinds, else among those plugins declare; ``None`` if none."""
    kind = _registered_kind(spec)
    if kind is None:
        _register_plugins()
        kind = _registered_kind(spec)
    return kind


def agent_kind(spec: str) -> AgentKind:
    """The kind of agent ``spec`` names; :class:`AgentSpecError` listing the specs otherwise."""
    kind = _find_kind(spec)
    if kind is None:
        raise AgentSpecError(f"unknown agent {spec!r}; name one of {agent_specs()}")
    return kind


def agent_specs(world_models: bool = False) -> str:
    """The specs of the registered kinds, for help and errors: ``expert, random, wm:PATH, ... or
    sb3:PATH``; ``world_models``: of the kinds that plan toward goal images only (``wm:PATH,
    wm:default or vjepa2-ac:FILE.pt``)."""
    usages = [usage for kind in AGENT_KINDS.values() if kind.goal_images or not world_models for usage in kind.usage]
    return f"{', '.join(usages[:-1])} or {usages[-1]}" if len(usages) > 1 else usages[0]


def agent_help() -> str:
    """``--agent``'s help: :func:`agent_specs`, and the kinds installed plugins add."""
    return f"{agent_specs()}, or a kind from an installed plugin (entry point {ENTRY_POINT_GROUP})"


def check_spec(spec: str) -> None:
    """Refuse a malformed agent name before any work starts (the agent itself loads later)."""
    agent_kind(spec)


def is_world_model(spec: str) -> bool:
    """Whether ``spec`` names an agent that plans toward goal images (``wm:``, ``vjepa2-ac:``)."""
    kind = _find_kind(spec)
    return kind is not None and kind.goal_images


def check_robot(spec: str, env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Refuse (:class:`AgentSpecError`, naming both robots) a ``wm:`` model for the env ``env_id``
    made with ``env_kwargs`` when every data file the model was trained on records the simulated
    robot it was collected with (its metadata's ``data``, see
    :func:`armworld.worldmodel.checkpoint.describe_data`) and none is the env's: its frames show
    another arm and its actions moved another arm. Nothing is checked for other kinds, nor where
    a file's robot or the env's is unknown (older metadata, LeRobot or real-arm data, an env id
    armworld does not know)."""
    if not spec.startswith("wm:"):
        return
    from armworld.datasets.env_args import robot_of
    from armworld.worldmodel.checkpoint import METADATA, read_json, resolve

    robot = robot_of({"env_name": env_id, "env_kwargs": env_kwargs})
    trained = [entry.get("robot") for entry in read_json(resolve(model_path(spec)), METADATA).get("data", [])]
    if robot is None or not trained or None in trained or robot in trained:
        return
    learned = sorted(set(trained))
    raise AgentSpecError(
        f"{spec} was trained on data of the {' and '.join(learned)} robot{'s' if len(learned) > 1 else ''}, and "
        f"{env_id} runs the {robot}: evaluate it on an env of the robot it learned, or pass --other-robot to "
        f"evaluate it on the {robot} anyway"
    )


def env_kwargs_for(spec: str, image_size: int | None = None) -> dict[str, Any]:
    """Env arguments the agent ``spec`` needs: a world model's camera and image size, an
    SB3 run's training env kwargs (``{}`` for the expert and random agents).
    ``image_size``: the frame side of an agent whose kind lets the caller choose it
    (``vjepa2-ac:``, default 256); refused for the others, whose models fix their own."""
    kind = agent_kind(spec)
    if image_size is not None and not kind.image_size:
        chosen = ", ".join(other.name for other in AGENT_KINDS.values() if other.image_size)
        raise AgentSpecError(f"{spec} fixes its own image size; an image size is chosen for {chosen} agents only")
    return kind.env_kwargs(spec, image_size)


def load_agent(spec: str, env: gymnasium.Env, seed: int | None = None, **options: Any) -> Agent:
    """The agent ``spec`` names (see the module docstring) for ``env``; ``seed`` seeds its randomness.

    ``options`` go to its kind's loader: for world-model agents :func:`load_world_model_agent`
    (``device``, ``goal``, ``planner``, ``image_size`` and ``encoder`` for ``vjepa2-ac:``,
    agent config fields); the expert, random and sb3 agents take none.
    """
    return agent_kind(spec).load(spec, env, seed, **options)
