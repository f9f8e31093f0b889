"""The pipeline layer: one module per DVC stage, each with the same shape.

``csad/pipeline/<stage>.py`` holds the whole work of stage ``<stage>``: ``run(inputs)`` reads the stage's inputs
(the artifacts of earlier stages, at the paths of :mod:`csad.artifacts`), calls one algorithm package
(``csad.pseudo``, ``csad.seg``, ``csad.lgst``, ``csad.detector``, ``csad.eval``), and writes the stage's outputs
atomically. ``stages/<stage>.py`` is the command line over it (:mod:`csad.pipeline.stage`: arguments, the params
check, one-line errors). The algorithm packages know nothing of stages, artifacts or DVC.

This ``__init__`` imports nothing, so a stage's code dependencies (``dvc.yaml``) are its own module's import closure.
"""
