"""Examples of what a user brings without changing the library (docs/extending.md): an
environment (``hidden_chest``), a memory cell (``elman_cell``), an output sink
(``csv_sink``) and a learner (``plain_a2c``), each named ``module:name`` on the commands."""
