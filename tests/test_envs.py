"""The conda envs of `--sdm conda`: every rule names one that exists, and each pins what requirements.txt pins.

Conda itself is not needed here (nor installed in CI): these tests read the env files and the rules' text.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
STAGE_ENVS = ("core", "models", "pose", "features")
RULE = re.compile(r"^(\s*)(?:rule|checkpoint) (\w+):\s*$")
LOOP_RULE = re.compile(r"^(\s*)rule:()\s*$")  # a rule named by its name: directive (score.smk's loop)


def _pins(lines) -> dict[str, str]:
    """name (normalised) -> version of every `name==version` line."""
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


REQUIREMENTS = _pins((REPO / "requirements.txt").read_text().splitlines())
NODEPS = _pins((REPO / "requirements-nodeps.txt").read_text().splitlines())
CORE = [re.split(r"[<>=\[ ]", d)[0].lower() for d in
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]


def _env_pip(name: str) -> list[str]:
    env = yaml.safe_load((ENVS / f"{name}.yaml").read_text())
    assert set(env) == {"channels", "dependencies"}, name
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip) == 1, f"{name}.yaml: one pip section expected"
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]
    return pip[0]


def rule_envs() -> dict[str, Path]:
    """Every rule / checkpoint with a shell command in workflow/rules/*.smk -> its conda env file, resolved as
    Snakemake does (relative to the rules file)."""
    out = {}
    for smk in sorted((REPO / "workflow" / "rules").rglob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            m = RULE.match(line) or LOOP_RULE.match(line)
            if not m:
                continue
            indent, block = len(m.group(1)), []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt.strip())
            name = m.group(2)
            if not name:  # `rule:` named in a loop over the scored splits: name: f"fuse_scores{_sfx}"
                name = re.search(r'f"(\w+)\{_sfx\}"', block[block.index("name:") + 1]).group(1)
            if "shell:" not in block:
                continue  # a target rule (all, ablation): runs nothing
            assert "conda:" in block, f"{smk.name}: rule {name} has no conda: directive"
            path = block[block.index("conda:") + 1].strip('"')
            out[f"{smk.name}:{name}"] = (smk.parent / path).resolve()
    return out


def test_every_rule_names_an_env_that_exists():
    envs = rule_envs()
    assert len(envs) >= 10
    for rule, path in envs.items():
        assert path.is_file(), f"{rule}: {path} does not exist"
        assert path.parent == ENVS, rule
    by_rule = {k.split(":")[1]: v.stem for k, v in envs.items()}
    assert by_rule["extract_pose"] == "pose" and by_rule["extract_features"] == "features"
    assert by_rule["train_flow"] == by_rule["train_stage2"] == "models"
    assert by_rule["build_segments"] == by_rule["fuse_scores"] == by_rule["evaluate"] == "core"


@pytest.mark.parametrize("name", STAGE_ENVS)
def test_stage_env_pins_agree_with_requirements(name):
    pip = _env_pip(name)
    assert pip[-1] == "-e .." and (ENVS / ".." / "pyproject.toml").is_file()  # conda runs pip from envs/
    pins = _pins(pip)
    assert len(pins) == len(pip) - 1, f"{name}.yaml: every package but the repository must be pinned"
    for pkg, version in pins.items():
        assert REQUIREMENTS.get(pkg) == version, f"{name}.yaml pins {pkg}=={version}, requirements.txt " \
                                                 f"{REQUIREMENTS.get(pkg)}"
    missing = [pkg for pkg in CORE if pkg not in pins]
    assert not missing, f"{name}.yaml lacks core dependencies {missing} (pyproject.toml): pip would pick any version"
    if name in ("models", "features"):
        assert pins["torch"] == "2.13.0" == REQUIREMENTS["torch"]
    else:
        assert "torch" not in pins


def test_post_deploy_scripts_install_the_nodeps_pins_without_dependencies():
    wanted = {"pose": {"mediapipe"}, "features": {"mmaction2", "mmengine", "mmcv-lite"}, "mgenet": set(NODEPS)}
    for name, pkgs in wanted.items():
        script = ENVS / f"{name}.post-deploy.sh"  # Snakemake's name for the script beside envs/<name>.yaml
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        installs = [line for line in text.splitlines() if "pip install" in line]
        assert len(installs) == 1 and "--no-deps" in installs[0], name
        pins = _pins(installs[0].split("--no-deps", 1)[1].split())
        assert pins == {p: NODEPS[p] for p in pkgs}, f"{script.name}: {pins} differ from requirements-nodeps.txt"
    assert not (ENVS / "core.post-deploy.sh").exists() and not (ENVS / "models.post-deploy.sh").exists()


def test_core_env_commands_import_no_model_or_pose_runtime():
    """The core env has no torch, pose runtimes or mmaction2: the commands its rules run must not import them."""
    blocked = ("torch", "mediapipe", "ai_edge_litert", "onnxruntime", "decord", "mmaction", "mmengine", "mmcv")
    modules = ("mgenet.cli", "mgenet.datasets.demo", "mgenet.datasets.adapters", "mgenet.io", "mgenet.pose.segments",
               "mgenet.scoring.components", "mgenet.scoring.fusion", "mgenet.evaluation.metrics", "mgenet.evaluation.report", "mgenet.studies.ablation",
               "mgenet.apps.inspect")
    code = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'{name} imported')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "from mgenet.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_torch_floor_keeps_weights_only_loading_safe():
    """torch.load(weights_only=True) could run a crafted file's code before torch 2.6 (CVE-2025-32434)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("models", "features"):
        torch_req = [r for r in extras[extra] if re.match(r"torch\b", r)]
        assert torch_req == ["torch>=2.6"], extra
    import torch

    assert tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6)
