"""Figures of trained runs, for any env that registers a renderer (docs/extending.md, "Figures").

- ``hooks``: what an env provides to be drawn (``Renderer``: ``Heatmap``, ``Strip``);
- ``visitation``: goal-visitation statistics (numpy) and their sampling (JAX), Figure 6;
- ``heatmap_draw``: Figure 6's three panels (matplotlib);
- ``replay``: a recorded meta-episode's env states, rebuilt and checked;
- ``strip_draw``: the meta-episode strip's layout (matplotlib), panels drawn by the env.
"""
