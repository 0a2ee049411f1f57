"""The baselines' training and scoring loops (AR-Net, CR, KR)."""
