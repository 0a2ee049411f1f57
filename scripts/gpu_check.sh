#!/usr/bin/env bash
# GPU checks in one run, for a machine with CUDA and a CUDA build of torch (the project's CPU venv cannot reach a GPU):
# the CUDA-gated tests, then bench/stage2.py and bench/features.py on the GPU with mixed precision on and off.
#   bash scripts/gpu_check.sh [OUTDIR]      (logs go to OUTDIR, default gpu-check/)
# Python packages the machine lacks can be put as wheels in .whl/ (on a bare CUDA image: decord, av, mmaction2,
# mmengine, mmcv-lite, addict, yapf, platformdirs, termcolor at the pinned versions); they go to a scratch dir first.
set -uo pipefail
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/mgenet-site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/mgenet-site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
status=0
python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/engine tests/features 2>&1 | tee "$out/pytest.log" \
    || status=1
python3 bench/stage2.py --device cuda --amp both --clips 2048 --loop-clips 64 --batch-sizes 1 16 64 256 \
    2>&1 | tee "$out/stage2.log" || status=1
python3 bench/stage2.py --device cuda --amp both --crop 128 64 --clips 512 --loop-clips 32 --batch-sizes 1 16 64 \
    2>&1 | tee "$out/stage2_real_grid.log" || status=1
for amp in auto off; do
    python3 bench/features.py --device cuda --amp $amp --max-frames 240 --repeat 3 --skip-memory 2>&1 | tee "$out/features_$amp.log" \
        || status=1
done
exit $status
