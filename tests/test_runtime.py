"""Run-time helpers shared by every engine: device, seeding and mixed precision."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from mgenet.runtime import AMP_MODES, amp_dtype, as_device, autocast, autocast_off, grad_scaler

CPU = torch.device("cpu")


@pytest.mark.parametrize("amp", [*AMP_MODES, True, False])
def test_cpu_runs_in_full_precision_whatever_the_setting(amp: str | bool) -> None:
    assert amp_dtype(CPU, amp) is None
    assert isinstance(autocast(CPU, amp), nullcontext)
    assert grad_scaler(CPU, amp) is None
    with autocast(CPU, amp):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_as_device_resolves_names_and_keeps_devices() -> None:
    assert as_device("cpu") == CPU
    assert as_device(CPU) is CPU


def test_autocast_off_keeps_float32_inside_an_autocast_region() -> None:
    x = torch.ones(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
        with autocast_off(x):
            assert (x @ x).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_precision_choices() -> None:
    cuda = torch.device("cuda")
    auto = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert amp_dtype(cuda, "auto") == amp_dtype(cuda, True) == auto
    assert amp_dtype(cuda, "off") is None and amp_dtype(cuda, False) is None
    assert amp_dtype(cuda, "bf16") == torch.bfloat16 and amp_dtype(cuda, "fp16") == torch.float16
    assert grad_scaler(cuda, "fp16") is not None and grad_scaler(cuda, "bf16") is None
    x = torch.ones(4, 4, device=cuda)
    with autocast(cuda, "fp16"):
        assert (x @ x).dtype == torch.float16
