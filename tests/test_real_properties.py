"""Property tests: random and adversarial action sequences never produce a command outside the limits.

Per step: every axis within ``max_ee_step`` and every Euler angle of the rotation within
``max_rot_step`` (boxes, as the sim scales actions), the speed norms within ``max_ee_speed`` /
``max_rot_speed`` (see ``real_helpers.assert_within_limits``). The mock arm's speed limits are
raised so that the boxes bind on diagonal steps; the sim arm has the Panda's bundled limits,
where the speed norms bind first.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_helpers import LinearIK, assert_within_limits, make_spec

from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.real.safety import SafetyLayer

ADVERSARIAL = st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 1.0, -1.0, 0.0, 1.0 + 1e-9, 5.0])
VALUE = st.one_of(st.floats(-2.0, 2.0), ADVERSARIAL)
ACTION = st.one_of(
    st.lists(VALUE, min_size=7, max_size=7),
    st.lists(VALUE, min_size=4, max_size=4),
    st.lists(st.floats(-1.0, 1.0), min_size=0, max_size=9),  # wrong lengths included
)
SEQUENCE = st.lists(ACTION, min_size=1, max_size=6)
RANDOM_PER_EXAMPLE = 3  # seeded random sequences run after each hypothesis-drawn one
MOCK_EXAMPLES, SIM_EXAMPLES = 2_500, 2_500  # x (1 + RANDOM_PER_EXAMPLE): 10,000 sequences each


def random_sequences(seed: int) -> list[np.ndarray]:
    """Random sequences of 1-8 actions, mostly beyond [-1, 1], with sprinkled non-finite values."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(RANDOM_PER_EXAMPLE):
        actions = rng.uniform(-3.0, 3.0, (int(rng.integers(1, 9)), 7))
        actions[rng.random(actions.shape) < 0.02] = np.nan
        sequences.append(actions)
    return sequences


def drive(layer, robot, sequences, advance: bool) -> None:
    """Reset, send every action of every sequence, check every command against the previous one."""
    for sequence in sequences:
        layer.reset()
        previous = layer.last_command
        for action in sequence:
            record = layer.step(np.array(action, dtype=np.float64), robot.get_observation())
            assert_within_limits(layer.spec, previous, record.sent)
            if advance:
                robot.advance(layer.spec.dt)
            previous = record.sent


def _layer(robot, kinematics):
    robot.connect()
    layer = SafetyLayer(robot, kinematics)
    layer.watchdog.close()  # the properties concern commands; the watchdog has its own test
    return layer


@pytest.fixture(scope="module")
def mock_layer():
    spec = make_spec(max_ee_speed=1.0, max_rot_speed=3.0, max_ee_acc=10.0, qd_max=(3.0,) * 7)  # the boxes bind
    robot = MockRobot(spec, tracking=0.7)
    return _layer(robot, LinearIK()), robot


@settings(max_examples=MOCK_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=SEQUENCE, seed=st.integers(0, 2**32 - 1),
       start=st.tuples(st.floats(-0.1, 0.1), st.floats(-0.1, 0.1), st.floats(-0.1, 0.1)))
def test_no_command_leaves_the_limits_mock(mock_layer, sequence, seed, start):
    layer, robot = mock_layer
    robot.home_pos = np.array([0.5, 0.0, 0.3]) + start
    drive(layer, robot, [sequence, *random_sequences(seed)], advance=False)


@pytest.fixture(scope="module")
def sim_layer():
    from armworld.envs.real.drivers.sim import MujocoRobot
    from armworld.envs.panda import PANDA
    from armworld.envs.real.kinematics import RobotIK

    robot = MujocoRobot(realtime=False)
    layer = _layer(robot, RobotIK(PANDA))
    yield layer, robot
    robot.disconnect()


@settings(max_examples=SIM_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(st.lists(VALUE, min_size=7, max_size=7), min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_no_command_leaves_the_limits_sim(sim_layer, sequence, seed):
    """The same property into the sim driver, with the Panda's real IK and joint limits."""
    layer, robot = sim_layer
    drive(layer, robot, [sequence, *random_sequences(seed)], advance=True)
    state = robot.get_observation()
    assert np.all(state.ee_pos >= np.array(layer.spec.workspace_min) - 0.01)
    assert np.all(state.ee_pos <= np.array(layer.spec.workspace_max) + 0.01)
