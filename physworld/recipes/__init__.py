"""Training recipes: one file per training method, its loop written out top to bottom.

Recipes call the small shared pieces in `physworld.training` (config, checkpoint, metrics, loop
utilities) and the models in `physworld.models`. Nothing outside `cli.py` and the quickstart imports a
recipe: evaluation reaches a family only through `physworld.evaluation.families`.
"""
