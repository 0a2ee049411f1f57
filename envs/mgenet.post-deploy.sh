#!/usr/bin/env bash
# Run by Snakemake inside the env of envs/mgenet.yaml, once, right after creating it (--sdm conda): the packages of
# requirements-nodeps.txt, which must go in without their dependencies (an env file cannot say --no-deps). The pins
# are written out because Snakemake runs this script from a copy, not from envs/ (tests/test_envs.py checks them).
set -euo pipefail
python -m pip install --no-deps mediapipe==0.10.14 mmaction2==1.1.0 mmengine==0.10.7 mmcv-lite==2.0.1
