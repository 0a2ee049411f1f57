# Runs: the main run and its variants (training seeds, matching-memory seeds, ablations, tuning candidates) in one
# table. The model, score and evaluation rules are each written once over a `{run_dir}` path prefix: "" for the main run
# (results/{ds}/models/flow.pt, its paths as they always were) and "runs/<run>/" for a variant
# (results/{ds}/runs/seed1/models/flow.pt); logs and benchmarks put the same prefix after logs/ and benchmarks/.
# Snakemake (9.x) matches a wildcard to the empty string when its constraint allows it, so the prefix is constrained,
# per rule, to exactly the runs it makes (RUN_DIRS below): no two rules match the same file, and a run that
# reuses an artifact of another run (a fusion-only ablation fuses the main segment scores) has no rule that could
# make its own copy. A rule's input functions and params look the run up here (run_of).
#
# A run's entry says what it sets and what it takes from which run:
#   seed        training seed of its flow, stage 2 and per-seed baselines
#   flow        run whose flow model and latents it uses (itself when it trains its own flow)
#   stage2      "train" (its own model, `stage2` settings), "rewrite" (M^r of `base`'s model written again from
#               `mseed`, `mgenet rewrite-matching`) or None (scores with `model`'s)
#   model       run whose stage-2 model it scores with
#   base        with "rewrite": run whose segment scores it keeps but S_mm (`mgenet score --base`)
#   segments    run whose segment scores it fuses and evaluates (itself unless a fusion-only ablation)
#   fuses       whether it fuses and evaluates (a tuning candidate only scores the validation split for rule tune)
#   baselines   run whose baseline tables its test frames carry (None: no baselines, the ablations')
#   weak        whether its evaluation reports the weak split too (every test run but the ablations)
#   fusion, score, stage2_cfg, score_params: its config sections; score_params is the JSON its scoring uses

MAIN = "main"


def run_dir(run):
    """The path prefix of a run's artifacts under results/{ds}/ (and under logs/ and benchmarks/)."""
    return "" if run == MAIN else f"runs/{run}/"


def _run(**spec):
    base = dict(seed=config["seed"], flow=MAIN, stage2=None, model=MAIN, base=None, mseed=None, segments=None,
                fuses=True, baselines=None, weak=True, fusion=config["fusion"], score=config["score"],
                stage2_cfg=config["stage2"], score_params=stage2_score_params())
    return {**base, **spec}


# ---------------------------------------------------------------------------------------------------- ablations
# Each variant of ablation.variants is the main config with its stage2 / fusion keys merged over it. Variants whose
# stage-2 settings equal the main ones reuse the main model and segment scores; only fusion then differs.


