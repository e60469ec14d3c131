"""Learners: what turns a batch of meta-episodes into parameter updates (``LEARNERS``).

A learner is a plug-in: a ``Learner`` subclass (``base``) with a name, its options
(defaults, which are traced, how each is checked) and ``make_update``, which returns one
``Update`` of a run's parameters. The built-in ones, a module or folder of this package
each, are in ``LEARNERS``; ``get_learner`` also finds an installed package's
``cmrl_jax.learners`` entry point and ``module:name`` (``LEARNER_PLUGINS``,
``cmrl_jax.plugins``). ``cmrl_jax.train`` draws the batch's
keys and the derangements, anneals the entropy bonuses, calls the update with them
(``common.UpdateInputs``) and guards the result; the engine, the reward schemes, the
divergence loss, the optimizer step and the epoch / minibatch loop are shared
(``common``).

- ``a2c.A2C``: the paper's learner. Its loss is computed in the pass that collects the
  meta-episodes (``a2c.meta_episode_loss``) and one optimizer step is taken: the same
  numbers as collect-then-learn for one on-policy gradient step, one forward pass
  cheaper.
- ``ppo.update.PPO``: collect (``ppo.update.collect``: meta-episodes, the collecting
  policy's log-probabilities, GAE advantages), then several epochs over minibatches of
  meta-episodes, each replaying the memory from the meta-episode's start
  (``ppo.update.ppo_meta_episode_loss``), or of windows re-run from their carried
  memory (``ppo.truncated``).

Options that are traced (PPO's clip, GAE lambda, value clip) live in
``train.HParams.learner`` (``Learner.traced_values``), one value per run: runs that
differ only in them share one compiled program (``RunSpec.learner_options``). Static
options (epochs, minibatches) change the program.

The config checks its learner here, so no module of this package imports
``cmrl_jax.config`` nor, at its top, anything that imports gymnax (importing gymnax
starts JAX's backend, which ``--distributed`` must join first): the engine's types are
for annotations only and ``common.episode_stats`` imports the engine's side when traced.
"""

from cmrl_jax.learners.a2c import A2C
from cmrl_jax.learners.base import (
    Learner,
    Metrics,
    Option,
    Params,
    Update,
    boolean,
    int_in,
    nonnegative_int,
    number_in,
    positive_int,
)
from cmrl_jax.learners.common import LossInputs, UpdateInputs
from cmrl_jax.learners.ppo.update import PPO
from cmrl_jax.plugins import Plugins

__all__ = ["LEARNERS", "LEARNER_PLUGINS", "Learner", "LossInputs", "Metrics", "Option",
           "Params", "Update", "UpdateInputs", "boolean", "get_learner", "int_in",
           "nonnegative_int", "number_in", "positive_int"]

LEARNERS: dict[str, Learner] = {learner.name: learner for learner in (A2C(), PPO())}
"""The built-in learners by name; ``get_learner`` resolves every other (``--learner``;
``TrainConfig.learner``). A learner of this process may also register with
``LEARNERS[name] = MyLearner()``."""


def _learner(obj) -> Learner | None:
    """A plug-in learner: a ``Learner`` as it is, a ``Learner`` subclass made with no
    arguments; None for anything else."""
    if isinstance(obj, type) and issubclass(obj, Learner):
        return obj()
    return obj if isinstance(obj, Learner) else None


LEARNER_PLUGINS: Plugins[Learner] = Plugins(
    "learner", "cmrl_jax.learners", LEARNERS, _learner,
    "a cmrl_jax.learners.Learner or a subclass of it")
"""Every learner by name: ``LEARNERS``, then the ``cmrl_jax.learners`` entry points, then
``module:name`` (``cmrl_jax.plugins``)."""


def get_learner(name: str) -> Learner:
    """The learner called ``name`` (``LEARNER_PLUGINS``); ConfigError (one line) naming the
    known ones if there is none."""
    return LEARNER_PLUGINS.resolve(name)
