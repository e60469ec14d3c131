"""Training defaults shared by several of our envs' specs (``EnvSpec.config``).

``NAVIGATION_RECIPE``: the H = 15 environments (Color-Choice, Reacher; docs/design.md,
"Entropy on Color-Choice and Reacher"). A low explore entropy lets the rollouts learn to
enter goals from the shared reward; a high exploit entropy (1.0 -> 0.01) keeps the exploit
policy from learning to avoid every goal before exploration is informative; rewards x10 in
the agent input.

``CONTINUOUS_RECIPE``: the same with a small entropy bonus for both phases, for
continuous actions: a Gaussian's differential entropy has no ceiling, and at 1.0 the std
runs to its clip (bang-bang torques; docs/history.md).
"""

NAVIGATION_RECIPE = (("entropy_explore_start", 0.05), ("entropy_exploit_start", 1.0),
                     ("reward_input_scale", 10.0))
CONTINUOUS_RECIPE = (("entropy_explore_start", 0.05), ("entropy_exploit_start", 0.05),
                     ("reward_input_scale", 10.0))
