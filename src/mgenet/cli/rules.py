"""The workflow's artifacts and the rules that make them, so that an error about a missing or unreadable artifact
names the rule to run: the library's file errors name the file and the fix, and :func:`explain` (the CLI's error line)
adds the rule where the file lies under ``results/<dataset>/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mgenet import MgenetError
from mgenet.io import MissingFileError, UnreadableFileError

# The artifacts under results/{dataset}/ and the rules of workflow/rules/*.smk that make them (DESIGN.md §3), so that a
# missing input's error names the rule to run. A variant run's artifacts (a training seed's, an ablation's, ...) lie
# under runs/<run>/ and are made by the same rules (workflow/rules/runs.smk), but two: RUN_MADE_BY.
MADE_BY = {
    r"manifest\.csv": "index_dataset",
    r"pose/[^/]+\.json": "import_pose or extract_pose (as pose.source says)",
    r"segments/[^/]+\.h5": "build_segments",
    r"features/[^/]+\.h5": "extract_features",
    r"snippets/len\d+/[^/]+\.h5": "extract_snippets",
    r"labels/[^/]+\.csv": "label_windows",
    r"models/flow\.pt": "train_flow",
    r"flow/(?:train|test|val)\.h5": "encode_flow",
    r"models/stage2\.pt": "train_stage2",
    r"scores/segments(?:_val|_train)?\.parquet": "score_components",
    r"scores/frames(?:_val)?\.parquet": "fuse_scores",
    r"eval/metrics\.json": "evaluate",
    r"eval/val_metrics\.json": "evaluate_val",
}
# a matching-seed run's stage 2 is the main (or a seed's) model with M^r written again; a variant's test metrics come
# without the main run's report
RUN_MADE_BY = {
    r"runs/(?:seed\d+_)?mseed\d+/models/stage2\.pt": "rewrite_matching",
    r"runs/[^/]+/eval/metrics\.json": "evaluate_run",
}


def made_by(path: str | os.PathLike) -> tuple[str, bool] | None:
    """The rule that makes ``path``, and whether ``path`` is a Snakemake target (it lies under ``results/<ds>/``);
    None if no rule makes a file of that name."""
    p = Path(path).as_posix()
    for pattern, rule in RUN_MADE_BY.items():
        m = re.search(rf"(?:^|/)(results/[^/]+/)?{pattern}$", p)
        if m:
            return rule, m.group(1) is not None
    for pattern, rule in MADE_BY.items():
        m = re.search(rf"(?:^|/)(results/[^/]+/)?(?:runs/[^/]+/)?{pattern}$", p)
        if m:
            return rule, m.group(1) is not None
    return None


def explain(e: MgenetError) -> str:
    """The error's message, naming the workflow rule that makes (or remakes) the file when it is an artifact."""
    found = made_by(e.path) if isinstance(e, (MissingFileError, UnreadableFileError)) else None
    if found is None:
        return str(e)
    rule, target = found
    if isinstance(e, MissingFileError):
        how = f" (`snakemake {e.path}`)" if target else ""
        return f"{e.path}: {e.what} not found; it is made by rule {rule}{how}."
    if e.fix:
        return str(e)
    return f"{e.path}: {e.what} is unreadable ({e.reason}); delete it and run snakemake again (rule {rule} remakes it)."