def merged(base, override):
    """`override` merged key by key over `base` (mappings recurse, anything else replaces), as config files merge."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _variant(name, spec):
    full = merged(config, {"stage2": spec.get("stage2", {}), "fusion": spec.get("fusion", {})})
    with user_errors():
        validate_config(lambda d: validate(d, schema="../schemas/config.schema.yaml", set_default=True), full,
                        where=f"ablation.variants.{name}: ")
    if full["stage2"]["mm_form"] != config["stage2"]["mm_form"]:
        # a variant scores with the main model unless it retrains, and always with the main scoring params
        fail(
            f"ablation.variants.{name}: stage2.mm_form differs from the main config's (ablation.variants.{name}."
            "stage2.mm_form); a variant cannot change how S_mm is scored (set it in the main config, or compare the"
            " two forms with two runs)."
        )
    return full


ABLATIONS = {name: _variant(name, spec) for name, spec in config["ablation"]["variants"].items()}


def _own_stage2(name):
    """Whether a variant needs a stage-2 model of its own (its training settings differ from the main ones)."""
    return stage2_params(ABLATIONS[name]["stage2"]) != stage2_params(config["stage2"])


# ---------------------------------------------------------------------------------------------------- tuning
# The stage2.* keys of tune.grid, one value at a time around the main config, each a candidate with its own stage 2
# (but stage2.mm_form, a scoring-time setting, which rescores the main model); "main" is the main model itself.
# With tune.seeds, each candidate is a run under each of those training seeds (tune_run, below).


def _dotted(cfg, key):
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _tune_grid():
    """tune.grid as it applies to this config: without stage 2 (pose-only runs, STG-NF alone) its stage-2 keys and the
    stage-2 components' weights name nothing to tune, and are left out (said at start, not an error: config.yaml's
    demo grid is inherited by every config)."""
    grid = {k: v for k, v in config["tune"]["grid"].items() if v is not None}  # null: left out (see the schema)
    if not STAGE2:
        dropped = [k for k in grid if k.startswith("stage2.") or k.split(".")[-1] in STAGE2_COMPONENTS]
        for k in dropped:
            del grid[k]
        if dropped and not POSE_ONLY:  # else the pose-only line has said it
            print(f"mgenet: stage2.enabled is false: tune.grid's {', '.join(dropped)} are left out.", file=sys.stderr)
    return grid


TUNE_GRID = _tune_grid()


def _tune_candidates():
    out = {}
    for key, values in TUNE_GRID.items():
        if not key.startswith("stage2."):
            continue
        for v in values:
            if _dotted(config, key) == v:
                continue
            text = v if isinstance(v, str) else json.dumps(v)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{key.split('.')[-1]}-{text}").strip("_")
            override = {}
            node = override
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = v
            full = merged(config, override)
            with user_errors():
                validate_config(lambda d: validate(d, schema="../schemas/config.schema.yaml", set_default=True),
                                full, where=f"tune.grid.{key}: value {v!r}: ")
            out[name] = {"override": override, "stage2": full["stage2"], "retrain": key != "stage2.mm_form"}
    retrained = [k for k, v in out.items() if v["retrain"]]
    if len(retrained) > config["tune"]["max_retrain"]:
        fail(
            f"tune.grid asks for {len(retrained)} retrained stage-2 candidates ({', '.join(retrained)}) but"
            f" tune.max_retrain is {config['tune']['max_retrain']} (tune.max_retrain): raise the budget or list fewer"
            " stage2.* values."
        )
    return out


TUNE_CANDIDATES = _tune_candidates() if STAGE2 else {}
# the training segments' scores are read when some setting normalises by them
TUNE_TRAIN = config["fusion"].get("normalise") == "train" or "train" in TUNE_GRID.get("fusion.normalise", [])


# ---------------------------------------------------------------------------------------------------- the table
# Seeds: the main seed's run stands in for itself; the other seeds train the flow, stage 2 and the per-seed
# baselines again on the same features. Matching seeds: the main seed's M^r is the main run's own.
SEEDS = [s for s in config["seeds"] if s != config["seed"]]
MATCHING_SEEDS = [s for s in config["matching_seeds"] if s != config["seed"]]
# tune.seeds: every tuning candidate under each of these training seeds (empty: the main seed's alone); a seed's
# main candidate is its seed run, which these add to the table when `seeds` does not list them
TUNE_SEEDS = config["tune"]["seeds"]
TRAIN_SEEDS = SEEDS + [s for s in TUNE_SEEDS if s != config["seed"] and s not in SEEDS]


def seed_run(seed):
    """The run of a training seed (the main run for the main seed)."""
    return MAIN if seed == config["seed"] else f"seed{seed}"


def mseed_run(mseed):
    """The run of a matching-memory seed on the main model (the main run for the main seed)."""
    return MAIN if mseed == config["seed"] else f"mseed{mseed}"


def seed_mseed_run(seed, mseed):
    """The run of a (training seed, matching seed) pair: the main seed's are the matching-seed runs, a model's own
    seed is its seed run (its matching pass ran with it), the rest write M^r of the seed's model again."""
    if seed == config["seed"]:
        return mseed_run(mseed)
    return seed_run(seed) if mseed == seed else f"seed{seed}_mseed{mseed}"


def tune_run(name, seed):
    """The run of tuning candidate ``name`` (the main model's: "main") under training seed ``seed``: the main seed's
    are tune_<candidate>, another seed's seed<s>_tune_<candidate>, and "main" is the seed's own run."""
    if name == MAIN:
        return seed_run(seed)
    return f"tune_{name}" if seed == config["seed"] else f"seed{seed}_tune_{name}"


