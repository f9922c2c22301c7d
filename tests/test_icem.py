"""iCEM (Pinneri et al., 2020): its coloured noise, the elites it carries over, its decaying
population, the plan it executes, its config, its command-line options, and CEM at equal
energy evaluations on a smooth target sequence."""

from __future__ import annotations

import math

import pytest
import torch

from armworld.agents.planners import (
    CEM,
    ICEM,
    PLANNERS,
    ActionBounds,
    CEMConfig,
    ICEMConfig,
    PlannerOptions,
    coloured_noise,
)

CPU = torch.device("cpu")


def quadratic(target: torch.Tensor):
    """Sum over steps of |a_h - target_h|^2 for a target sequence ``[H, A]`` (or one action ``[A]``)."""
    return lambda actions: (actions - target).pow(2).sum(dim=(-1, -2))


def smooth_target(horizon: int) -> torch.Tensor:
    """``[horizon, 2]``: half a sine period per dimension, amplitude 0.6, inside the unit box."""
    steps = torch.arange(1, horizon + 1, dtype=torch.float32)[:, None]
    return 0.6 * torch.sin(math.pi * steps / horizon + torch.tensor([0.0, 1.5]))


class Recorder:
    """An energy that records every batch of candidates ``[K, H, A]`` it scores."""

    def __init__(self, energy) -> None:
        self.energy = energy
        self.batches: list[torch.Tensor] = []

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        self.batches.append(actions.clone())
        return self.energy(actions)


def spectrum_slope(beta: float, horizon: int = 64, count: int = 4000) -> float:
    """Least-squares slope of log power against log frequency of coloured noise, the constant
    and Nyquist components left out."""
    generator = torch.Generator().manual_seed(0)
    noise = coloured_noise(count, horizon, 1, beta, generator, CPU)[..., 0]  # [count, horizon]
    power = torch.fft.rfft(noise, dim=-1).abs().pow(2).mean(0)[1:-1]
    log_f = torch.fft.rfftfreq(horizon)[1:-1].log().double()
    log_p = power.log().double()
    log_f = log_f - log_f.mean()
    return float((log_f * (log_p - log_p.mean())).sum() / log_f.pow(2).sum())


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_requested_spectrum_slope(beta):
    assert spectrum_slope(beta) == pytest.approx(-beta, abs=0.1)


@pytest.mark.parametrize("horizon", [2, 5, 8])
@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_coloured_noise_has_unit_variance_at_every_step(horizon, beta):
    noise = coloured_noise(20000, horizon, 3, beta, torch.Generator().manual_seed(1), CPU)
    assert noise.shape == (20000, horizon, 3)
    assert torch.allclose(noise.var(0), torch.ones(horizon, 3), atol=0.05)
    assert noise.mean().abs() < 0.02
    lag = (noise[:, 1:] * noise[:, :-1]).mean()  # correlation of neighbouring steps
    expected = {2: 0.0, 5: 0.35, 8: 0.58}[horizon] if beta == 2.0 else 0.0  # horizon 2: constant = lowest frequency
    assert lag == pytest.approx(expected, abs=0.03)


def test_coloured_noise_over_one_step_is_white():
    noise = coloured_noise(5, 1, 3, 2.0, torch.Generator().manual_seed(4), CPU)
    assert torch.equal(noise, torch.randn((5, 1, 3), generator=torch.Generator().manual_seed(4)))


def test_populations_decay_and_each_iteration_scores_its_population_in_one_call():
    config = ICEMConfig(samples=100, iterations=5, elites=16, horizon=4)
    assert [config.population(i) for i in range(5)] == [100, 80, 64, 51, 40]
    assert [ICEMConfig(samples=40, iterations=4, elites=16).population(i) for i in range(4)] == [40, 32, 32, 32]
    energy = Recorder(quadratic(torch.zeros(2)))
    ICEM(config, ActionBounds((1.0, 1.0)), seed=0).plan(energy)
    assert [tuple(batch.shape) for batch in energy.batches] == [(n, 4, 2) for n in (100, 80, 64, 51, 40)]


