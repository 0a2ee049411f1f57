"""Evaluation of frame scores: the ``metrics.json`` figures (``metrics``), RBDC / TBDC (``regions``), one run's
evaluation (``run``) and its HTML report (``report``)."""
