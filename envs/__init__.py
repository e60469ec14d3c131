"""Environments: gymnax ``Environment`` subclasses whose reset draws a task."""

from envs.monty_hall import MontyHall
from envs.registry import make_env, register_env, registered_envs

__all__ = ["MontyHall", "make_env", "register_env", "registered_envs"]
