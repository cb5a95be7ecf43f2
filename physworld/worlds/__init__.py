"""Worlds: scene specs, the scenario library and the engine that runs them."""
