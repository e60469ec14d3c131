"""Best achievable success on N-Color-Choice (envs/color_choice.py), by breadth-first search.

Distances. A breadth-first search over (row, col, orientation) with the three
actions (forward, turn left, turn right) gives, for every goal, the number of
decisions needed to ENTER it from the start. Entering any goal ends the
sub-episode, so paths never pass through another goal cell; forward into the
outside wall is a wasted decision and never shortens a path. A goal is
*reachable* when its distance is at most H (``max_steps_in_episode``).

Known goal. An agent told which goal is positive succeeds iff that goal is
reachable: ``known_goal_success``.

Meta-learner. Every sub-episode starts from the same start and enters at most
one goal, so K explore sub-episodes (sequential or concurrent) can test at
most K distinct reachable goals. Unreachable goals can never be tested, and
do not matter: if the positive goal is one of them no exploit sub-episode can
succeed anyway. The positive goal is identified once it has been entered, or
once every other reachable goal has been entered and paid -1 (the remaining
one is then the only reachable candidate). So with n reachable goals the
positive one is guaranteed to be identified iff K >= n - 1, and the exploit
sub-episode, from the same start, then reaches it within H:
``meta_learner_success`` is True iff the positive goal is reachable and
K >= n - 1. This is an upper bound for learners that cannot see the whole map
(the view is egocentric) and counts a task with K < n - 1 as a failure even
though a lucky guess could succeed. With K = N (the paper's setting) every
task with a reachable positive goal is solvable, so both rates coincide; they
differ only for K < N - 1.
"""

from collections import deque
from typing import NamedTuple

import jax
import numpy as np

from .color_choice import DIRECTIONS, ColorChoice, EnvParams, EnvState

UNREACHABLE = np.iinfo(np.int32).max


def goal_distances(state: EnvState, params: EnvParams) -> np.ndarray:
    """Fewest decisions to enter each goal from the state's agent pose: int64 [N].

    Goals that cannot be entered at all get ``UNREACHABLE``.
    """
    h, w = params.height, params.width
    goals = np.asarray(state.goal_pos)
    goal_at = {(int(r), int(c)): g for g, (r, c) in enumerate(goals)}
    dist = np.full(len(goals), UNREACHABLE, np.int64)
    start = (int(state.agent_pos[0]), int(state.agent_pos[1]), int(state.agent_dir))
    seen = {start}
    queue = deque([(start, 0)])
    while queue:
        (r, c, o), d = queue.popleft()
        dr, dc = DIRECTIONS[o]
        nr, nc = r + int(dr), c + int(dc)
        successors = [(r, c, (o + 3) % 4), (r, c, (o + 1) % 4)]
        if 0 <= nr < h and 0 <= nc < w:
            g = goal_at.get((nr, nc))
            if g is None:
                successors.append((nr, nc, o))
            elif dist[g] == UNREACHABLE:  # BFS order: the first entry is the shortest
                dist[g] = d + 1
        for s in successors:
            if s not in seen:
                seen.add(s)
                queue.append((s, d + 1))
    return dist


def _solved(dist: np.ndarray, positive: int, horizon: int, k_explore: int | None) -> bool:
    """Known goal (``k_explore`` None) or meta-learner success from the goal distances."""
    reachable = dist <= horizon
    if k_explore is None:
        return bool(reachable[positive])
    return bool(reachable[positive] and k_explore >= int(reachable.sum()) - 1)


def known_goal_success(state: EnvState, params: EnvParams) -> bool:
    """An agent that knows the positive goal can enter it within H."""
    dist = goal_distances(state, params)
    return _solved(dist, int(state.positive), params.max_steps_in_episode, None)


def meta_learner_success(state: EnvState, params: EnvParams, k_explore: int) -> bool:
    """A meta-learner with ``k_explore`` explore sub-episodes is sure to identify and enter it."""
    dist = goal_distances(state, params)
    return _solved(dist, int(state.positive), params.max_steps_in_episode, k_explore)


class OracleRates(NamedTuple):
    """Fractions of sampled tasks each oracle solves."""

    known_goal: float
    meta_learner: float


def oracle_success_rate(
    env: ColorChoice, params: EnvParams, n_tasks: int, k_explore: int, seed: int = 0
) -> OracleRates:
    """Sample ``n_tasks`` tasks with ``reset_env`` and return both oracle success rates."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n_tasks)
    _, states = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(keys, params)
    states = jax.tree.map(np.asarray, states)
    known = meta = 0
    for i in range(n_tasks):
        s = jax.tree.map(lambda a, i=i: a[i], states)
        dist = goal_distances(s, params)
        known += _solved(dist, int(s.positive), params.max_steps_in_episode, None)
        meta += _solved(dist, int(s.positive), params.max_steps_in_episode, k_explore)
    return OracleRates(known / n_tasks, meta / n_tasks)
