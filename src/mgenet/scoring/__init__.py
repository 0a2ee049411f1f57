"""From model outputs to frame scores: per-segment component scores (``components``), their fusion (``fusion``,
Eq. 16) and the smoothed per-frame scores (``frames``)."""
