"""The baselines beside MGENet, reported as components of ``metrics.json``: snippet features, AR-Net (weakly
supervised) and the two-stream CR + KR (``models/`` their networks, ``engine/`` their loops, ``crkr`` their fusion and
the paper's protocol, ``jobs`` what the CLI runs)."""