def _runs():
    runs = {MAIN: _run(stage2="train", segments=MAIN, baselines=MAIN)}
    for s in TRAIN_SEEDS:
        r = seed_run(s)
        runs[r] = _run(seed=s, flow=r, stage2="train" if STAGE2 else None, model=r, segments=r, baselines=r)
    if STAGE2 and config["matching_seeds"]:
        pairs = [(config["seed"], m) for m in MATCHING_SEEDS]
        pairs += [(s, m) for s in (SEEDS if config["seeds"] else []) for m in config["matching_seeds"] if m != s]
        for s, m in pairs:
            r, of = seed_mseed_run(s, m), seed_run(s)
            runs[r] = _run(seed=s, flow=of, stage2="rewrite", mseed=m, base=of, model=r, segments=r, baselines=of)
    for name, v in ABLATIONS.items() if STAGE2 else ():
        r = f"abl_{name}"
        own = r if _own_stage2(name) else MAIN
        runs[r] = _run(stage2="train" if own == r else None, model=own, segments=own, fusion=v["fusion"],
                       score=v["score"], stage2_cfg=v["stage2"], weak=False)
    for name, c in TUNE_CANDIDATES.items():
        s2 = c["stage2"]
        params = json.dumps({"batch_size": s2["score_batch_size"], "device": config["device"], "mm_form": s2["mm_form"]},
                            sort_keys=True)
        # under seed s: trained on the seed's flow latents with the seed, or rescoring the seed's model
        for s in TUNE_SEEDS or [config["seed"]]:
            r, own = tune_run(name, s), seed_run(s)
            runs[r] = _run(seed=s, flow=own, stage2="train" if c["retrain"] else None,
                           model=r if c["retrain"] else own, segments=r, fuses=False, stage2_cfg=s2,
                           score_params=params)
    return runs


RUNS = _runs()


def run_dirs(makes):
    """The `{run_dir}` constraint of a rule that makes the runs whose entry satisfies ``makes`` (an alternation of
    their prefixes, the main run's being empty; one that matches nothing when there is none)."""
    dirs = [re.escape(run_dir(r)) for r, spec in RUNS.items() if makes(r, spec)]
    return f"(?:{'|'.join(dirs)})" if dirs else "(?!)"


# The runs each rule makes (the constraint of its {run_dir})
RUN_DIRS = {
    "any": run_dirs(lambda r, s: True),  # the global constraint (Snakefile); each rule narrows it to what it makes
    "flow": run_dirs(lambda r, s: s["flow"] == r),  # train_flow, encode_flow
    "stage2": run_dirs(lambda r, s: s["stage2"] == "train"),  # train_stage2
    "rewrite": run_dirs(lambda r, s: s["stage2"] == "rewrite"),  # rewrite_matching
    "scores": run_dirs(lambda r, s: s["segments"] == r),  # score_components
    "fused": run_dirs(lambda r, s: s["fuses"]),  # fuse_scores, evaluate_val
    "variant": run_dirs(lambda r, s: s["fuses"] and r != MAIN),  # evaluate_run (the main run's is rule evaluate)
    "baselines": run_dirs(lambda r, s: s["baselines"] == r),  # the baselines' rules: the main run and each seed
}


def run_of(wildcards):
    """The run id of a job (its `{run_dir}` wildcard; the main run for rules without one)."""
    prefix = getattr(wildcards, "run_dir", "")
    return prefix[len("runs/"):-1] if prefix else MAIN


def run_spec(wildcards):
    return RUNS[run_of(wildcards)]


def split_of(wildcards):
    """The split of a `{split_sfx}` path: the test split's files keep their short names (scores/segments.parquet),
    the others carry the split (scores/segments_val.parquet, scores/segments_train.parquet)."""
    return {"": "test", "_val": "val", "_train": "train"}[wildcards.split_sfx]


def _in(run, path):
    """``path`` (relative to results/{ds}/) of ``run``."""
    return f"{R}/{run_dir(run)}{path}"


# ---------------------------------------------------------------------------------------------------- input functions
def get_run_flow_params(wildcards):
    return params_json("flow", "device", seg_len=config["segments"]["seg_len"], seed=run_spec(wildcards)["seed"])


