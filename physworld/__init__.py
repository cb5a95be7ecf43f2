"""physworld: generate physics worlds, train models that learn them, and measure honestly how well they do."""

__version__ = "0.1.0"
