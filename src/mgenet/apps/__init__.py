"""Applications over trained models: ``score_video`` (score a new video, with or without a trained run) and
``inspect`` (describe any HDF5 artifact)."""