def get_run_latents(wildcards):
    """The flow latents of the job's split (`{split}` or `{split_sfx}`; train for training) of the run's flow."""
    split = split_of(wildcards) if hasattr(wildcards, "split_sfx") else "train"
    return _in(run_spec(wildcards)["flow"], f"flow/{split}.h5")


def get_run_stage2_params(wildcards):
    spec = run_spec(wildcards)
    return stage2_params(spec["stage2_cfg"], seed=spec["seed"])


def get_rewrite_base_model(wildcards):
    """The model whose matching memory a rewrite writes again (rule rewrite_matching)."""
    return _in(run_spec(wildcards)["base"], "models/stage2.pt")


def get_matching_seed(wildcards):
    return str(run_spec(wildcards)["mseed"])


def get_run_model(wildcards):
    """The stage-2 model a run scores with: its own, or the main one (fusion-only ablations, stage2.mm_form)."""
    return _in(run_spec(wildcards)["model"], "models/stage2.pt")


def get_split_features(wildcards):
    return _features_of(wildcards, split_of(wildcards))


def get_base_scores(wildcards):
    """With an M^r rewrite, the segment scores of its base run that score --base keeps but for S_mm."""
    spec = run_spec(wildcards)
    return [_in(spec["base"], f"scores/segments{wildcards.split_sfx}.parquet")] if spec["base"] else []


def get_score_params(wildcards):
    return run_spec(wildcards)["score_params"]


def score_threads(wildcards):
    """Threads of score_components: one, so that the splits are scored side by side on a few cores; two for an M^r
    rewrite, which runs the RGB encoder alone (as it always had)."""
    return 2 if run_spec(wildcards)["stage2"] == "rewrite" else 1


def _split_sfx(wildcards):
    return getattr(wildcards, "split_sfx", "")


def get_run_segments(wildcards):
    """The segment scores a run fuses and evaluates: its own, or the main run's (a fusion-only ablation)."""
    return _in(run_spec(wildcards)["segments"], f"scores/segments{_split_sfx(wildcards)}.parquet")


def get_run_val_segments(wildcards):
    return _in(run_spec(wildcards)["segments"], "scores/segments_val.parquet")


def get_run_train_scores(wildcards):
    """The training segment scores of the run whose segments it fuses, when its fusion is scaled by them."""
    spec = run_spec(wildcards)
    return [_in(spec["segments"], "scores/segments_train.parquet")] if spec["fusion"]["normalise"] == "train" else []


def get_run_truth(wildcards):
    return get_ground_truth(wildcards, split_of(wildcards))


def get_run_baselines(wildcards):
    """The enabled baselines' per-frame tables of the run's test frames (its seed's run trains them), by method."""
    spec = run_spec(wildcards)
    if split_of(wildcards) != "test" or spec["baselines"] is None:
        return []
    return [_in(spec["baselines"], BASELINE_SCORES[m]) for m in sorted(BASELINE_SCORES)]


def get_fusion_params(wildcards):
    spec = run_spec(wildcards)
    return json.dumps({**spec["fusion"], **spec["score"]}, sort_keys=True)


def get_evaluate_params(wildcards):
    """A run's evaluation settings: the main ones, with the run's fusion for its RBDC / TBDC detections."""
    return evaluate_params(fusion=run_spec(wildcards)["fusion"])


def get_run_weak_split(wildcards):
    return get_weak_split(wildcards) if run_spec(wildcards)["weak"] else []


def get_run_seed(wildcards):
    return run_spec(wildcards)["seed"]


# ---------------------------------------------------------------------------------------------------- studies
def metrics_path(run, split="test"):
    return _in(run, "eval/metrics.json" if split == "test" else "eval/val_metrics.json")


def get_seed_metrics(wildcards):
    """Every seed's metrics.json, named by the seed, in the config's order (the main run's for the main seed)."""
    return {str(s): metrics_path(seed_run(s)) for s in config["seeds"]}


def get_seed_val_metrics(wildcards):
    """Every seed's validation metrics, named by the seed (the main run's eval/val_metrics.json for the main seed)."""
    return {str(s): metrics_path(seed_run(s), "val") for s in config["seeds"]}


def get_matching_seed_metrics(wildcards):
    """Every matching seed's metrics.json, named by the seed (the main run's for the main seed)."""
    return {str(m): metrics_path(mseed_run(m)) for m in config["matching_seeds"]}


