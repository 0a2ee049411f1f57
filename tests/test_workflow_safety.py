"""The workflow against hostile names and changing datasets: every shell line quotes what it interpolates, and the
DAG notices when the dataset's files change."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from helpers import REPO

from mgenet.datasets.adapters import SAFE_NAME

# Interpolations that need no quoting: Snakemake's own integers.
UNQUOTED_OK = {"threads"}


def shell_commands(smk: Path) -> list[tuple[int, str]]:
    """(line number, command) of every `shell:` directive of a rules file, its string literals joined."""
    lines = smk.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("shell:"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            start, parts = i + 1, []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                if lines[i].strip().startswith(('"', "'")):
                    parts.append(ast.literal_eval(lines[i].strip()))
                i += 1
            out.append((start, "".join(parts)))
            continue
        i += 1
    return out


def unquoted_fields(command: str) -> list[str]:
    """The `{field}` interpolations of a shell command that lack Snakemake's `:q` (shell quoting)."""
    return [field for _, field, spec, _ in string.Formatter().parse(command)
            if field is not None and field not in UNQUOTED_OK and not (spec or "").endswith("q")]


def test_unquoted_fields_finds_what_a_shell_would_split():
    assert unquoted_fields("mgenet x --in {input:q} --out {output} --v {wildcards.video:q} > {log} 2>&1") == [
        "output", "log"]
    assert unquoted_fields("mgenet --threads {threads} x --p {params.a:q}") == []


def test_every_shell_line_of_every_rule_quotes_its_interpolations():
    commands = {(smk.name, line): cmd for smk in sorted((REPO / "workflow" / "rules").glob("*.smk"))
                for line, cmd in shell_commands(smk)}
    assert len(commands) >= 20  # every rule with a shell line was found (21 at the time of writing)
    bad = {where: unquoted_fields(cmd) for where, cmd in commands.items() if unquoted_fields(cmd)}
    assert bad == {}, f"unquoted interpolations (add :q): {bad}"
    assert all(cmd.startswith("mgenet ") for cmd in commands.values())  # rules stay thin


def test_video_wildcard_allows_exactly_the_names_indexing_allows():
    m = re.search(r'video=r"([^"]+)"', (REPO / "Snakefile").read_text())
    assert m and m.group(1) == SAFE_NAME
