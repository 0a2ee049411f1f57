"""AR-Net's snippet classifier: shapes, range, per-snippet independence."""

from __future__ import annotations

import torch

from mgenet.baselines.models.arnet import ARNet, ARNetConfig


def test_arnet_scores_every_snippet_on_its_own():
    torch.manual_seed(0)
    model = ARNet(ARNetConfig(in_dim=12)).eval()
    x = torch.randn(3, 7, 12)  # (B, T, D)
    s = model(x)
    assert s.shape == (3, 7) and ((s > 0) & (s < 1)).all()
    assert model(x[1]).shape == (7,)  # one video (T, D)
    torch.testing.assert_close(model(x[1, 2:4]), s[1, 2:4])  # a snippet's score ignores the others
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(12, 12), (12, 1)]
    assert model.drop.p == 0.6
