"""One module per paper experiment (``python -m experiments.table1``); run from a checkout.

Importing the package installs the start-up SIGINT handler (``cmrl_jax.commands.startup``) before
any command's imports, so Ctrl-C while a command starts is exit 130 without a traceback.
"""

from cmrl_jax.commands.startup import exit_on_interrupt

exit_on_interrupt()
