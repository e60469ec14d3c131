"""The commands layer: argument parsing and one-line refusals (``cli``), the table
experiments (``tables``, ``experiment``), the generic command (``generic``, ``console``).

Nothing here imports gymnax or the compiled core at its top: importing gymnax starts
JAX's backend, and ``--distributed`` must join its cluster before that
(tests/test_layout.py checks it).
"""
