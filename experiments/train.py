"""The generic command from a checkout: ``python -m experiments.train`` is ``cmrl-train``.

    python -m experiments.train --env gymnax:MetaMaze-misc --env-option maze_size=5
    python -m experiments.train --env examples.hidden_chest:hidden_chest   # module:name

``python -m`` puts the current folder on the import path (the console script
does not), so a ``module:name`` env of a checkout's module is found. Everything
else is ``cmrl_jax.commands.generic``.
"""

from cmrl_jax.commands.generic import main

if __name__ == "__main__":
    main()
