"""Models that learn physworld scenes, one file per family (torch is imported here; the data side does
not need it). Nothing is imported eagerly: `import physworld.models.vjepa` needs torch and
transformers only, not the 2D engine that the PhysicsExpert's data path imports."""

__all__ = ["PhysicsExpert", "PhysicsExpertConfig", "integrate"]


def __getattr__(name: str):
    if name in __all__:  # physworld.models.PhysicsExpert etc., loaded on first use
        from physworld.models import physics_expert

        return getattr(physics_expert, name)
    raise AttributeError(f"module 'physworld.models' has no attribute {name!r}")
