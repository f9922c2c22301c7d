"""CEM and MPPI (iCEM: test_icem.py) on toy energies whose minimum is known; bounds; warm start; refused configs;
the planner registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from armworld.agents import planners as planners_module
from armworld.agents.planners import (
    CEM,
    ICEM,
    MPPI,
    PLANNERS,
    ActionBounds,
    CEMConfig,
    ICEMConfig,
    MPPIConfig,
    Planner,
    PlannerOptions,
    elite_weights,
    project_l1_ball,
    register_planner,
)

TARGET = torch.tensor([0.3, -0.7, 0.5])


def quadratic(target: torch.Tensor):
    """Sum over steps of |a_h - target|^2: minimum at every step = target (projected on the bounds)."""
    return lambda actions: (actions - target).pow(2).sum(dim=(-1, -2))


def planners(bounds: ActionBounds, horizon: int = 2, seed: int = 0):
    return [
        CEM(CEMConfig(samples=128, iterations=12, top_k=12, horizon=horizon), bounds, seed=seed),
        MPPI(MPPIConfig(samples=128, iterations=12, elites=16, horizon=horizon), bounds, seed=seed),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["cem", "mppi"])
def test_finds_the_minimum_of_a_quadratic(index):
    planner = planners(ActionBounds((1.0, 1.0, 1.0)))[index]
    plan = planner.plan(quadratic(TARGET))
    assert plan.shape == (2, 3)
    tolerance = 0.01 if index == 0 else 0.1  # MPPI executes one sampled elite, CEM the refined mean
    assert torch.allclose(plan, TARGET.expand(2, 3), atol=tolerance)


@pytest.mark.parametrize("index", [0, 1], ids=["cem", "mppi"])
def test_minimum_outside_the_box_lands_on_its_boundary(index):
    bounds = ActionBounds((0.5, 0.5, 0.5))
    plan = planners(bounds)[index].plan(quadratic(torch.tensor([2.0, -2.0, 0.2])))
    tolerance = 0.02 if index == 0 else 0.15  # see above
    assert (plan.abs() <= 0.5 + 1e-6).all()
    assert torch.allclose(plan[:, :2], torch.tensor([0.5, -0.5]).expand(2, 2), atol=tolerance)
    assert torch.allclose(plan[:, 2], torch.tensor(0.2), atol=tolerance)


def test_cem_within_an_l1_ball_finds_the_projection_of_the_minimum():
    bounds = ActionBounds((1.0, 1.0, 1.0), l1_radius=0.5)
    plan = planners(bounds, horizon=1)[0].plan(quadratic(TARGET))
    assert plan.abs().sum() <= 0.5 + 1e-5
    # the nearest point of the ball to the unconstrained minimum
    expected = project_l1_ball(TARGET, 0.5)
    assert torch.allclose(plan[0], expected, atol=0.03)


def test_mppi_weights_favour_low_energies_whatever_their_units():
    # world-model L1 energies: elites within 0.23-0.25; the best must clearly outweigh the worst
    energies = torch.linspace(0.23, 0.25, 32)
    weights = elite_weights(energies, temperature=1.0)
    assert weights.sum() == pytest.approx(1.0)
    assert (weights.diff() < 0).all() and weights[0] / weights[-1] > 20
    assert 1.0 / weights.pow(2).sum() < 20  # effective sample size: well below the 32 elites
    for scale in (1e-3, 1e3):
        assert torch.allclose(elite_weights(energies * scale, 1.0), weights, rtol=1e-4)
    assert torch.equal(elite_weights(torch.full((4,), 0.3), 1.0), torch.full((4,), 0.25))  # ties: uniform


def test_mppi_plans_the_same_whatever_the_energy_units():
    def plan(scale: float) -> torch.Tensor:
        planner = MPPI(MPPIConfig(samples=64, iterations=4, elites=8, horizon=2), ActionBounds((1.0, 1.0, 1.0)), seed=5)
        return planner.plan(lambda actions: scale * quadratic(TARGET)(actions))

    reference = plan(1.0)
    for scale in (1e-3, 1e3):
        assert torch.allclose(plan(scale), reference, atol=1e-5)


def test_l1_projection_exact_values():
    assert torch.allclose(project_l1_ball(torch.tensor([3.0, 1.0]), 2.0), torch.tensor([2.0, 0.0]))
    assert torch.allclose(project_l1_ball(torch.tensor([1.0, -1.0]), 1.0), torch.tensor([0.5, -0.5]))
    inside = torch.tensor([0.1, -0.2, 0.3])
    assert torch.equal(project_l1_ball(inside, 1.0), inside)
    batch = torch.randn(500, 4)
    assert (project_l1_ball(batch, 0.3).abs().sum(-1) <= 0.3 + 1e-6).all()


def test_world_model_bounds_hold_rotation_and_optionally_the_gripper():
    calls = []

    def energy(actions):
        calls.append(actions.clone())
        return actions[..., 0].sum(-1)

    for gripper in (True, False):
        bounds = ActionBounds.world_model(hold_rotation=True, gripper=gripper)
        plan = CEM(CEMConfig(samples=32, iterations=2, top_k=4), bounds, seed=0).plan(energy)
        seen = torch.cat(calls)
        assert (seen[..., 3:6] == 0).all() and (plan[..., 3:6] == 0).all()
        assert (seen[..., :3].abs() <= 0.05 + 1e-7).all()
        assert (seen[..., 6] != 0).any() == gripper
        calls.clear()


def test_every_iteration_evaluates_all_candidates_in_one_call():
    shapes = []

    def energy(actions):
        shapes.append(tuple(actions.shape))
        return actions.pow(2).sum(dim=(-1, -2))

    CEM(CEMConfig(samples=40, iterations=3, top_k=5, horizon=4), ActionBounds((1.0, 1.0)), seed=0).plan(energy)
    MPPI(MPPIConfig(samples=40, iterations=3, elites=5, horizon=4), ActionBounds((1.0, 1.0)), seed=0).plan(energy)
    assert shapes == [(40, 4, 2)] * 6


def test_warm_start_shifts_the_previous_plan_and_reset_forgets_it():
    planner = CEM(CEMConfig(samples=64, iterations=5, top_k=8, horizon=3), ActionBounds((1.0,)), seed=0)
    target = torch.tensor([[0.2], [0.5], [-0.4]])
    plan = planner.plan(lambda a: (a - target).pow(2).sum(dim=(-1, -2)))
    start = planner.initial_mean()
    assert torch.equal(start[:2], plan[1:]) and torch.equal(start[2], torch.zeros(1))
    planner.reset()
    assert torch.equal(planner.initial_mean(), torch.zeros(3, 1))
    cold = CEM(CEMConfig(horizon=3, warm_start=False), ActionBounds((1.0,)), seed=0)
    cold.plan(lambda a: a.sum(dim=(-1, -2)))
    assert torch.equal(cold.initial_mean(), torch.zeros(3, 1))


@pytest.mark.parametrize("index", [0, 1], ids=["cem", "mppi"])
def test_same_seed_same_plan(index):
    a = planners(ActionBounds((1.0, 1.0, 1.0)), seed=3)[index].plan(quadratic(TARGET))
    b = planners(ActionBounds((1.0, 1.0, 1.0)), seed=3)[index].plan(quadratic(TARGET))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CEMConfig(samples=0), "samples"),
        (lambda: CEMConfig(samples=8, top_k=9), "top_k"),
        (lambda: CEMConfig(top_k=0), "top_k"),
        (lambda: CEMConfig(iterations=0), "iterations"),
        (lambda: CEMConfig(horizon=0), "horizon"),
        (lambda: CEMConfig(momentum=1.0), "momentum"),
        (lambda: CEMConfig(init_std=0.0), "init_std"),
        (lambda: MPPIConfig(samples=16, elites=17), "elites"),
        (lambda: MPPIConfig(temperature=0.0), "temperature"),
        (lambda: MPPIConfig(min_std=0.5, max_std=0.1), "min_std"),
        (lambda: ActionBounds(()), "scale"),
        (lambda: ActionBounds((0.0, 0.0)), "scale"),
        (lambda: ActionBounds((-1.0, 1.0)), "scale"),
        (lambda: ActionBounds((1.0, 1.0), l1_radius=0.0), "l1_radius"),
        (lambda: ActionBounds((1.0, 1.0), l1_radius=1.0, l1_dims=(0, 5)), "l1_dims"),
    ],
)
def test_impossible_configs_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_energy_of_the_wrong_shape_is_reported():
    planner = CEM(CEMConfig(samples=8, top_k=2), ActionBounds((1.0,)), seed=0)
    with pytest.raises(ValueError, match=r"\[K\]"):
        planner.plan(lambda a: a.sum(-1))


# The plans of a seeded CPU planner, recorded before planners sampled on the model's device:
# on the CPU they must stay the same bit for bit.
PINNED = {
    "cem": [0.4831586480140686, -0.7898668050765991, 0.8344736695289612,
            0.16638419032096863, -0.5075414180755615, 0.6413676738739014],
    "mppi": [0.4938293993473053, -0.8977572917938232, 0.9157874584197998,
             0.5162900686264038, -1.0, 0.571821928024292],
}


@pytest.mark.parametrize("name", ["cem", "mppi"])
@pytest.mark.parametrize("through_registry", [False, True], ids=["class", "registry"])
def test_seeded_cpu_plans_are_those_recorded(name, through_registry):
    bounds = ActionBounds((1.0, 1.0, 1.0))
    config = (
        CEMConfig(samples=32, iterations=3, top_k=4, horizon=2) if name == "cem"
        else MPPIConfig(samples=32, iterations=3, elites=4, horizon=2)
    )
    planner = (
        PlannerOptions(name, config, bounds).make(seed=7) if through_registry
        else (CEM if name == "cem" else MPPI)(config, bounds, seed=7)
    )
    for _ in range(3):  # the warm start too
        plan = planner.plan(quadratic(TARGET))
    assert torch.equal(plan, torch.tensor(PINNED[name]).view(2, 3))


def test_the_registry_holds_cem_icem_and_mppi_with_their_configs_and_elite_counts():
    assert {name: (kind.planner, kind.config, kind.elites) for name, kind in PLANNERS.items()} == {
        "cem": (CEM, CEMConfig, "top_k"),
        "icem": (ICEM, ICEMConfig, "elites"),
        "mppi": (MPPI, MPPIConfig, "elites"),
    }
    assert PlannerOptions().config == ICEMConfig() and PlannerOptions("mppi").config == MPPIConfig()
    assert list(PLANNERS["mppi"].fields())[:4] == ["samples", "iterations", "elites", "horizon"]
    assert PLANNERS["cem"].fields()["warm_start"] is bool


def test_planner_options_name_the_registered_planners_and_the_config_expected():
    with pytest.raises(ValueError, match="unknown planner 'pi2'; registered planners: cem, icem, mppi"):
        PlannerOptions("pi2")
    with pytest.raises(TypeError, match=r"the mppi planner is configured by MPPIConfig, not CEMConfig"):
        PlannerOptions("mppi", CEMConfig())


@dataclass(frozen=True)
class ShootingConfig:
    samples: int = 16
    iterations: int = 1
    best: int = 1
    horizon: int = 1
    warm_start: bool = False


def test_a_planner_registered_in_one_place_is_built_by_name(monkeypatch):
    monkeypatch.setattr(planners_module, "PLANNERS", dict(PLANNERS))  # registered for this test only

    @register_planner("shoot", ShootingConfig, elites="best")
    class Shooting(Planner):
        """Random shooting: the lowest-energy of ``samples`` sequences drawn in the box."""

        def plan(self, energy):
            candidates = self.sample(self.initial_mean(), self.bounds.scale_tensor(self.initial_mean()))
            return candidates[energy(candidates).argmin()]

    planner = PlannerOptions("shoot", ShootingConfig(samples=64), ActionBounds((1.0, 1.0, 1.0))).make(seed=0)
    assert isinstance(planner, Shooting) and planner.plan(quadratic(TARGET)).shape == (1, 3)
    assert "shoot" not in PLANNERS  # the module's registry, restored by monkeypatch, never saw it

    with pytest.raises(ValueError, match="'shoot' is registered already"):
        register_planner("shoot", ShootingConfig, elites="best")(Shooting)
    with pytest.raises(TypeError, match=r"lacks the fields \['top_k'\]"):
        register_planner("other", ShootingConfig, elites="top_k")(Shooting)
    with pytest.raises(TypeError, match="not a subclass of Planner"):
        register_planner("other", ShootingConfig, elites="best")(object)


@pytest.mark.parametrize("index", [0, 1], ids=["cem", "mppi"])
def test_candidates_and_plans_stay_on_the_planners_device(index):
    planner = planners(ActionBounds((1.0, 1.0, 1.0)))[index]
    seen = []

    def energy(actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.device)
        return quadratic(TARGET)(actions)

    plan = planner.plan(energy)
    assert planner.device == torch.device("cpu") and planner.generator.device == planner.device
    assert set(seen) == {planner.device} and plan.device == planner.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("index", [0, 1], ids=["cem", "mppi"])
def test_a_cuda_planner_samples_there_and_finds_the_same_minimum(index):
    bounds = ActionBounds((1.0, 1.0, 1.0))
    config = planners(bounds)[index].config
    planner = (CEM if index == 0 else MPPI)(config, bounds, seed=0, device="cuda")
    target = TARGET.cuda()
    seen = []

    def energy(actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.device)
        return quadratic(target)(actions)

    plan = planner.plan(energy)
    assert planner.generator.device.type == "cuda" and {d.type for d in seen} == {"cuda"}
    assert torch.allclose(plan.cpu(), TARGET.expand(2, 3), atol=0.01 if index == 0 else 0.1)
