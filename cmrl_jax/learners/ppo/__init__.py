"""PPO: its maths, losses and updates."""
