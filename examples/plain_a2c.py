"""A learner from outside the library: A2C under another name (docs/extending.md,
"Learners"); a real one overrides ``make_update`` and its ``options``.

    python -m experiments.table1 --learner examples.plain_a2c:PlainA2C
"""

from cmrl_jax.learners.a2c import A2C


class PlainA2C(A2C):
    """The paper's A2C, as a plug-in named ``plain_a2c``."""

    name = "plain_a2c"
