"""The paper's environments, installed as ``cmrl_jax_envs`` (gymnax ``Environment`` subclasses
whose reset draws a task).

Each module declares its ``SPEC`` (``cmrl_jax.envspec.EnvSpec``: factory, hooks, defaults)
beside its code; pyproject.toml names the specs in the ``cmrl_jax.envs`` entry-point group,
so ``cmrl_jax.registry`` finds them by name without this package being imported first.
"""
