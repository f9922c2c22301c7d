"""Sampling-based planners over action sequences: CEM (V-JEPA 2-AC), iCEM (Pinneri et al.,
2020) and MPPI (TD-MPC2).

A planner minimises an *energy*: a function from ``K`` candidate action sequences
``[K, H, A]`` to one number per candidate ``[K]`` (lower is better). Every iteration
evaluates all ``K`` candidates in one call, so a world model rolls them out as one batch::

    planner = CEM(CEMConfig(samples=256, iterations=4, top_k=16), ActionBounds.world_model())
    planner.reset()                      # new episode: forget the previous plan
    plan = planner.plan(energy)          # [H, A]; execute plan[0], observe, plan again

Receding horizon: each call starts from the previous plan shifted by one step (its last
step re-initialised at 0), so consecutive plans refine each other instead of starting
over. Every step's action is kept inside :class:`ActionBounds` (a box, optionally an L1
ball over the translation, dimensions that may be held at 0).

A planner lives on one device (``device=``, the world model's): its samples come from a
generator on that device and its mean, std and energies stay there, so an iteration never
waits on the host. On the CPU the numbers are those of a CPU generator seeded alike; on a
GPU they follow the same distributions (another generator, other draws).

- :class:`CEM` follows V-JEPA 2-AC's ``cem`` (``notebooks/utils/mpc_utils.py``): Gaussian
  samples around a mean (initially 0, std = the box half-widths), refit to the ``top_k``
  lowest-energy samples, smoothed with ``momentum``; the plan is the final mean.
- :class:`MPPI` follows TD-MPC2's ``_plan``: the ``elites`` best samples weighted by
  ``exp(-temperature * (energy - best) / spread)`` (:func:`elite_weights`; ``spread`` is
  the std of the elites' energies, so the weights do not depend on the energy's units),
  std clamped to ``[min_std, max_std]`` (in units of the box half-widths); the executed
  sequence is drawn among the elites by those weights (Gumbel-max), the mean carried
  over to the next call.
- :class:`ICEM` is CEM made sample-efficient (Pinneri et al., "Sample-efficient
  Cross-Entropy Method for Real-time Planning", CoRL 2020): coloured noise along the horizon
  (:func:`coloured_noise`, power spectrum ``1/f^beta``: smooth sequences), a fraction of each
  iteration's elites kept in the next population (the first takes the previous plan's,
  shifted by one step), a population shrinking by ``decay`` per iteration, the mean scored
  in the last; the plan is the lowest-energy candidate seen.

Planners are registered by name (:data:`PLANNERS`, filled by :func:`register_planner` on each
class): :class:`PlannerOptions` and the CLI's ``--planner`` build them from there. A new
planner is a class and its config dataclass in this file, nothing else::

    @dataclass(frozen=True)
    class RandomShootingConfig:
        samples: int = 256
        iterations: int = 1
        best: int = 1  # the elite count: the CLI's --top-k
        horizon: int = 1
        warm_start: bool = False

    @register_planner("shoot", RandomShootingConfig, elites="best")
    class RandomShooting(Planner):
        def plan(self, energy): ...
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import torch

from armworld.agents.world_model_agent_config import DEFAULT_PLANNER
from armworld.envs.conventions import ACTION_DIM, MAX_POS_DELTA, MAX_ROT_DELTA

Energy = Callable[[torch.Tensor], torch.Tensor]
"""``actions [K, H, A] -> energy [K]``, lower is better."""


@functools.lru_cache(maxsize=32)
def _scale_tensor(scale: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(scale, dtype=dtype, device=device)


@dataclass(frozen=True)
class ActionBounds:
    """Where each step's action may lie.

    scale: half-width of the box of each of the ``A`` dimensions (action units); a scale
    of 0 holds that dimension at 0. l1_radius: if set, the dimensions ``l1_dims`` are also
    kept inside the L1 ball of that radius (V-JEPA 2-AC's paper: 0.075 m over xyz).
    """

    scale: tuple[float, ...]
    l1_radius: float | None = None
    l1_dims: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if not self.scale or any(s < 0 for s in self.scale) or not any(s > 0 for s in self.scale):
            raise ValueError(f"scale needs one value >= 0 per action dimension, at least one > 0; got {self.scale}")
        if self.l1_radius is not None:
            if self.l1_radius <= 0:
                raise ValueError(f"l1_radius must be > 0, got {self.l1_radius}")
            if not self.l1_dims or any(not 0 <= d < len(self.scale) for d in self.l1_dims):
                raise ValueError(f"l1_dims {self.l1_dims} must index the {len(self.scale)} action dimensions")

    @classmethod
    def world_model(
        cls,
        max_translation: float = MAX_POS_DELTA,
        max_rotation: float = MAX_ROT_DELTA,
        hold_rotation: bool = True,
        gripper: bool = True,
        max_gripper: float = 1.0,
        l1_radius: float | None = None,
    ) -> ActionBounds:
        """Bounds of 7-D world-model actions (xyz m, rotation rad, gripper closure change).

        hold_rotation keeps the orientation (V-JEPA 2-AC's released planner does); gripper
        False keeps the grip as it is (gripper change 0); l1_radius bounds the xyz move.
        """
        rotation = 0.0 if hold_rotation else max_rotation
        scale = (max_translation,) * 3 + (rotation,) * 3 + (max_gripper if gripper else 0.0,)
        assert len(scale) == ACTION_DIM
        return cls(scale=scale, l1_radius=l1_radius)

    @property
    def dim(self) -> int:
        """A, the action dimension."""
        return len(self.scale)

    def scale_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The half-widths ``[A]`` as a tensor of ``like``'s dtype and device (made once per
        dtype and device, not copied to the device at every call; do not modify it)."""
        return _scale_tensor(self.scale, like.dtype, like.device)


    def project(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions ``[..., A]`` moved into the bounds (clipped to the box, then onto the L1 ball)."""
        scale = self.scale_tensor(actions)
        actions = torch.maximum(torch.minimum(actions, scale), -scale)
        if self.l1_radius is None:
            return actions
        dims = list(self.l1_dims)
        actions = actions.clone()
        actions[..., dims] = project_l1_ball(actions[..., dims], self.l1_radius)
        return actions


def project_l1_ball(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of vectors ``[..., d]`` onto ``{x : |x|_1 <= radius}`` (Duchi et al., 2008)."""
    magnitude = v.abs()
    inside = magnitude.sum(-1, keepdim=True) <= radius
    sorted_mag = magnitude.sort(dim=-1, descending=True).values
    cumulative = sorted_mag.cumsum(-1) - radius
    index = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = (sorted_mag * index > cumulative).sum(-1, keepdim=True)  # >= 1 whenever outside
    theta = cumulative.gather(-1, (rho - 1).clamp(min=0)) / rho.clamp(min=1).to(v.dtype)
    projected = v.sign() * (magnitude - theta).clamp(min=0)
    return torch.where(inside, v, projected)


@dataclass(frozen=True)
class CEMConfig:
    """The cross-entropy method (V-JEPA 2-AC: 800 samples, 10 iterations, top 10, horizon 1
    in the paper; 400 / 10 / 10, momentum 0.15 in the released code). The defaults are
    sized for about a second per action with the ``tiny`` world model on two CPU cores."""

    samples: int = 256
    iterations: int = 4
    top_k: int = 16
    horizon: int = 1
    momentum: float = 0.15  # weight of the previous mean/std in each refit
    init_std: float = 1.0  # initial std, in units of the box half-widths
    warm_start: bool = True  # start from the previous plan, shifted by one step

    def __post_init__(self) -> None:
        _check_common(self.samples, self.iterations, self.horizon)
        if not 1 <= self.top_k <= self.samples:
            raise ValueError(f"top_k must lie in [1, samples = {self.samples}], got {self.top_k}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")


@dataclass(frozen=True)
class MPPIConfig:
    """MPPI as TD-MPC2 plans (512 samples, 6 iterations, 64 elites, std in [0.05, 2],
    horizon 3); the defaults here are smaller, for CPU planning.

    temperature: how sharply the weights favour low energies, per std of the elites'
    energies (see :func:`elite_weights`). TD-MPC2's 0.5 multiplies raw returns, so its
    effect depends on their scale; here the same temperature acts the same on world-model
    L1 energies (~0.2, elites spanning ~0.02) as on energies in the thousands. At 1, an
    elite one std worse than the best weighs e^-1 ~ 0.37 of it; on energies with a
    Gaussian lower tail, about a quarter of the elites carry the weight (effective
    sample size ~8 of 32).
    """

    samples: int = 256
    iterations: int = 4
    elites: int = 32
    horizon: int = 1
    temperature: float = 1.0  # weights exp(-temperature * (energy - best) / std of the elite energies)
    min_std: float = 0.05  # in units of the box half-widths
    max_std: float = 2.0  # also the initial std
    warm_start: bool = True

    def __post_init__(self) -> None:
        _check_common(self.samples, self.iterations, self.horizon)
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"elites must lie in [1, samples = {self.samples}], got {self.elites}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.min_std <= self.max_std:
            raise ValueError(f"need 0 < min_std <= max_std, got {self.min_std} and {self.max_std}")


@dataclass(frozen=True)
class ICEMConfig:
    """iCEM (Pinneri et al., 2020). The paper plans with a first population of N = 300,
    K = 10 elites, 3 iterations, horizon 30, decay gamma = 1.25, a fraction xi = 0.3 of the
    elites kept, noise colour beta = 2 for most tasks (higher for some), momentum 0.1 and an
    initial std of 0.5. The defaults here are the world-model agent's (iCEM is its default
    planner): three planned steps, a first population of 128, 4 iterations, 16 elites
    (128 + 102 + 81 + 65 candidates of 3 steps scored per action, about the time CEM's
    defaults take for 4 x 256 of one step with the ``tiny`` world model on two CPU cores;
    reports/goal_image section 7), and CEM's initial std of 1 box half-width; the rest is the
    paper's. ``elites`` is at most ``samples / 2``.
    """

    samples: int = 128  # N, the first iteration's population; at least 2 * elites
    iterations: int = 4
    elites: int = 16  # K, refit to and kept from each iteration (the CLI's --top-k)
    horizon: int = 3
    beta: float = 2.0  # noise colour: power spectrum 1/f^beta along the horizon (0: white)
    keep_elites: float = 0.3  # fraction of the elites carried into the next population
    decay: float = 1.25  # gamma: population of iteration i = max(2 * elites, samples / decay^i)
    momentum: float = 0.1  # weight of the previous mean/std in each refit
    init_std: float = 1.0  # initial std, in units of the box half-widths
    warm_start: bool = True  # start from the previous plan's mean and elites, shifted by one step

    def __post_init__(self) -> None:
        _check_common(self.samples, self.iterations, self.horizon)
        if not 1 <= self.elites <= self.samples // 2:
            raise ValueError(
                f"elites must lie in [1, samples / 2 = {self.samples // 2}] (iCEM's population never falls "
                f"below twice the elites), got {self.elites}"
            )
        if not 0.0 <= self.beta <= 8.0:
            raise ValueError(f"beta must lie in [0, 8] (0: white noise, 2: the paper's), got {self.beta}")
        if not 0.0 <= self.keep_elites <= 1.0:
            raise ValueError(f"keep_elites is a fraction of the elites, in [0, 1]; got {self.keep_elites}")
        if not 1.0 <= self.decay <= 1000.0:
            raise ValueError(f"decay must lie in [1, 1000] (1: a constant population), got {self.decay}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")

    def population(self, iteration: int) -> int:
        """Candidates scored at ``iteration`` (from 0): ``max(2 * elites, samples / decay^iteration)``."""
        return max(2 * self.elites, int(self.samples * self.decay**-iteration))

    @property
    def kept(self) -> int:
        """Elites carried into the next population: ``keep_elites`` of them, rounded down."""
        return int(self.keep_elites * self.elites)


def _check_common(samples: int, iterations: int, horizon: int) -> None:
    for name, value in (("samples", samples), ("iterations", iterations), ("horizon", horizon)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


class PlannerConfig(Protocol):
    """What every planner's config dataclass holds (the CLI's ``--samples``, ``--iterations``
    and ``--horizon`` set them; every field has a default)."""

    samples: int  # K, candidates per iteration
    iterations: int
    horizon: int  # H, planned steps
    warm_start: bool  # start from the previous plan, shifted by one step


class Planner:
    """Shared by every planner: its config, bounds, the seeded generator on the planner's
    device, the warm start. A subclass implements :meth:`plan`."""

    def __init__(
        self, config: PlannerConfig, bounds: ActionBounds, seed: int | None = None, device: str | torch.device = "cpu"
    ) -> None:
        self.config = config
        self.bounds = bounds
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:  # "cuda": the current GPU, named as tensors name it
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()  # non-deterministic
        else:
            self.generator.manual_seed(seed)
        self._previous: torch.Tensor | None = None

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous plan (a new episode); reseed the sampler if ``seed`` is given."""
        self._previous = None
        if seed is not None:
            self.generator.manual_seed(seed)

    def initial_mean(self) -> torch.Tensor:
        """``[H, A]``: the previous plan shifted by one step (new last step 0), or zeros."""
        mean = torch.zeros(self.horizon, self.bounds.dim, device=self.device)
        if self.config.warm_start and self._previous is not None:
            mean[:-1] = self._previous[1:]
        return mean

    def sample(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``samples`` candidates ``[K, H, A]`` around ``mean`` ``[H, A]``, inside the bounds."""
        noise = torch.randn((self.config.samples, *mean.shape), generator=self.generator, device=self.device)
        return self.bounds.project(mean + std * noise)

    def plan(self, energy: Energy) -> torch.Tensor:
        """The action sequence ``[H, A]`` (float32, within the bounds, on the planner's device) to
        follow; execute its first step. ``energy`` gets candidates ``[K, H, A]`` on that device."""
        raise NotImplementedError


def _every_sample(samples: int) -> int:
    """The largest elite count of most planners: every one of the ``samples`` candidates."""
    return samples


@dataclass(frozen=True)
class PlannerKind:
    """A registered planner: ``planner(config, bounds, seed=, device=)`` builds it from an
    instance of its ``config`` dataclass; ``elites`` names the config field counting the
    elites (the CLI's ``--top-k``: CEM's ``top_k``, iCEM's and MPPI's ``elites``), and
    ``max_elites(samples)`` is the largest elite count its config allows with ``samples``
    candidates (the CLI caps the default elites to it)."""

    name: str
    planner: type[Planner]
    config: type
    elites: str
    max_elites: Callable[[int], int] = _every_sample

    def __post_init__(self) -> None:
        if not (isinstance(self.planner, type) and issubclass(self.planner, Planner)):
            raise TypeError(f"planner {self.name!r}: {self.planner!r} is not a subclass of Planner")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"planner {self.name!r}: its config {self.config!r} must be a dataclass")
        missing = {"samples", "iterations", "horizon", "warm_start", self.elites} - set(self.fields())
        if missing:
            raise TypeError(f"planner {self.name!r}: its config {self.config.__name__} lacks the fields {sorted(missing)}")

    def fields(self) -> dict[str, type]:
        """The config's fields and their types, in declaration order."""
        hints = typing.get_type_hints(self.config)
        return {f.name: hints[f.name] for f in dataclasses.fields(self.config)}


PLANNERS: dict[str, PlannerKind] = {}
"""The registered planners by name (``cem``, ``icem``, ``mppi``), in registration order."""

PlannerClass = TypeVar("PlannerClass", bound=type[Planner])


def register_planner(
    name: str, config: type, elites: str, max_elites: Callable[[int], int] = _every_sample
) -> Callable[[PlannerClass], PlannerClass]:
    """Class decorator: register the planner under ``name`` with its ``config`` dataclass,
    whose field ``elites`` counts the elites, at most ``max_elites(samples)`` (default: every
    sample; see :class:`PlannerKind`)."""

    def register(planner: PlannerClass) -> PlannerClass:
        if name in PLANNERS:
            registered = PLANNERS[name].planner.__name__
            raise ValueError(f"a planner named {name!r} is registered already ({registered}); choose another name")
        PLANNERS[name] = PlannerKind(name, planner, config, elites, max_elites)
        return planner

    return register


def planner_kind(name: str) -> PlannerKind:
    """The planner registered as ``name``; a ``ValueError`` naming the registered ones otherwise."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; registered planners: {', '.join(PLANNERS)}")
    return PLANNERS[name]


@dataclass(frozen=True)
class PlannerOptions:
    """Which registered planner a world-model agent uses, and how.

    name: a key of :data:`PLANNERS`; config: an instance of that planner's config dataclass
    (``None``: its defaults); bounds: where each planned action may lie.
    """

    name: str = DEFAULT_PLANNER
    config: PlannerConfig | None = None
    bounds: ActionBounds = field(default_factory=ActionBounds.world_model)

    def __post_init__(self) -> None:
        kind = planner_kind(self.name)
        if self.config is None:
            object.__setattr__(self, "config", kind.config())
        elif type(self.config) is not kind.config:
            raise TypeError(
                f"the {self.name} planner is configured by {kind.config.__name__}, not {type(self.config).__name__}; "
                f"pass PlannerOptions({self.name!r}, {kind.config.__name__}(...))"
            )

    def make(self, seed: int | None, device: str | torch.device = "cpu") -> Planner:
        """The planner, seeded with ``seed``, sampling on ``device`` (the world model's)."""
        return PLANNERS[self.name].planner(self.config, self.bounds, seed=seed, device=device)


@register_planner("cem", CEMConfig, elites="top_k")
class CEM(Planner):
    """The cross-entropy method with momentum; see the module docstring."""

    config: CEMConfig

    def plan(self, energy: Energy) -> torch.Tensor:
        c = self.config
        mean = self.initial_mean()
        std = c.init_std * self.bounds.scale_tensor(mean).expand_as(mean).clone()
        for _ in range(c.iterations):
            candidates = self.sample(mean, std)
            values = _energies(energy, candidates)
            elites = candidates[values.topk(c.top_k, largest=False).indices]
            mean, std = _refit(mean, std, elites, c.momentum)
        plan = self.bounds.project(mean)
        self._previous = plan
        return plan


@register_planner("icem", ICEMConfig, elites="elites", max_elites=lambda samples: samples // 2)
class ICEM(Planner):
    """iCEM (Pinneri et al., 2020): CEM with coloured noise, elites kept, a decaying population
    and the best candidate executed; see the module docstring and :class:`ICEMConfig`."""

    config: ICEMConfig

    def __init__(
        self, config: ICEMConfig, bounds: ActionBounds, seed: int | None = None, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(config, bounds, seed=seed, device=device)
        self._elites: torch.Tensor | None = None  # [kept, H, A]: the previous plan's best elites

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous plan and its elites; reseed the sampler if ``seed`` is given."""
        super().reset(seed)
        self._elites = None

    def plan(self, energy: Energy) -> torch.Tensor:
        c = self.config
        mean = self.initial_mean()
        std = c.init_std * self.bounds.scale_tensor(mean).expand_as(mean).clone()
        kept = self._shifted_elites()
        best, best_value = mean, torch.tensor(float("inf"), device=self.device)
        for i in range(c.iterations):
            last = i == c.iterations - 1
            fresh = c.population(i) - len(kept) - int(last)
            noise = coloured_noise(fresh, c.horizon, self.bounds.dim, c.beta, self.generator, self.device)
            scored = [self.bounds.project(mean + std * noise), kept]
            if last:  # the mean too, so that the plan executed was scored
                scored.append(self.bounds.project(mean)[None])
            candidates = torch.cat(scored)
            values = _energies(energy, candidates)
            top = values.topk(c.elites, largest=False)  # sorted: the lowest energy first
            elites = candidates[top.indices]
            best = torch.where(top.values[0] < best_value, elites[0], best)  # tensors: no wait on the device
            best_value = torch.minimum(top.values[0], best_value)
            kept = elites[: c.kept]
            mean, std = _refit(mean, std, elites, c.momentum)
        self._previous = self.bounds.project(mean)
        self._elites = kept
        return best

    def _shifted_elites(self) -> torch.Tensor:
        """``[kept, H, A]``: the previous plan's kept elites shifted by one step (new last step 0,
        as :meth:`initial_mean`'s); none without a warm start, or at horizon 1 (nothing of a
        one-step plan survives the shift)."""
        if not (self.config.warm_start and self._elites is not None and self.horizon > 1):
            return torch.zeros(0, self.horizon, self.bounds.dim, device=self.device)
        shifted = torch.zeros_like(self._elites)
        shifted[:, :-1] = self._elites[:, 1:]
        return shifted


def coloured_noise(
    count: int, horizon: int, dim: int, beta: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``[count, horizon, dim]`` Gaussian noise coloured along the horizon: each of the ``dim``
    sequences has power spectrum ``1/f^beta`` (0: white; 2: a random walk's, smooth) and every
    step variance 1. Drawn from ``generator`` on ``device`` in the frequency domain and brought
    back by ``torch.fft.irfft``, as the ``colorednoise`` package iCEM uses does: periodic over
    the horizon, the constant component weighing as the lowest frequency, 1/horizon. So
    horizons 1 to 3 get white noise; with beta 2, neighbouring steps correlate 0.35 at
    horizon 5, 0.58 at 8, 0.83 at 20."""
    if horizon == 1:
        return torch.randn((count, 1, dim), generator=generator, device=device)
    frequencies = torch.fft.rfftfreq(horizon, device=device)  # [F], cycles per step
    frequencies[0] = 1.0 / horizon
    amplitude = frequencies ** (-beta / 2.0)
    shape = (count, dim, len(frequencies))
    real = torch.randn(shape, generator=generator, device=device) * amplitude
    imaginary = torch.randn(shape, generator=generator, device=device) * amplitude
    # The constant (and at even horizons the Nyquist) component is real: all its power in the real part.
    real_only = [0, -1] if horizon % 2 == 0 else [0]
    real[..., real_only] *= 2**0.5
    imaginary[..., real_only] = 0.0
    # Each step's variance: sum of the components' (2 a^2 for a real one, 4 a^2 otherwise) / horizon^2.
    power = 4.0 * amplitude.pow(2)
    power[real_only] /= 2.0
    noise = torch.fft.irfft(torch.complex(real, imaginary), n=horizon, dim=-1) * horizon / power.sum().sqrt()
    return noise.transpose(1, 2)


@register_planner("mppi", MPPIConfig, elites="elites")
class MPPI(Planner):
    """Model-predictive path integral control as TD-MPC2 plans; see the module docstring."""

    config: MPPIConfig

    def plan(self, energy: Energy) -> torch.Tensor:
        c = self.config
        mean = self.initial_mean()
        scale = self.bounds.scale_tensor(mean)
        std = (c.max_std * scale).expand_as(mean).clone()
        for _ in range(c.iterations):
            candidates = self.sample(mean, std)
            values = _energies(energy, candidates)
            best = values.topk(c.elites, largest=False)
            elite_actions, elite_energy = candidates[best.indices], best.values
            weights = elite_weights(elite_energy, c.temperature)[:, None, None]
            mean = (weights * elite_actions).sum(0)
            spread = ((weights * (elite_actions - mean) ** 2).sum(0)).sqrt()
            std = torch.minimum(torch.maximum(spread, c.min_std * scale), c.max_std * scale)
        # TD-MPC2 executes one elite drawn by its weight (Gumbel-max), and keeps the mean.
        gumbel = -torch.log(-torch.log(torch.rand(c.elites, generator=self.generator, device=self.device).clamp(1e-20, 1.0)))
        choice = (weights.view(-1).log() + gumbel).argmax()  # a tensor: no wait on the device
        self._previous = self.bounds.project(mean)
        return elite_actions[choice]


def elite_weights(energies: torch.Tensor, temperature: float) -> torch.Tensor:
    """MPPI's weights ``[E]`` (summing to 1) of elites with energies ``[E]``.

    ``exp(-temperature * (energy - min) / std)``, the std taken over these energies: the
    weights are the same whatever the energy's units (multiplying every energy by a
    positive constant changes nothing). Equal energies get equal weights.
    """
    gap = energies - energies.min()
    spread = energies.std(unbiased=False).clamp_min(torch.finfo(energies.dtype).tiny)
    weights = torch.exp(-temperature * gap / spread)
    return weights / weights.sum()


def _refit(
    mean: torch.Tensor, std: torch.Tensor, elites: torch.Tensor, momentum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CEM's refit of ``mean`` and ``std`` ``[H, A]`` to ``elites`` ``[E, H, A]``, the previous
    values weighing ``momentum``."""
    mean = momentum * mean + (1.0 - momentum) * elites.mean(0)
    std = momentum * std + (1.0 - momentum) * elites.std(0, unbiased=False)
    return mean, std


def _energies(energy: Energy, candidates: torch.Tensor) -> torch.Tensor:
    """``energy(candidates)`` as float32 ``[K]`` on the candidates' device (a no-op for an
    energy computed there)."""
    values = energy(candidates)
    if values.shape != candidates.shape[:1]:
        raise ValueError(f"the energy must map [K, H, A] candidates to [K] values, got shape {tuple(values.shape)}")
    return values.detach().to(candidates.device, torch.float32)
