"""drawer_open: gymnasium's env checker, bit-for-bit seeded replay, the fixed Meta-World problems,
reward components, segmentation, and the drawer's physics (it slides along one axis only)."""

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported (importorskip imports it)
pytest.importorskip("metaworld")
pytest.importorskip("mujoco")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from physworld.worlds.drawer_open import (  # noqa: E402
    SEGMENT_CLASSES,
    EnvConfig,
    RewardWeights,
    drawer_opening,
    expert_policy,
    make_env,
    skill_of,
)


@pytest.fixture(scope="module")
def env():
    e = make_env(EnvConfig(image_size=32, max_steps=120))
    yield e
    e.close()


def _episode(env, seed, steps=40, render=False):
    act = expert_policy()
    state, _ = env.reset(seed=seed)
    states, frames = [state], []
    for _ in range(steps):
        state, *_ = env.step(act(state))
        states.append(state)
        if render:
            frames.append(env.render_rgb())
    return np.stack(states), frames


@pytest.mark.parametrize("obs_mode", ["state", "state_pixels"])
def test_env_checker_passes(obs_mode):
    e = make_env(EnvConfig(obs_mode=obs_mode, image_size=32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notes (no spec for alternative render modes) are not failures
        check_env(e, skip_render_check=True)
    e.close()


def test_same_seed_replays_bit_for_bit(env):
    a, fa = _episode(env, 123, render=True)
    _episode(env, 7)  # something else in between
    b, fb = _episode(env, 123, render=True)
    assert np.array_equal(a, b)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_seeds_move_the_drawer_and_reset_obs_is_current(env):
    xs = set()
    for seed in range(4):
        state, info = env.reset(seed=seed)
        xs.add(round(float(state[4]), 6))
        # Meta-World's own reset returned the previous episode's handle; here it is this episode's drawer
        assert state[4] == pytest.approx(info["drawer_x"], abs=1e-6)
        assert state[36] == pytest.approx(info["drawer_x"], abs=1e-6)  # the goal sits in front of it
    assert len(xs) == 4


def test_goal_is_inside_the_observation_space(env):
    states, _ = _episode(env, 3, steps=30)
    space = env.observation_space
    assert space.high[36:39].max() > 0  # Meta-World's cached space had 0..0 here (its issue #599)
    for s in states:
        assert space.contains(s)
    assert np.all(states[:, 36:39] != 0)  # never clipped to zero


def test_expert_opens_the_drawer_and_it_slides_along_y_only(env):
    act = expert_policy()
    state, _ = env.reset(seed=11)
    handles = [state[4:7]]
    for _ in range(120):
        state, reward, terminated, truncated, info = env.step(act(state))
        handles.append(state[4:7])
        if terminated or truncated:
            break
    assert terminated and info["success"]
    handles = np.stack(handles)
    assert np.ptp(handles[:, 0]) < 2e-3 and np.ptp(handles[:, 2]) < 2e-3  # a prismatic joint along y
    assert drawer_opening(state) > 0.15  # success: within 3 cm of 0.2 m open
    assert info["economic_value"] > 0


def test_reward_is_the_weighted_sum_of_components():
    weights = RewardWeights(task=2.0, efficiency=3.0, energy=0.5)
    e = make_env(EnvConfig(rewards=weights, max_steps=30))
    state, _ = e.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        state, reward, terminated, truncated, info = e.step(action)
        c = info["reward_components"]
        assert reward == pytest.approx(2.0 * c["task"] + 3.0 * c["efficiency"] + 0.5 * c["energy"])
        assert c["energy"] == pytest.approx(-np.mean(action**2), rel=1e-5)
        assert 0.0 <= c["task"] <= 1.0
    assert truncated and not terminated and info["economic_value"] == 0.0
    e.close()


def test_segmentation_labels_robot_and_drawer(env):
    env.reset(seed=0)
    seg = env.segmentation()
    assert seg.shape == (32, 32) and seg.max() < len(SEGMENT_CLASSES)
    counts = np.bincount(seg.ravel(), minlength=len(SEGMENT_CLASSES))
    assert (counts > 0).all()


def test_skill_signal_follows_the_expert_phases(env):
    states, _ = _episode(env, 5, steps=80)
    skills = skill_of(states)
    assert skills[0] == 0 and skills[-1] == 2
    assert np.all(np.diff(skills) >= 0)  # reach -> grasp -> pull, never back for the expert