def get_seed_matching_metrics(wildcards):
    """metrics.json of every (training seed, matching seed) run, named SEED-MSEED."""
    return {f"{s}-{m}": metrics_path(seed_mseed_run(s, m)) for s in config["seeds"] for m in config["matching_seeds"]}


# The summaries over seeds (seeds.smk): their runs' metrics, and whether the config asks for them
SEED_TABLES = {
    "seeds": dict(metrics=get_seed_metrics, enabled=config["seeds"], params={}),
    "matching_seeds": dict(metrics=get_matching_seed_metrics, enabled=STAGE2 and config["matching_seeds"],
                           params={"title": f"AUC over matching-memory seeds (M^r written again), {DS}"}),
    "seeds_matching": dict(metrics=get_seed_matching_metrics,
                           enabled=STAGE2 and config["seeds"] and config["matching_seeds"],
                           params={"title": f"AUC over training seeds x matching-memory seeds, {DS}"}),
    "seeds_val": dict(metrics=get_seed_val_metrics, enabled=config["seeds"],
                      params={"title": f"Validation AUC over seeds, {DS}"}),
}


def get_seed_table_metrics(wildcards):
    return SEED_TABLES[wildcards.table]["metrics"](wildcards)


def seed_table_params(wildcards):
    """The table's settings: the dataset, and for every summary but `seeds` its target and title."""
    extra = SEED_TABLES[wildcards.table]["params"]
    return json.dumps({"dataset": DS, **({"target": wildcards.table} if extra else {}), **extra})


def get_ablation_metrics(wildcards):
    """Every variant's metrics.json, named by the variant, in the config's order."""
    return {name: metrics_path(f"abl_{name}") for name in ABLATIONS}


def named_args(wildcards, input):
    """NAME=PATH arguments, one list item each, so that the shell line quotes every one (`{params.metrics:q}`)."""
    return [f"{name}={path}" for name, path in input.items()]


def _tune_files():
    """Rule tune's segment scores by input name: val_<candidate> (and train_<candidate> where some setting normalises
    by the training segments), val_<candidate>@<seed> for each of tune.seeds."""
    files = {}
    for split in ["val", "train"] if TUNE_TRAIN else ["val"]:
        for name in [MAIN, *TUNE_CANDIDATES]:
            for s in TUNE_SEEDS or [None]:
                run = tune_run(name, config["seed"] if s is None else s)
                key = name if s is None else f"{name}@{s}"
                files[f"{split}_{key}"] = _in(run, f"scores/segments_{split}.parquet")
    return files


def get_tune_inputs(wildcards):
    return _tune_files()


def tune_args(prefix):
    """NAME=PATH arguments of the candidates' segment scores whose input name starts with ``prefix`` (quoted one
    by one by `{params...:q}`)."""
    return [f"{k[len(prefix):]}={v}" for k, v in _tune_files().items() if k.startswith(prefix)]


def tune_params():
    return json.dumps(
        {
            "grid": TUNE_GRID,
            "metric": config["tune"]["metric"],
            "fusion": config["fusion"],
            "smoothing_sigmas": config["score"]["smoothing_sigmas"],
            "overrides": {k: v["override"] for k, v in TUNE_CANDIDATES.items()},
            # only when set: without seeds the params (and so rule tune's rerun trigger) are as they were
            **({"seeds": TUNE_SEEDS} if TUNE_SEEDS else {}),
        },
        sort_keys=True,
    )


def summary_table(name, enabled):
    """eval/{name}.csv if the config asks for it (``enabled``) and `snakemake {name}` has made it, else "": the report
    shows the ablation table and the summaries over seeds when they exist (see rule evaluate)."""
    path = f"{R}/eval/{name}.csv"
    return path if enabled and Path(path).is_file() else ""


ABLATION_TABLE = summary_table("ablation", STAGE2 and ABLATIONS)  # ablations need stage 2
SEEDS_TABLE = summary_table("seeds", config["seeds"])
MATCHING_SEEDS_TABLE = summary_table("matching_seeds", STAGE2 and config["matching_seeds"])
TUNING_TABLE = summary_table("tuning", True)