def test_elites_are_carried_into_the_next_iteration_and_shifted_into_the_next_plan():
    config = ICEMConfig(samples=64, iterations=3, elites=10, horizon=4, keep_elites=0.3)
    assert config.kept == 3
    target = smooth_target(4)
    energy = Recorder(quadratic(target))
    planner = ICEM(config, ActionBounds((1.0, 1.0)), seed=0)
    planner.plan(energy)
    planner.plan(energy)
    first, second, third, next_plan = energy.batches[:4]

    def best(batch: torch.Tensor, count: int) -> torch.Tensor:
        return batch[quadratic(target)(batch).topk(count, largest=False).indices]

    kept = best(first, 3)  # the best 3 of 10 elites follow the fresh samples of the next population
    assert torch.equal(second[-3:], kept)
    assert torch.equal(third[-4:-1], best(second, 3))
    shifted = best(third, 3)[:, 1:]  # the last population's best, one step on, new last step 0
    assert torch.equal(next_plan[-3:, :-1], shifted) and (next_plan[-3:, -1] == 0).all()


def test_the_plan_is_the_best_candidate_scored_the_mean_among_them():
    target = smooth_target(6)
    energy = Recorder(quadratic(target))
    config = ICEMConfig(samples=48, iterations=3, elites=8, horizon=6)
    planner = ICEM(config, ActionBounds((1.0, 1.0)), seed=2)
    start = planner.initial_mean()
    plan = planner.plan(energy)
    scored = torch.cat(energy.batches)
    assert torch.equal(plan, scored[quadratic(target)(scored).argmin()])
    assert not torch.equal(energy.batches[-1][-1], start)  # the last population ends with the refined mean
    assert (energy.batches[-1][-1] - target).abs().mean() < (start - target).abs().mean()


def test_reset_forgets_the_elites_and_without_warm_start_none_are_carried():
    energy = quadratic(smooth_target(4))
    config = ICEMConfig(samples=32, iterations=2, elites=8, horizon=4)

    def first_batch(planner: ICEM) -> torch.Tensor:
        recorder = Recorder(energy)
        planner.plan(recorder)
        return recorder.batches[0]

    planner = ICEM(config, ActionBounds((1.0, 1.0)), seed=3)
    fresh = first_batch(planner)
    planner.reset(seed=3)
    assert torch.equal(first_batch(planner), fresh)
    assert fresh.shape[0] == 32 and (first_batch(planner)[-2:, -1] == 0).all()  # warm: 2 shifted elites

    cold_config = ICEMConfig(samples=32, iterations=2, elites=8, horizon=4, warm_start=False)
    cold = ICEM(cold_config, ActionBounds((1.0, 1.0)), seed=3)
    first_batch(cold)
    assert (first_batch(cold)[:, -1] != 0).all()  # every candidate drawn afresh
    assert torch.equal(cold.initial_mean(), torch.zeros(4, 2))


@pytest.mark.parametrize("horizon", [1, 3])
def test_plans_and_candidates_stay_within_the_bounds(horizon):
    bounds = ActionBounds((0.5, 0.5, 0.5), l1_radius=0.6)
    energy = Recorder(quadratic(torch.tensor([2.0, -2.0, 0.2])))  # the minimum lies outside
    planner = ICEM(ICEMConfig(samples=64, iterations=4, elites=8, horizon=horizon), bounds, seed=0)
    for _ in range(3):
        plan = planner.plan(energy)
        assert plan.shape == (horizon, 3) and plan.dtype == torch.float32 and plan.device == CPU
        assert torch.equal(bounds.project(plan), plan)
    seen = torch.cat(energy.batches)
    assert (seen.abs() <= 0.5 + 1e-6).all() and (seen.abs().sum(-1) <= 0.6 + 1e-5).all()
    assert torch.allclose(plan[0], torch.tensor([0.3, -0.3, 0.0]), atol=0.08)  # the nearest feasible point


def test_world_model_bounds_hold_rotation():
    planner = ICEM(ICEMConfig(samples=32, iterations=2, elites=4, horizon=3), ActionBounds.world_model(), seed=0)
    energy = Recorder(lambda actions: actions[..., 0].sum(-1))
    plan = planner.plan(energy)
    assert (torch.cat(energy.batches)[..., 3:6] == 0).all() and (plan[..., 3:6] == 0).all()


def test_same_seed_same_plans_another_seed_other_plans():
    def plans(seed: int) -> list[torch.Tensor]:
        planner = PlannerOptions("icem", ICEMConfig(samples=32, iterations=3, elites=4, horizon=3),
                                 ActionBounds((1.0, 1.0))).make(seed=seed)
        return [planner.plan(quadratic(smooth_target(3))) for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(plans(5), plans(5)))
    assert not torch.equal(plans(5)[0], plans(6)[0])


