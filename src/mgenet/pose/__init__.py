"""Poses: extraction from videos (detectors, backends, tracking), the skeleton conventions, and the per-person windows
the flow and stage 2 read (``segments``)."""
