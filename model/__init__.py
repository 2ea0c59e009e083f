"""Training, evaluation and SavedModel export of the DR grading network (see docs/model.md).

Library modules (config, sources, cache, data, folds, losses, network, batches, callbacks,
training, metrics, decision, evaluation, plots, serving, warmup, card, exporting) behind thin
command-line scripts: ``python -m model.train``, ``model.evaluate``, ``model.export``,
``model.pipeline``.
"""
