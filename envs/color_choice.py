"""N-Color-Choice (paper section 5) as a gymnax environment.

A grid of free cells; walls are AROUND it: every cell outside it counts as
wall, none inside. The paper's H_M x W_M = 7 x 7 is read as including those
border walls (``LAYOUTS``, docs/design.md): 5 x 5 free cells by default. N goals (3 in the
paper) sit on distinct cells, each with its own colour channel. Hidden
rewards: exactly one goal gives +1, the others -1; which one is not
observable. ``reset_env`` draws the goal cells, the positive goal, the agent's
start cell (distinct from every goal) and its orientation from its key, so a
meta-episode that reuses one reset key keeps one task and one start.

Coordinates are (row, col), row 0 at the top. Orientation 0 = north (row - 1),
1 = east (col + 1), 2 = south (row + 1), 3 = west (col - 1).
Actions (Discrete(3)): 0 = forward one cell (into the outside wall: no move),
1 = turn left (o -> o - 1 mod 4), 2 = turn right (o -> o + 1 mod 4). Entering
a goal cell gives that goal's reward and terminates the sub-episode; every
other step gives 0. Horizon H = 15 decisions (``max_steps_in_episode``).

Egocentric observation: float32 [C, D, 3] with C = N + 1 and D = 15. Entry
[c, i, j] describes the cell ``agent + (i + 1) * forward + (j - 1) * right``:
row i is i + 1 steps ahead along the facing direction, column 0 / 1 / 2 is
one cell to the agent's left / on the ray / one cell to its right. Channel
c < N is 1 where goal c is, channel N is 1 for wall (outside-the-grid) cells.
The agent's own cell and the cells beside and behind it are not observed.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from cmrl_jax.envspec import EnvSpec

from . import color_choice_draw  # matplotlib only when drawing
from .recipes import NAVIGATION_RECIPE

# (d_row, d_col) of orientations north, east, south, west.
DIRECTIONS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)
FORWARD, TURN_LEFT, TURN_RIGHT = 0, 1, 2


@struct.dataclass
class EnvState(environment.EnvState):
    """State of one Color-Choice sub-episode; the task is ``goal_pos`` and ``positive``."""

    agent_pos: jax.Array  # int32 [2]     (row, col)
    agent_dir: jax.Array  # int32 scalar  0 = N, 1 = E, 2 = S, 3 = W
    goal_pos: jax.Array  # int32 [N, 2]  distinct cells, never the start cell
    positive: jax.Array  # int32 scalar  index of the +1 goal (hidden)
    time: jax.Array  # int32 scalar  decisions taken in this sub-episode


@struct.dataclass
class EnvParams(environment.EnvParams):
    """Rewards, horizon and the FREE grid size (static: it sets the shape of the reset's cell
    draw). ``grid_params`` builds it from the paper's H_M x W_M and a layout."""

    positive_reward: float = 1.0
    negative_reward: float = -1.0
    max_steps_in_episode: int = 15
    height: int = struct.field(pytree_node=False, default=7)
    width: int = struct.field(pytree_node=False, default=7)


LAYOUTS: tuple[str, ...] = ("walled", "free")
"""How the paper's H_M x W_M is read (docs/design.md, "Color-Choice grid"):
``"walled"``: the H_M x W_M grid includes its border walls, (H_M - 2) x (W_M - 2) free cells;
``"free"``: H_M x W_M free cells with the walls around them."""


