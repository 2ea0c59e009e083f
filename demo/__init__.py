"""The ``make demo`` runner and its sample images (not shipped in the gateway image).

``python -m demo --model-dir export`` serves the model and grades the samples (``demo.serve``);
``python -m demo.samples`` runs the samples through ``fundus`` preprocessing only.
"""
