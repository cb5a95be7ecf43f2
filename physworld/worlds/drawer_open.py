"""drawer_open: Meta-World's drawer-open-v3 (a Sawyer arm in MuJoCo) behind physworld's gymnasium wrapper.

Why a wrapper and not `gym.make("Meta-World/...")`, as measured with metaworld 3.1.1:

- the goal-observable env caches its observation space while it is still partially observable, so the
  goal bounds are 0..0; `step` then clips the goal to 0 while `reset` does not (metaworld issue #599).
  Here the cache is rebuilt once the goal is visible, and the space is checked by gymnasium's env checker.
- `reset(seed=123)` twice gave two drawer positions: the drawer is drawn from numpy's global RNG, twice
  per reset. Here it is drawn once per reset from the env's own `np_random` (gymnasium's seeding rules),
  and handed to Meta-World frozen, so the same seed replays bit for bit.
- the observation `reset` returns is computed before `mj_forward`, so its handle position is the previous
  episode's; here it is recomputed after a forward pass.

Observations: `state` (Meta-World's 39 floats: hand xyz, gripper opening, handle xyz + quaternion, the
same for the previous step, goal xyz), `pixels` (uint8 H x W x 3 from `mujoco.Renderer`, shadows and
reflections off) or `state_pixels` (a Dict of both). `segmentation()` renders per-pixel classes
(SEGMENT_CLASSES) for the segmenter.

Rewards are kept as components, each in `info["reward_components"]`, and summed with weights from the
config (`RewardWeights`):

- task: Meta-World's shaped reward / 10 (gripper near the handle, handle near the opened position), in
  [0, 1]; `info["success"]` when the handle is within 3 cm of the open position.
- efficiency: the guide's "economic" value, completions per unit of time and effort: -1/max_steps for
  every step before the first success (time), and on the success step `+1 / (1 + effort_cost * effort)`
  where effort is the summed squared action so far. An episode's sum is the success bonus minus the
  time used; `info["economic_value"]` at the end is completions / (seconds + effort_cost * effort).
- energy: -mean(action**2) per step (the actuation the controller asked for).

Rendering needs an OpenGL backend: MUJOCO_GL=egl works here (osmesa is not installed); set before
mujoco is imported, so this module defaults it to egl.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

ENV_EXTRA_HINT = (
    'the drawer_open task needs the robot extra: pip install -e ".[robot]" (mujoco, metaworld, gymnasium)'
)

STATE_DIM = 39
ACTION_DIM = 4
SEGMENT_CLASSES = ("background", "robot", "drawer")  # drawer: the cabinet and its sliding drawer
SKILLS = ("reach", "grasp", "pull")
CONTROL_DT = 0.0125 * 5  # Meta-World: timestep 0.0125 s x frame_skip 5 per env step


def require_robot_packages() -> None:
    """Raise ModuleNotFoundError with one line naming the extra when a robot package is missing."""
    for name in ("mujoco", "metaworld", "gymnasium"):
        try:
            __import__(name)
        except ImportError as e:
            raise ModuleNotFoundError(f"{name} is not installed; {ENV_EXTRA_HINT}") from e


@dataclass
class RewardWeights:
    task: float = 1.0
    efficiency: float = 0.5
    energy: float = 0.05


@dataclass
class EnvConfig:
    obs_mode: Literal["state", "pixels", "state_pixels"] = "state"
    image_size: int = 64
    camera: str = "topview"
    max_steps: int = 200
    terminate_on_success: bool = True
    effort_cost: float = 0.01
    rewards: RewardWeights = field(default_factory=RewardWeights)


def skill_of(state: np.ndarray) -> np.ndarray:
    """The skill signal from states [..., 39]: 0 reach (hand not above the handle), 1 grasp (above it, not
    yet at its height), 2 pull. The same phases the scripted expert switches between."""
    hand = state[..., 0:3]
    handle = state[..., 4:7] + np.array([0.0, 0.0, -0.02])
    far_xy = np.linalg.norm(hand[..., :2] - handle[..., :2], axis=-1) > 0.06
    high = np.abs(hand[..., 2] - handle[..., 2]) > 0.04
    return np.where(far_xy, 0, np.where(high, 1, 2)).astype(np.int64)


def _segment_lookup(model) -> np.ndarray:
    """geom id -> segment class, by the body tree: the arm, the drawer (cabinet and sliding part), else
    background. The sliding part alone covers ~20 pixels of a 64 x 64 top view, so it shares a class."""
    import mujoco

    def ancestors(body_id):
        names = []
        while body_id > 0:
            names.append(model.body(body_id).name)
            body_id = model.body_parentid[body_id]
        return names

    lookup = np.zeros(model.ngeom, dtype=np.uint8)
    for g in range(model.ngeom):
        names = ancestors(model.geom_bodyid[g])
        if "drawer" in names:  # the drawer body holds drawercase_link and drawer_link
            lookup[g] = 2
        elif any(
            n.startswith("right_") or n in ("hand", "rightclaw", "leftclaw", "rightpad", "leftpad")
            for n in names
        ):
            lookup[g] = 1
    del mujoco
    return lookup


def _make_gym_env_class():
    import gymnasium as gym
    import mujoco
    from gymnasium import spaces
    from metaworld.envs.sawyer_drawer_open_v3 import SawyerDrawerOpenEnvV3

    class DrawerOpenEnv(gym.Env):
        metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / CONTROL_DT))}

        def __init__(self, config: EnvConfig | None = None, render_mode: str | None = None):
            self.config = config or EnvConfig()
            self.render_mode = render_mode
            inner = SawyerDrawerOpenEnvV3()
            inner._partially_observable = False
            inner.__dict__.pop("sawyer_observation_space", None)  # rebuilt with the real goal bounds
            inner._set_task_called = True
            inner._freeze_rand_vec = True
            inner.max_path_length = self.config.max_steps + 1  # we truncate; Meta-World must not raise
            self.inner = inner
            self.model, self.data = inner.model, inner.data
            self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
            # Meta-World leaves the object slots unbounded (-inf..inf); they hold the handle position (inside
            # the hand's reach), its quaternion (unit) and zero padding, so the bounds can be finite.
            mw_space = inner.sawyer_observation_space
            low, high = mw_space.low.copy(), mw_space.high.copy()
            for start in (4, 22):
                low[start : start + 3], high[start : start + 3] = low[0:3], high[0:3]
                low[start + 3 : start + 7], high[start + 3 : start + 7] = -1.0, 1.0
                low[start + 7 : start + 14], high[start + 7 : start + 14] = -1.0, 1.0  # zero padding
            state_space = spaces.Box(low, high, dtype=np.float64)
            size = self.config.image_size
            pixel_space = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
            self.observation_space = {
                "state": state_space,
                "pixels": pixel_space,
                "state_pixels": spaces.Dict({"state": state_space, "pixels": pixel_space}),
            }[self.config.obs_mode]
            self._state_space = state_space
            self._renderer = None
            self._seg_renderer = None
            self._segment_lookup = _segment_lookup(self.model)
            self._steps = 0
            self._effort = 0.0
            self._succeeded = False
            self._state = None

        # -------------------------------------------------------- rendering

        def _make_renderer(self):
            size = self.config.image_size
            try:
                r = mujoco.Renderer(self.model, size, size)
            except Exception as e:  # mujoco.FatalError has no stable import path across versions
                raise RuntimeError(
                    f"drawer_open cannot render ({e}); set MUJOCO_GL=egl (or osmesa) before mujoco is first imported"
                ) from None
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            return r

        def render_rgb(self) -> np.ndarray:
            if self._renderer is None:
                self._renderer = self._make_renderer()
            self._renderer.update_scene(self.data, camera=self.config.camera)
            return self._renderer.render().copy()

        def segmentation(self) -> np.ndarray:
            """uint8 [H, W] segment classes (SEGMENT_CLASSES) of the current frame, same camera as pixels."""
            if self._seg_renderer is None:
                self._seg_renderer = self._make_renderer()
                self._seg_renderer.enable_segmentation_rendering()
            self._seg_renderer.update_scene(self.data, camera=self.config.camera)
            ids = self._seg_renderer.render()  # [H, W, 2]: object id, object type
            is_geom = (ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids[..., 0] >= 0)
            out = np.zeros(ids.shape[:2], dtype=np.uint8)
            out[is_geom] = self._segment_lookup[ids[..., 0][is_geom]]
            return out

        def render(self):
            return self.render_rgb()

        def close(self):
            for r in (self._renderer, self._seg_renderer):
                if r is not None:
                    r.close()
            self._renderer = self._seg_renderer = None

        # -------------------------------------------------------- gym API

        def _observe(self):
            state = self._state.copy()
            if self.config.obs_mode == "state":
                return state
            if self.config.obs_mode == "pixels":
                return self.render_rgb()
            return {"state": state, "pixels": self.render_rgb()}

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            low, high = self.inner._random_reset_space.low, self.inner._random_reset_space.high
            self.inner._last_rand_vec = self.np_random.uniform(low, high).astype(np.float64)
            self.inner.reset()
            mujoco.mj_forward(self.model, self.data)
            current = self.inner._get_curr_obs_combined_no_goal()
            self.inner._prev_obs = current
            self._state = np.hstack([current, current, self.inner._get_pos_goal()]).astype(np.float64)
            self._state = np.clip(self._state, self._state_space.low, self._state_space.high)
            self._steps, self._effort, self._succeeded = 0, 0.0, False
            return self._observe(), {
                "skill": int(skill_of(self._state)),
                "drawer_x": float(self.inner.obj_init_pos[0]),
            }

        def step(self, action):
            if self._state is None:
                raise RuntimeError("call reset() before step()")
            action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
            state, mw_reward, _, _, mw_info = self.inner.step(action)
            self._state = np.asarray(state, dtype=np.float64)
            self._steps += 1
            cfg = self.config
            effort = float(np.sum(np.square(action)))
            self._effort += effort
            success = bool(mw_info["success"])
            first_success = success and not self._succeeded
            self._succeeded = self._succeeded or success
            if first_success:
                efficiency = 1.0 / (1.0 + cfg.effort_cost * self._effort)
            elif self._succeeded:
                efficiency = 0.0
            else:
                efficiency = -1.0 / cfg.max_steps
            components = {
                "task": float(mw_reward) / 10.0,
                "efficiency": efficiency,
                "energy": -effort / ACTION_DIM,
            }
            w = cfg.rewards
            reward = (
                w.task * components["task"]
                + w.efficiency * components["efficiency"]
                + w.energy * components["energy"]
            )
            terminated = bool(cfg.terminate_on_success and success)
            truncated = self._steps >= cfg.max_steps and not terminated
            info = {
                "reward_components": components,
                "success": success,
                "handle_to_goal": float(mw_info["obj_to_target"]),
                "skill": int(skill_of(self._state)),
            }
            if terminated or truncated:
                seconds = self._steps * CONTROL_DT
                info["economic_value"] = float(self._succeeded) / (seconds + cfg.effort_cost * self._effort)
                info["episode_steps"] = self._steps
            return self._observe(), float(reward), terminated, truncated, info

    return DrawerOpenEnv


_ENV_CLASS = None


def make_env(config: EnvConfig | None = None, render_mode: str | None = None):
    """The drawer_open gymnasium env (one MuJoCo model per env; close() frees its renderers)."""
    global _ENV_CLASS
    require_robot_packages()
    if _ENV_CLASS is None:
        _ENV_CLASS = _make_gym_env_class()
    return _ENV_CLASS(config, render_mode=render_mode)


def expert_policy():
    """Meta-World's scripted expert for drawer-open-v3: a function state [39] -> action [4]."""
    require_robot_packages()
    from metaworld.policies import SawyerDrawerOpenV3Policy

    policy = SawyerDrawerOpenV3Policy()
    # its pull phase uses a gain of 50 on purpose (the env clips actions to [-1, 1]); it warns every step
    warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", module="metaworld")

    def act(state: np.ndarray) -> np.ndarray:
        return np.clip(policy.get_action(state), -1.0, 1.0).astype(np.float32)

    return act


def drawer_opening(state: np.ndarray) -> np.ndarray:
    """How far the drawer is pulled out (m) from states [..., 39]: the goal (state[37]) lies 0.2 m in front of
    the closed handle, so the opening is goal_y + 0.2 - handle_y."""
    return state[..., 37] + 0.2 - state[..., 5]


def describe() -> dict[str, Any]:
    return {
        "state_dim": STATE_DIM,
        "action_dim": ACTION_DIM,
        "segment_classes": list(SEGMENT_CLASSES),
        "skills": list(SKILLS),
    }
