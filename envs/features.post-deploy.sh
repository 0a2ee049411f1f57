#!/usr/bin/env bash
# Run by Snakemake inside the env of envs/features.yaml, once, right after creating it (--sdm conda). mgenet builds
# mmaction2's own SwinTransformer3D; these three import fine without their declared dependencies (opencv-python,
# opencv-contrib-python, ...), whose needed parts envs/features.yaml pins. Pins as in requirements-nodeps.txt
# (tests/test_envs.py checks them).
set -euo pipefail
python -m pip install --no-deps mmaction2==1.1.0 mmengine==0.10.7 mmcv-lite==2.0.1