def test_beats_cem_at_equal_energy_evaluations_on_a_long_smooth_target():
    """Measured: mean energy of the plan 1.36 (iCEM) vs 2.23 (CEM) over these 10 seeds, 1.25 vs
    2.20 over 30 (iCEM better on 29), at 255 vs 256 evaluations. At horizon 5 CEM's refined
    mean wins (0.07 vs 0.12 over 30 seeds): iCEM executes one sample."""
    horizon = 20
    energy = quadratic(smooth_target(horizon))
    bounds = ActionBounds((1.0, 1.0))
    cem_config = CEMConfig(samples=64, iterations=4, top_k=8, horizon=horizon)
    icem_config = ICEMConfig(samples=87, iterations=4, elites=8, horizon=horizon)
    assert sum(icem_config.population(i) for i in range(4)) <= cem_config.samples * cem_config.iterations

    def mean_energy(make) -> float:
        return sum(energy(make(seed).plan(energy)[None]).item() for seed in range(10)) / 10

    cem = mean_energy(lambda seed: CEM(cem_config, bounds, seed=seed))
    icem = mean_energy(lambda seed: ICEM(icem_config, bounds, seed=seed))
    assert icem < 0.75 * cem, (icem, cem)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ICEMConfig(samples=0), "samples"),
        (lambda: ICEMConfig(iterations=0), "iterations"),
        (lambda: ICEMConfig(horizon=0), "horizon"),
        (lambda: ICEMConfig(elites=0), "elites"),
        (lambda: ICEMConfig(samples=20, elites=11), r"elites must lie in \[1, samples / 2 = 10\]"),
        (lambda: ICEMConfig(beta=-1.0), "beta"),
        (lambda: ICEMConfig(beta=float("nan")), "beta"),
        (lambda: ICEMConfig(keep_elites=1.5), "keep_elites"),
        (lambda: ICEMConfig(decay=0.9), "decay"),
        (lambda: ICEMConfig(momentum=1.0), "momentum"),
        (lambda: ICEMConfig(init_std=0.0), "init_std"),
    ],
)
def test_impossible_configs_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_registered_and_set_from_the_command_line():
    from armworld.cli import build_parser
    from armworld.commands.agents import _planner_options

    assert (PLANNERS["icem"].planner, PLANNERS["icem"].config, PLANNERS["icem"].elites) == (ICEM, ICEMConfig, "elites")
    parse = build_parser().parse_args
    base = ["eval", "--agent", "wm:default", "--env", "armworld/FrankaReach-v0", "--out", "unused", "--planner", "icem"]
    options = _planner_options(parse(base + ["--planner-option", "beta=2.5", "--planner-option", "keep_elites=0.5",
                                             "--samples", "64", "--top-k", "8", "--horizon", "5"]), "wm:default")
    assert options.name == "icem"
    assert options.config == ICEMConfig(samples=64, elites=8, horizon=5, beta=2.5, keep_elites=0.5)
    assert _planner_options(parse(base + ["--planner-option", "beta=2.0"]), "wm:default").config == ICEMConfig()
    assert PLANNERS["icem"].max_elites(20) == 10 and PLANNERS["cem"].max_elites(20) == 20
    capped = _planner_options(parse(base + ["--samples", "20"]), "wm:default").config  # the default 16 elites need 32 samples
    assert (capped.samples, capped.elites) == (20, 10)
    with pytest.raises(ValueError, match=r"^icem planner settings: elites must lie in \[1, samples / 2 = 10\] .*, "
                                         r"got 16 \(elites is --top-k\)$"):
        _planner_options(parse(base + ["--samples", "20", "--top-k", "16"]), "wm:default")
    with pytest.raises(ValueError, match="the icem planner has no option 'temperature'"):
        _planner_options(parse(base + ["--planner-option", "temperature=0.5"]), "wm:default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_planner_samples_there_and_reaches_the_target():
    target = smooth_target(4)
    planner = ICEM(ICEMConfig(samples=128, iterations=8, elites=12, horizon=4), ActionBounds((1.0, 1.0)), seed=0,
                   device="cuda")
    energy = Recorder(quadratic(target.cuda()))
    plan = planner.plan(energy)
    assert {batch.device.type for batch in energy.batches} == {"cuda"} and plan.device.type == "cuda"
    assert torch.allclose(plan.cpu(), target, atol=0.1)
