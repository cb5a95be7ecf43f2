"""Models that learn physworld scenes (torch is imported here; the data side does not need it)."""

from physworld.models.physics_expert import PhysicsExpert, PhysicsExpertConfig, integrate

__all__ = ["PhysicsExpert", "PhysicsExpertConfig", "integrate"]
