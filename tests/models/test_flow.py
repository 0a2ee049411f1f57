"""The flow is a bijection whose log-det is exact, starts as an affine map, and scores per sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgenet.models.flow import STGNF, FlowConfig
from mgenet.models.graph import CENTER, EDGES, FLIP_PERMUTATION, N_JOINTS, adjacency, hop_distance


def _model(dtype: torch.dtype = torch.float64, perturb: bool = True, **kw) -> STGNF:
    """A flow with ActNorm initialised on a batch and (if ``perturb``) non-zero coupling outputs, so every part of
    every step does something."""
    torch.manual_seed(0)
    model = STGNF(FlowConfig(**kw)).to(dtype)
    cfg = model.cfg
    model.train()
    with torch.no_grad():
        model(torch.randn(16, cfg.in_channels, cfg.seg_len, cfg.n_joints, dtype=dtype) * 3 + 1)
        if perturb:
            for step in model.steps:
                for name, p in step.coupling.named_parameters():
                    if name.endswith("edge_importance"):
                        p.uniform_(0.5, 1.5)
                    elif "tcn" in name and "light" == model.cfg.coupling:  # the zero-initialised conv
                        p.normal_(0, 0.3)
            for m in model.modules():  # BatchNorm running statistics away from (0, 1), so eval mode uses them
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
    return model.eval()


# ------------------------------------------------------------------------------------------------------- graph


def test_adjacency_spatial_partition() -> None:
    A = adjacency("spatial")
    assert A.shape == (3, N_JOINTS, N_JOINTS)
    np.testing.assert_allclose(A.sum(axis=(0, 2)), 1.0, rtol=1e-6)  # each joint averages its neighbourhood
    np.testing.assert_array_equal(A[0] > 0, np.eye(N_JOINTS, dtype=bool))  # self subset
    assert not A[1, CENTER].any()  # nothing is closer to the neck than the neck
    for leaf in (4, 7, 10, 13, 16, 17):  # wrists, ankles, ears: nothing farther out
        assert not A[2, leaf].any()
    assert A[1, 3, 2] > 0 and A[2, 3, 4] > 0  # r-elbow: shoulder is centripetal, wrist centrifugal
    edges = {frozenset(e) for e in EDGES}
    links = {frozenset((w, v)) for w, v in zip(*np.nonzero(A[1] + A[2]))}
    assert links == edges


def test_adjacency_uniform_is_body_mean_at_stgnf_hops() -> None:
    assert hop_distance().max() <= 8
    np.testing.assert_allclose(adjacency("uniform", max_hop=8), np.full((1, 18, 18), 1 / 18), rtol=1e-6)
    with pytest.raises(ValueError):
        adjacency("distance")


def test_flip_permutation_is_a_mirror() -> None:
    perm = np.array(FLIP_PERMUTATION)
    np.testing.assert_array_equal(perm[perm], np.arange(N_JOINTS))  # involution
    assert perm[0] == 0 and perm[1] == 1 and perm[2] == 5 and perm[10] == 13 and perm[16] == 17
    edges = {frozenset(e) for e in EDGES}
    assert {frozenset((perm[i], perm[j])) for i, j in EDGES} == edges  # bones map to bones


# -------------------------------------------------------------------------------------------------------- flow


@pytest.mark.parametrize("coupling", ["stgcn", "light"])
@pytest.mark.parametrize("permutation", ["invconv", "reverse"])
def test_inverse_inverts_forward(permutation: str, coupling: str) -> None:
    model = _model(torch.float32, seg_len=24, n_flows=8, permutation=permutation, edge_importance=True,
                   coupling=coupling)
    x = torch.randn(8, 2, 24, 18)
    with torch.no_grad():
        z, _ = model(x)
        assert z.shape == x.shape
        assert (z - x).abs().max() > 0.1  # the flow is not the identity, so the test can fail
        torch.testing.assert_close(model.inverse(z), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(permutation="invconv"), dict(permutation="reverse", hidden_channels=4),
                                dict(hidden_channels=2), dict(graph_strategy="spatial", max_hop=1),
                                dict(coupling="light", permutation="invconv", graph_strategy="spatial", max_hop=1),
                                dict(coupling="light", hidden_channels=4, edge_importance=True)])
def test_logdet_matches_brute_force_jacobian(kw: dict) -> None:
    model = _model(seg_len=4, temporal_kernel=3, n_flows=3, **kw)
    x = torch.randn(1, 2, 4, 18, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model(v.view_as(x))[0].reshape(-1), x.reshape(-1))
    assert jac.shape == (144, 144)
    expected = torch.linalg.slogdet(jac)[1]
    _, logdet = model(x)
    assert abs(logdet.item()) > 1.0
    torch.testing.assert_close(logdet[0], expected, atol=1e-6, rtol=1e-8)


def test_actnorm_init_standardises_the_first_batch() -> None:
    torch.manual_seed(0)
    model = STGNF(FlowConfig(seg_len=8, temporal_kernel=3, n_flows=2)).train()
    x = torch.randn(64, 2, 8, 18) * torch.tensor([3.0, 0.5]).view(1, 2, 1, 1) + 5
    with torch.no_grad():
        y, _ = model.steps[0].actnorm(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3), correction=0), torch.ones(2), atol=1e-4, rtol=0)
    assert bool(model.steps[0].actnorm.initialized)
    with torch.no_grad():  # initialised once: a later batch does not move it
        bias = model.steps[0].actnorm.bias.clone()
        model.steps[0].actnorm(x * 10)
    torch.testing.assert_close(model.steps[0].actnorm.bias, bias)


def test_light_flow_is_affine_at_start() -> None:
    model = _model(perturb=False, seg_len=8, temporal_kernel=3, n_flows=4, coupling="light")
    x1, x2 = torch.randn(2, 4, 2, 8, 18, dtype=torch.float64)
    with torch.no_grad():
        z1, ld1 = model(x1)
        z2, ld2 = model(x2)
        zm, _ = model(0.3 * x1 + 0.7 * x2)
    torch.testing.assert_close(zm, 0.3 * z1 + 0.7 * z2, atol=1e-10, rtol=0)  # f(a x + b y) = a f(x) + b f(y)
    torch.testing.assert_close(ld1, ld2)  # constant Jacobian
    torch.testing.assert_close(ld1, ld1[:1].expand(4))


@pytest.mark.parametrize("R", [3.0, 0.0])
def test_nll_is_bits_per_dim_under_the_prior_n_r_i(R: float) -> None:
    model = _model(seg_len=8, temporal_kernel=3, n_flows=2, prior_mean=R)
    x = torch.randn(5, 2, 8, 18, dtype=torch.float64)
    with torch.no_grad():
        z, nll = model.nll(x)
        z2, logdet = model(x)
    torch.testing.assert_close(z, z2)
    log_pz = torch.distributions.Normal(R, 1.0).log_prob(z).sum(dim=(1, 2, 3))
    torch.testing.assert_close(nll, -(log_pz + logdet) / (2 * 8 * 18 * math.log(2)))
    assert nll.shape == (5,)


def test_stgnf_coupling_shift_is_non_negative_and_scale_in_stgnf_range() -> None:
    """STG-NF's final ReLU: shift = h[0] >= 0 and scale = sigmoid(h[1] + 2) in [0.88, 1)."""
    model = _model(torch.float32, seg_len=24, n_flows=3)
    z1 = torch.randn(16, 1, 24, 18) * 3
    with torch.no_grad():
        for step in model.steps:
            shift, logscale = step._shift_logscale(z1)
            assert (shift >= 0).all() and shift.max() > 0
            scale = logscale.exp()
            assert (scale >= torch.sigmoid(torch.tensor(2.0)) - 1e-6).all() and (scale < 1 + 1e-6).all()


