"""Domain randomisation: drawn masses reach MuJoCo's derived constants, nothing leaks between draws."""

import gymnasium
import numpy as np

import armworld  # noqa: F401  (registers the envs)
from armworld.agents import make_expert
from armworld.envs.randomization import RandomizationConfig

HEAVY = RandomizationConfig(object_mass_scale=(2.0, 2.0))


def model_arrays(model) -> dict[str, np.ndarray]:
    """Every array field of an ``MjModel`` (copies) and its statistics."""
    arrays = {}
    for name in dir(model):
        value = getattr(model, name, None)
        if not name.startswith("_") and isinstance(value, np.ndarray):
            arrays[name] = value.copy()
    for name in ("meaninertia", "meanmass", "meansize", "extent", "center"):
        arrays[f"stat.{name}"] = np.array(getattr(model.stat, name))
    return arrays


def test_drawn_mass_reaches_the_derived_constants():
    env = gymnasium.make("armworld/FrankaPickPlace-v0", randomization=HEAVY)
    model = env.unwrapped.model
    cube = model.body("cube").id
    nominal_mass = model.body_mass[cube]
    env.reset(seed=0)
    assert model.body_mass[cube] == 2.0 * nominal_mass
    assert model.body_subtreemass[cube] == model.body_mass[cube]  # the cube has no child bodies
    dof = model.jnt_dofadr[model.joint("cube_joint").id]
    # a free body's translational inverse weight is 1 / mass
    np.testing.assert_allclose(model.dof_invweight0[dof : dof + 3], 1.0 / model.body_mass[cube], rtol=1e-9)


def test_expert_keeps_a_heavy_cube_in_hand():
    # with the constants of the nominal cube, the grasp contacts shot a 2x heavier cube out
    # of the gripper (up to ~1000 m/s) in 2 of these 10 episodes
    env = gymnasium.make("armworld/FrankaPickPlace-v0", randomization=HEAVY)
    expert = make_expert(env)
    for seed in range(40_000, 40_010):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        truncated, top_speed = False, 0.0
        while not truncated:
            obs, _, _, truncated, info = env.step(expert.act(obs))
            top_speed = max(top_speed, np.linalg.norm(obs["observation"][20:23]))  # cube linear velocity (m/s)
        assert top_speed < 2.0 and info["is_success"] and not info.get("sim_unstable"), (seed, top_speed, info)


def test_a_nominal_draw_restores_the_compiled_model_exactly():
    env = gymnasium.make("armworld/FrankaStack-v0", randomization="default")
    compiled = model_arrays(env.unwrapped.model)
    env.reset(seed=0)  # masses, sizes, gains, camera and lights drawn away from nominal
    drawn = model_arrays(env.unwrapped.model)
    assert not np.array_equal(drawn["body_subtreemass"], compiled["body_subtreemass"])
    env.unwrapped._randomizer.config = RandomizationConfig()  # every range at its nominal value
    env.reset(seed=0)
    restored = model_arrays(env.unwrapped.model)
    restored["site_pos"] = compiled["site_pos"]  # the goal marker moves with every reset
    for name, value in compiled.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_a_draw_does_not_depend_on_the_episodes_before():
    used = gymnasium.make("armworld/FrankaStack-v0", randomization="default")
    for seed in (5, 6, 7):
        used.reset(seed=seed)
    fresh = gymnasium.make("armworld/FrankaStack-v0", randomization="default")
    fresh.reset(seed=7)
    expected = model_arrays(fresh.unwrapped.model)
    for name, value in model_arrays(used.unwrapped.model).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
