"""The ablation table: one row per configured variant (the paper's Tables 2 and 3), from each variant's metrics.json.

Each variant is the main configuration with some stage-2 or fusion settings changed (config ``ablation.variants``);
the workflow evaluates every one of them like the main run (``results/{ds}/runs/abl_{variant}/eval/metrics.json``)
and this module lays the fused score's figures side by side.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.scoring.fusion import FUSED

BASE_COLUMNS = ["variant", "description", "fusion", "micro_auc", "macro_auc"]
# Columns after the per-type AUCs, each shown when some variant's metrics file holds it (older files lack them).
EXTRA_COLUMNS = ("micro_auc_ci95_low", "micro_auc_ci95_high", "micro_ap", "macro_ap", "micro_eer", "macro_eer", "rbdc",
                 "tbdc")


def fusion_formula(weights: Mapping[str, float], motion_score: str = "mo") -> str:
    """The fused score as text, e.g. ``mo + 0.1 app + 0.1 mm``; zero weights left out, ``mo`` renamed when another
    level-1 measurement stands in for it."""
    terms = []
    for c, w in weights.items():
        if float(w) == 0:
            continue
        name = motion_score if c == "mo" else c
        terms.append(name if float(w) == 1 else f"{float(w):g} {name}")
    return " + ".join(terms)


def ablation_table(metrics: Mapping[str, dict], descriptions: Mapping[str, str] | None = None,
                   fusion: Mapping[str, Mapping] | None = None, score: str = FUSED) -> pd.DataFrame:
    """One row per variant, in the given order: its ``score``'s micro and macro AUC, one ``auc_<type>`` per type,
    then its AUC interval, AP, EER and RBDC / TBDC where the metrics files hold them.

    Args:
        metrics: variant name -> its parsed ``metrics.json`` (DESIGN §3).
        descriptions: variant name -> one line saying what it changes (optional).
        fusion: variant name -> its fusion settings (``weights``, ``motion_score``), shown as a formula (optional).
        score: which score of each metrics file to tabulate (the fused score, the variant's result).

    Returns:
        Columns variant, description, fusion (the variant's fused score as a formula), micro_auc, macro_auc, then
        auc_<type> for every anomaly type found in any file, sorted, then those of ``EXTRA_COLUMNS`` that some file
        holds (``micro_auc_ci95_low`` / ``_high``: the bootstrap interval); undefined figures are NaN.

    Raises:
        MgenetError: no variant, or a metrics file without that score.
    """
    if not metrics:
        raise MgenetError("no ablation variant to tabulate; add some under ablation.variants in the config.")
    types = sorted({t for m in metrics.values() for t in m.get("scores", {}).get(score, {}).get("by_type", {})})
    rows = []
    for name, m in metrics.items():
        s = m.get("scores", {}).get(score)
        if s is None:
            raise MgenetError(f"ablation variant {name!r}: its metrics.json has no {score!r} score "
                              f"(it has {sorted(m.get('scores', {}))}); rerun its evaluation.")
        f = (fusion or {}).get(name) or {}
        row = {"variant": name, "description": (descriptions or {}).get(name, ""),
               "fusion": fusion_formula(f.get("weights", {}), f.get("motion_score", "mo")),
               "micro_auc": _num(s.get("micro_auc")), "macro_auc": _num(s.get("macro_auc"))}
        row.update({f"auc_{t}": _num(s.get("by_type", {}).get(t)) for t in types})
        ci = s.get("micro_auc_ci95") or [None, None]
        row.update({"micro_auc_ci95_low": _num(ci[0]), "micro_auc_ci95_high": _num(ci[1])})
        row.update({c: _num(s.get(c)) for c in EXTRA_COLUMNS[2:]})
        rows.append(row)
    extra = [c for c in EXTRA_COLUMNS if any(not math.isnan(r[c]) for r in rows)]
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *[f"auc_{t}" for t in types], *extra])


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def ablation_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of :func:`ablation_table` (AUCs rounded, undefined shown as –)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---:" if c.startswith(("micro", "macro", "auc_", "rbdc", "tbdc")) else "---"
                          for c in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


@dataclass
class AblationTableSettings(FromDict):
    """``--params`` of ablation-table: the dataset's name, each variant's description and fusion section, and the
    score the table shows."""

    SECTION: ClassVar[str] = "ablation table"

    dataset: str = "the dataset"
    descriptions: dict = field(default_factory=dict)
    fusion: dict = field(default_factory=dict)
    score: str = "fused"


def ablation_table_job(metrics: Mapping[str, str | os.PathLike], out: str | os.PathLike, md: str | os.PathLike | None,
                       s: AblationTableSettings) -> pd.DataFrame:
    """`mgenet ablation-table`: the variants' metrics.json files (``metrics``: {variant: path}, in table order) as one
    table, written as CSV to ``out`` and markdown to ``md``."""
    from mgenet.io import read_named_metrics, write_summary

    df = ablation_table(read_named_metrics(metrics, "ablation variant", "ablation"), s.descriptions, s.fusion, s.score)
    write_summary(df, out, md, f"Ablations of {s.dataset} (score: {s.score})", ablation_markdown)
    log = logging.getLogger("mgenet")
    for row in df.itertuples(index=False):
        log.info("%-14s micro AUC %.4f  macro AUC %.4f", row.variant, row.micro_auc, row.macro_auc)
    log.info("%d variants -> %s%s", len(df), out, f", {md}" if md else "")
    return df
