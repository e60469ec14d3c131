"""The agent and its meta-episodes.

- ``engine``: collecting a meta-episode (RL2 / ERL2 sequential, CMRL concurrent);
  ``replay``: re-running its stored inputs (PPO, the divergence re-runs, truncated windows).
- ``networks``: the topologies (sequential, Central, Meta); ``cells``: LSTM / GRU;
  ``encoders``: what the cells read of an observation; ``inputs``: the agent input's
  layout; ``policy``: action distributions; ``evaluate``: per-meta-episode statistics.
"""
