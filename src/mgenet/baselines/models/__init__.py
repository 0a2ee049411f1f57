"""The baselines' networks: AR-Net's MLP, CR's decoder, KR's HashNet."""
