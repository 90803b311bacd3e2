"""Training on cached features: config, optimiser groups and schedule, the Lightning module,
and :func:`~wildaffect.train.run.train`, which builds everything from a :class:`TrainConfig`.

Import the submodules directly (``from wildaffect.train.run import train``); this package
imports nothing heavy so that the CLI stays fast.
"""