def grid_params(
    height: int = 7, width: int = 7, layout: str = "walled", horizon: int = 15
) -> EnvParams:
    """EnvParams for an H_M x W_M grid read as ``layout`` (see ``LAYOUTS``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown Color-Choice layout {layout!r}; known: {', '.join(LAYOUTS)}")
    border = 2 if layout == "walled" else 0
    if min(height, width) - border < 1:
        raise ValueError(f"a {layout} {height}x{width} grid has no free cell")
    return EnvParams(
        max_steps_in_episode=horizon, height=height - border, width=width - border
    )


def view_cells(agent_pos: jax.Array, agent_dir: jax.Array, depth: int) -> jax.Array:
    """(row, col) of the observed cells: int32 [depth, 3, 2] (see the module docstring)."""
    dirs = jnp.asarray(DIRECTIONS)
    fwd = dirs[agent_dir]
    right = dirs[(agent_dir + 1) % 4]
    ahead = jnp.arange(1, depth + 1, dtype=jnp.int32)[:, None, None] * fwd  # [D, 1, 2]
    side = jnp.arange(-1, 2, dtype=jnp.int32)[None, :, None] * right  # [1, 3, 2]
    return agent_pos + ahead + side


def _inside(pos: jax.Array, params: EnvParams) -> jax.Array:
    """Whether (row, col) positions [..., 2] lie on the grid: bool [...]."""
    return (
        (pos[..., 0] >= 0)
        & (pos[..., 0] < params.height)
        & (pos[..., 1] >= 0)
        & (pos[..., 1] < params.width)
    )


class ColorChoice(environment.Environment[EnvState, EnvParams]):
    """N coloured goals on a walled grid, one hidden +1; egocentric view, 3 actions."""

    def __init__(self, num_goals: int = 3, view_depth: int = 15):
        """Static configuration: the number of goals N (>= 1) and the view depth D."""
        if num_goals < 1:
            raise ValueError(f"num_goals must be >= 1, got {num_goals}")
        if view_depth < 1:
            raise ValueError(f"view_depth must be >= 1, got {view_depth}")
        self._num_goals = num_goals
        self.view_depth = view_depth

    @property
    def default_params(self) -> EnvParams:
        """Paper values: 7 x 7 grid with its walls (5 x 5 free cells), +1 / -1 rewards, H = 15."""
        return grid_params()

    @property
    def num_goals(self) -> int:
        """Number of distinct goals reported in ``info["goal"]``."""
        return self._num_goals

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Move forward or turn; entering a goal pays its hidden reward and terminates."""
        del key
        action = jnp.asarray(action, jnp.int32)
        target = state.agent_pos + jnp.asarray(DIRECTIONS)[state.agent_dir]
        moved = (action == FORWARD) & _inside(target, params)
        pos = jnp.where(moved, target, state.agent_pos)
        turn = jnp.where(action == TURN_LEFT, 3, jnp.where(action == TURN_RIGHT, 1, 0))
        hit = moved & jnp.all(state.goal_pos == pos, axis=-1)  # [N]
        entered = jnp.any(hit)
        goal = jnp.where(entered, jnp.argmax(hit), -1).astype(jnp.int32)
        reward = jnp.where(
            entered,
            jnp.where(goal == state.positive, params.positive_reward, params.negative_reward),
            0.0,
        ).astype(jnp.float32)
        state = state.replace(
            agent_pos=pos, agent_dir=(state.agent_dir + turn) % 4, time=state.time + 1
        )
        return self.get_obs(state, params), state, reward, entered, {"goal": goal}

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """Draw goal cells, the positive goal, the start cell and orientation from ``key``."""
        n_cells = params.height * params.width
        if n_cells < self.num_goals + 1:
            raise ValueError(
                f"a {params.height}x{params.width} grid cannot hold {self.num_goals} goals "
                "and the agent"
            )
        k_cells, k_pos, k_dir = jax.random.split(key, 3)
        cells = jax.random.choice(k_cells, n_cells, (self.num_goals + 1,), replace=False)
        rc = jnp.stack([cells // params.width, cells % params.width], axis=-1).astype(jnp.int32)
        state = EnvState(
            agent_pos=rc[-1],
            agent_dir=jax.random.randint(k_dir, (), 0, 4, dtype=jnp.int32),
            goal_pos=rc[:-1],
            positive=jax.random.randint(k_pos, (), 0, self.num_goals, dtype=jnp.int32),
            time=jnp.array(0, jnp.int32),
        )
        return self.get_obs(state, params), state

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        """Egocentric view: float32 [N + 1, D, 3], goal channels then the wall channel."""
        del key
        params = self.default_params if params is None else params
        cells = view_cells(state.agent_pos, state.agent_dir, self.view_depth)  # [D, 3, 2]
        goals = jnp.all(cells[None] == state.goal_pos[:, None, None, :], axis=-1)  # [N, D, 3]
        wall = ~_inside(cells, params)
        return jnp.concatenate([goals, wall[None]], axis=0).astype(jnp.float32)

    def constant_observation(self, params: EnvParams) -> tuple[np.ndarray, np.ndarray]:
        """Which observation features never change, and their values (static, numpy).

        A view cell that lies outside the grid for every agent cell and
        orientation (the rows farther ahead than the grid is long: 11 of the 15
        on the paper's 5 x 5 free cells) always reads wall = 1, goals = 0.
        Returns (mask bool [N + 1, D, 3], values float32 [N + 1, D, 3]); the
        engine leaves these features out of the agent input
        (``cmrl_jax.agent.inputs.constant_inputs``).
        """
        h, w = params.height, params.width
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        pos = np.stack([rows.ravel(), cols.ravel()], axis=-1)  # [h*w, 2]
        ahead = np.arange(1, self.view_depth + 1)[:, None, None]  # [D, 1, 1]
        side = np.arange(-1, 2)[None, :, None]  # [1, 3, 1]
        outside = np.ones((self.view_depth, 3), bool)
        for o in range(4):
            cells = ahead * DIRECTIONS[o] + side * DIRECTIONS[(o + 1) % 4]  # [D, 3, 2]
            cells = pos[:, None, None, :] + cells[None]  # [h*w, D, 3, 2]
            inside = ((cells[..., 0] >= 0) & (cells[..., 0] < h)
                      & (cells[..., 1] >= 0) & (cells[..., 1] < w))
            outside &= ~inside.any(axis=0)
        mask = np.broadcast_to(outside, (self.num_goals + 1,) + outside.shape).copy()
        values = np.zeros(mask.shape, np.float32)
        values[-1] = outside  # the wall channel reads 1 there, goal channels 0
        return mask, values

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The agent stands on a goal (it never starts on one)."""
        return jnp.any(jnp.all(state.goal_pos == state.agent_pos, axis=-1))

    @property
    def name(self) -> str:
        """Environment name, e.g. ``ColorChoice-3``."""
        return f"ColorChoice-{self.num_goals}"

    @property
    def num_actions(self) -> int:
        """Forward, turn left, turn right."""
        return 3

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """Discrete(3): 0 = forward, 1 = turn left, 2 = turn right."""
        return spaces.Discrete(3)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        """Binary egocentric view of shape [N + 1, D, 3]."""
        return spaces.Box(0.0, 1.0, (self.num_goals + 1, self.view_depth, 3), jnp.float32)

    def state_space(self, params: EnvParams | None = None) -> spaces.Dict:
        """Agent cell and orientation, goal cells, positive goal, time."""
        params = self.default_params if params is None else params
        size = max(params.height, params.width)
        return spaces.Dict(
            {
                "agent_pos": spaces.Box(0, size - 1, (2,), jnp.int32),
                "agent_dir": spaces.Discrete(4),
                "goal_pos": spaces.Box(0, size - 1, (self.num_goals, 2), jnp.int32),
                "positive": spaces.Discrete(self.num_goals),
                "time": spaces.Discrete(params.max_steps_in_episode + 1),
            }
        )

    def goal_positions(self, state: EnvState, params: EnvParams) -> jax.Array:
        """(row, col) of every goal cell as floats: float32 [N, 2] (for visitation heatmaps)."""
        del params
        return state.goal_pos.astype(jnp.float32)

    def heatmap_bins(self, params: EnvParams) -> tuple[np.ndarray, np.ndarray]:
        """One heatmap bin per cell: edges -0.5 .. height - 0.5 (rows), -0.5 .. width - 0.5."""
        rows = np.arange(params.height + 1, dtype=np.float64) - 0.5
        cols = np.arange(params.width + 1, dtype=np.float64) - 0.5
        return rows, cols

    def render(self, state: EnvState, params: EnvParams | None = None) -> np.ndarray:
        """The whole grid with its wall border, goals, the agent and its view: uint8 [h, w, 3]."""
        params = self.default_params if params is None else params
        return render_state(state, params, self.view_depth)

    def render_observation(self, obs: jax.Array) -> np.ndarray:
        """An observation [N + 1, D, 3] drawn as the agent sees it: uint8 [h, w, 3]."""
        return render_obs(obs)


# ------------------------------------------------------------------ rendering (numpy, not jitted)
_CELL = 16  # pixels per cell
_FREE = np.array([235, 235, 235], np.uint8)
_VIEW = np.array([255, 236, 160], np.uint8)  # free cell inside the field of view
_WALL = np.array([90, 90, 90], np.uint8)
_WALL_VIEW = np.array([130, 120, 80], np.uint8)  # wall cell inside the field of view
_UNSEEN = np.array([40, 40, 40], np.uint8)
_LINE = np.array([200, 200, 200], np.uint8)
_AGENT = np.array([20, 20, 20], np.uint8)
_NOSE = np.array([255, 255, 255], np.uint8)
_PALETTE = np.array(
    [[220, 40, 40], [40, 160, 60], [40, 90, 220], [240, 140, 20], [150, 60, 190], [20, 180, 190]],
    np.uint8,
)


def goal_colours(n: int) -> np.ndarray:
    """Distinct colours for n goals: uint8 [n, 3] (a fixed palette, then evenly spaced hues)."""
    if n <= len(_PALETTE):
        return _PALETTE[:n]
    hue = np.arange(n) / n
    k = (np.array([5.0, 3.0, 1.0])[None] + hue[:, None] * 6.0) % 6.0  # HSV -> RGB, s = v = 0.85
    rgb = 0.85 - 0.85 * 0.85 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (rgb * 255).astype(np.uint8)


def _paint(img: np.ndarray, row: int, col: int, colour: np.ndarray) -> None:
    """Fill cell (row, col) of an image of _CELL-pixel cells, keeping a 1-pixel grid line."""
    img[row * _CELL + 1 : (row + 1) * _CELL, col * _CELL + 1 : (col + 1) * _CELL] = colour


def _agent(img: np.ndarray, row: int, col: int, direction: int) -> None:
    """Draw the agent as a dark square with a white nose on the side it faces."""
    m, c = 3, _CELL
    y0, x0 = row * c, col * c
    img[y0 + m : y0 + c - m + 1, x0 + m : x0 + c - m + 1] = _AGENT
    lo, hi = c // 2 - 2, c // 2 + 3
    nose = {
        0: (slice(y0 + m, y0 + m + 4), slice(x0 + lo, x0 + hi)),
        1: (slice(y0 + lo, y0 + hi), slice(x0 + c - m - 3, x0 + c - m + 1)),
        2: (slice(y0 + c - m - 3, y0 + c - m + 1), slice(x0 + lo, x0 + hi)),
        3: (slice(y0 + lo, y0 + hi), slice(x0 + m, x0 + m + 4)),
    }[direction]
    img[nose] = _NOSE


def render_state(state: EnvState, params: EnvParams, view_depth: int = 15) -> np.ndarray:
    """Grid plus a one-cell wall border, view shaded, goals coloured: uint8 [(H+2)c, (W+2)c, 3]."""
    h, w = params.height, params.width
    pos = np.asarray(state.agent_pos)
    direction = int(state.agent_dir)
    goals = np.asarray(state.goal_pos)
    img = np.empty(((h + 2) * _CELL + 1, (w + 2) * _CELL + 1, 3), np.uint8)
    img[:] = _LINE
    for r in range(h + 2):
        for c in range(w + 2):
            border = r in (0, h + 1) or c in (0, w + 1)
            _paint(img, r, c, _WALL if border else _FREE)
    for r, c in np.asarray(view_cells(pos, direction, view_depth)).reshape(-1, 2):
        if -1 <= r <= h and -1 <= c <= w:  # the border row / column is drawn, beyond is not
            inside = 0 <= r < h and 0 <= c < w
            _paint(img, r + 1, c + 1, _VIEW if inside else _WALL_VIEW)
    for colour, (r, c) in zip(goal_colours(len(goals)), goals, strict=True):
        _paint(img, r + 1, c + 1, colour)
    _agent(img, pos[0] + 1, pos[1] + 1, direction)
    return img


def render_obs(obs: jax.Array) -> np.ndarray:
    """Observation [N + 1, D, 3] as D rows (farthest on top) over an agent row: uint8 image."""
    obs = np.asarray(obs)
    n, depth = obs.shape[0] - 1, obs.shape[1]
    img = np.empty(((depth + 1) * _CELL + 1, 3 * _CELL + 1, 3), np.uint8)
    img[:] = _LINE
    colours = goal_colours(n)
    for i in range(depth):
        for j in range(3):
            colour = _WALL_VIEW if obs[n, i, j] > 0.5 else _VIEW
            for g in range(n):
                if obs[g, i, j] > 0.5:
                    colour = colours[g]
            _paint(img, depth - 1 - i, j, colour)
    for j in range(3):
        _paint(img, depth, j, _UNSEEN)
    _agent(img, depth, 1, 0)
    return img


def _factory(
    num_goals: int = 3, height: int = 7, width: int = 7, horizon: int = 15, layout: str = "walled"
):
    """``layout``: whether ``height`` x ``width`` includes the border walls (``LAYOUTS``)."""
    return ColorChoice(num_goals), grid_params(height, width, layout, horizon)


SPEC = EnvSpec(
    factory=_factory, k_explore=3, horizon=15, architecture="meta_lstm",
    config=(*NAVIGATION_RECIPE, ("divergence", "skl")), learning_rate=2.5e-3,
    lambda_div=2e-6, num_goals=lambda env: env.num_goals,
    renderer=color_choice_draw.renderer(),
)
