"""The per-video backbone jobs: what a job (features, snippets) needs before it runs (the video's manifest row and
file, the Video Swin stages on their device, the provenance attributes of its output), and `mgenet features`."""

from __future__ import annotations

from typing import Any

from mgenet import MgenetError


def backbone_job(row: dict[str, Any], manifest: str, source: str, weights: str, seed: int, device: str,
                 config_hash: str, what: str) -> tuple[str, Any, Any, dict[str, Any]]:
    """The video file (``source``, else the manifest ``row``'s), the backbone on its device, and the attributes
    its output records.

    Args:
        what: the outputs, for the error when the dataset has no video files (``features``, ``snippet features``).

    Raises:
        MgenetError: the dataset is pose-only (no video file).
    """
    from mgenet.features.swin import load_backbone
    from mgenet.runtime import resolve_device

    source = source or row["video_path"]
    if not source:
        raise MgenetError(f"{manifest}: video {row['video']!r} has no video file (pose-only dataset); {what} "
                          f"need the videos under the dataset root (see README, 'Real datasets').")
    dev = resolve_device(device)
    model, digest = load_backbone(weights, seed)
    model.to(dev)
    attrs = {"video": row["video"], "split": row["split"], "scene": str(row["scene"]), "config_hash": config_hash,
             "checkpoint_sha256": digest, "weights": weights, "device": str(dev)}
    return source, model, dev, attrs


def features_job(manifest: str, video: str, source: str, segments: str, out: str, cfg: Any, config_hash: str,
                 threads: int = 1) -> Any:
    """`mgenet features`: the tokens of every person-segment crop of ``video`` (its segments file ``segments``) and
    its scene feature, written to ``out``; returns the extraction's statistics.

    Args:
        source: the video file or frame folder, "" for the manifest's.
        cfg: the features settings (:class:`mgenet.features.extract.FeatureConfig`).
        config_hash: the hash of the settings as sent, recorded in the file's provenance.
    """
    import logging

    from mgenet.features.extract import extract_video_features
    from mgenet.io import manifest_row

    row = manifest_row(manifest, video)
    source, model, device, attrs = backbone_job(row, manifest, source, cfg.weights, cfg.seed, cfg.device, config_hash,
                                                "features")
    stats = extract_video_features(source, segments, out, cfg, model, device, attrs, threads=threads)
    logging.getLogger("mgenet").info("%s: %s -> %s", video, stats.summary(), out)
    return stats
