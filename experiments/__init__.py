"""One module per paper experiment: ``python -m experiments.table1`` from a checkout. pip
installs this folder as the package ``cmrl_jax_experiments``, each command a console script
(``console.py``: ``cmrl-table1`` ...), so its modules import each other relatively.

Importing the package installs the start-up SIGINT handler (``cmrl_jax.commands.startup``) before
any command's imports, so Ctrl-C while a command starts is exit 130 without a traceback.
"""

from cmrl_jax.commands.startup import exit_on_interrupt

exit_on_interrupt()
