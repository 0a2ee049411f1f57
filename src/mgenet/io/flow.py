"""The flow HDF5 file: one per split, the flow's latent f_sk and NLL per segment."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------- flow HDF5
# results/{ds}/flow/{split}.h5 — one group per video:
#   /{video}/latent (N, 2, T, 18) float32, /{video}/nll (N,) float32, plus person_id, start_frame, mid_frame (N,)

FLOW_DIMS = {"latent": ("clip", "coord", "time", "joint"), "nll": ("clip",), "person_id": ("clip",),
             "start_frame": ("clip",), "mid_frame": ("clip",)}


