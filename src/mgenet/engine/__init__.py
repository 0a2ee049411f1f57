"""Training and inference loops, which take configs and paths and never parse arguments (``flow``, ``stage2`` with
``stage2_data``), the import of STG-NF's official checkpoints (``stgnf_checkpoint``), and the per-rule jobs the CLI
runs (``flow_jobs``, ``stage2_jobs``)."""
