"""PPO: its maths (``maths``), the learner with collection, the whole-meta-episode loss and
update (``update``), and truncated backpropagation's windows (``truncated``)."""
