"""Every file layout of the pipeline, one module per artifact; this package's namespace gathers their readers and
writers.

Writers go through :func:`atomic_path`: they write to a temporary name beside the target and rename on success, so a
failed or killed job never leaves a half-written artifact that a rerun would take for finished.

- :mod:`.common`: atomic writes, hashes, provenance, opening HDF5 and torch files, errors for missing files
- :mod:`.pose`: AlphaPose tracked-person JSON
- :mod:`.tables`: manifest, ground-truth masks, intervals, weak split, object boxes, parquet tables
- :mod:`.segments`, :mod:`.features`, :mod:`.flow`, :mod:`.snippets`: the per-video and per-split HDF5 files
- :mod:`.video`: probing a video file or frame folder
"""

from mgenet.io.common import (  # noqa: F401
    agreed_attrs,
    atomic_path,
    create_h5,
    DiskFullError,
    first_line,
    glob_escape,
    load_torch,
    MissingFileError,
    open_h5,
    provenance,
    read_attrs,
    save_torch,
    sha256_file,
    UnreadableFileError,
    write_json,
)
from mgenet.io.features import (  # noqa: F401
    ALL_FEATURE_DIMS,
    ALL_FEATURE_DTYPES,
    FEATURE_ATTRS,
    FEATURE_DIMS,
    FEATURE_DTYPES,
    FEATURE_LAYOUTS,
    TRACK_DIMS,
    TRACK_DTYPES,
    ClipTokens,
    FeatureWriter,
    TrackFeatureWriter,
    feature_writer,
    read_clip_index,
    read_features,
    track_feature_writer,
    write_feature_arrays,
    write_features,
)
from mgenet.io.flow import (  # noqa: F401
    FLOW_DIMS,
    FLOW_KEYS,
    FlowFile,
    FlowVideoWriter,
    FlowWriter,
    flow_writer,
    open_flow,
)
from mgenet.io.pose import (  # noqa: F401
    ALPHAPOSE_SUFFIX,
    N_COCO,
    PoseDict,
    pose_summary,
    read_alphapose,
    write_alphapose,
)
from mgenet.io.segments import (  # noqa: F401
    SEGMENT_DIMS,
    SEGMENT_DTYPES,
    SegmentsFile,
    open_segments,
    read_segments,
    segment_count,
    write_arrays_h5,
    write_segments,
)
from mgenet.io.snippets import (  # noqa: F401
    SNIPPET_DIMS,
    Snippets,
    read_snippets,
    snippet_starts,
    write_snippets,
)
from mgenet.io.tables import (  # noqa: F401
    manifest_row,
    read_named_metrics,
    write_summary,
    ANOMALY_BOX_COLUMNS,
    INTERVAL_COLUMNS,
    MANIFEST_COLUMNS,
    NUMPY_MAGIC,
    WEAK_SPLIT_COLUMNS,
    is_numpy_file,
    load_gt_mask,
    read_anomaly_boxes,
    read_intervals,
    read_manifest,
    read_parquet,
    read_weak_split,
    write_anomaly_boxes,
    write_manifest,
    write_parquet,
)