def test_stgnf_defaults() -> None:
    """Every default is STG-NF's (args.py, model_pose.py): K 8, reverse permutation, uniform graph of 8 hops, kernel
    T // 2 + 1, prior mean 3, the ST-GCN coupling with a residual from the second step on."""
    cfg = FlowConfig()
    assert (cfg.n_flows, cfg.permutation, cfg.graph_strategy, cfg.max_hop, cfg.prior_mean, cfg.coupling,
            cfg.hidden_channels) == (8, "reverse", "uniform", 8, 3.0, "stgcn", 0)
    assert cfg.temporal_kernel == 13 and FlowConfig(seg_len=16).temporal_kernel == 9
    model = STGNF(cfg)
    blocks = [step.coupling.blocks for step in model.steps]
    assert all(len(b) == 1 for b in blocks)
    assert blocks[0][0].residual is None and all(isinstance(b[0].residual, torch.nn.Sequential) for b in blocks[1:])
    assert blocks[1][0].tcn[2].weight.shape == (2, 2, 13, 1)


def test_batchnorm_running_statistics_score_in_eval_mode() -> None:
    """Training mode normalises by the batch, eval mode by the running statistics: a sample's eval NLL does not
    depend on its batch, its training-mode NLL does."""
    model = _model(torch.float32, seg_len=8, n_flows=3)
    x = torch.randn(6, 2, 8, 18)
    with torch.no_grad():
        alone = model.nll(x[:1])[1]
        batched = model.nll(x)[1][:1]
        torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-5)
        model.train()
        train_batched = model.nll(x)[1][:1]
        train_other = model.nll(torch.cat([x[:1], 5 * x[1:]]))[1][:1]
    assert (train_batched - train_other).abs().item() > 1e-3


@pytest.mark.parametrize("coupling", ["stgcn", "light"])
def test_scores_do_not_depend_on_the_batch(coupling: str) -> None:
    model = _model(torch.float32, seg_len=8, temporal_kernel=5, n_flows=4, coupling=coupling)
    x = torch.randn(6, 2, 8, 18)
    with torch.no_grad():
        _, batched = model.nll(x)
        single = torch.cat([model.nll(x[i:i + 1])[1] for i in range(6)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_config_validation() -> None:
    assert FlowConfig.from_dict({"n_flows": 4}).n_flows == 4
    with pytest.raises(ValueError, match="n_flow"):
        FlowConfig.from_dict({"n_flow": 4})
    with pytest.raises(ValueError, match="temporal_kernel"):
        FlowConfig(temporal_kernel=8)
    with pytest.raises(ValueError, match="temporal_kernel"):
        FlowConfig(seg_len=4, temporal_kernel=9)
    with pytest.raises(ValueError, match="permutation"):
        FlowConfig(permutation="shuffle")
    with pytest.raises(ValueError, match="coupling"):
        FlowConfig(coupling="glow")
    with pytest.raises(ValueError, match="temporal_kernel"):
        FlowConfig(seg_len=10)  # 10 // 2 + 1 = 6 is even
