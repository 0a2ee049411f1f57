#!/usr/bin/env bash
# Run by Snakemake inside the env of envs/pose.yaml, once, right after creating it (--sdm conda). mediapipe==0.10.14
# is the last release whose wheel ships the BlazePose .tflite models; only those files are used (ai-edge-litert runs
# them), and its declared dependencies would put opencv-contrib-python over opencv-python-headless. Pin as in
# requirements-nodeps.txt (tests/test_envs.py checks it).
set -euo pipefail
python -m pip install --no-deps mediapipe==0.10.14
