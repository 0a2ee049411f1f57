# Scores: per-segment component scores, fused frame scores, and the evaluation (metrics.json, plots, report).


# One set of rules per scored split: the test split (the final figures), the validation split (where settings are
# chosen, `snakemake tune`) and the training split (its segment scores, for fusion.normalise: train). Paths of the
# test split keep their short names; the others carry the split (scores/segments_val.parquet, ...).
for _split in SCORED_SPLITS:
    _sfx = split_suffix(_split)

    if STAGE2:

        # S_nf from the flow file joined with stage 2's S_mo, S_app, S_mm (and Table 3's level-1 measurements)
        rule:
            name:
                f"score_components{_sfx}"
            input:
                flow=f"{R}/flow/{_split}.h5",
                model=f"{R}/models/stage2.pt",
                features=lambda wc, s=_split: _features_of(wc, s),
            output:
                f"{R}/scores/segments{_sfx}.parquet",
            params:
                score=stage2_score_params(),
            # one thread: the test, validation and training splits are then scored side by side on a few cores
            threads: 1
            priority: PRIORITY["scores"]
            resources:
                gpu=gpus(stage2=True),
            log:
                f"{R}/logs/score/score_components{_sfx}.log",
            benchmark:
                f"{R}/benchmarks/score_components{_sfx}.tsv"
            conda:
                "../../envs/models.yaml"
            shell:
                "mgenet --threads {threads} score --flow {input.flow:q} --stage2 {input.model:q}"
                " --features {input.features:q} --params {params.score:q} --out {output:q} > {log:q} 2>&1"

    else:

        rule:
            name:
                f"score_components{_sfx}"
            input:
                flow=f"{R}/flow/{_split}.h5",
            output:
                f"{R}/scores/segments{_sfx}.parquet",
            log:
                f"{R}/logs/score/score_components{_sfx}.log",
            conda:
                "../../envs/core.yaml"
            shell:
                "mgenet score --flow {input.flow:q} --out {output:q} > {log:q} 2>&1"

    if _split == "train":
        continue

    rule:
        name:
            f"fuse_scores{_sfx}"
        input:
            scores=f"{R}/scores/segments{_sfx}.parquet",
            manifest=f"{R}/manifest.csv",
            # read through the manifest's gt_path and params.intervals: inputs, so edits rerun
            truth=lambda wc, s=_split: get_ground_truth(wc, s),
            train=train_scores(f"{R}/scores/segments_train.parquet"),
            # the enabled baselines' per-frame scores of the test videos, smoothed and added as columns
            baselines=get_baseline_scores if _split == "test" else [],
        output:
            f"{R}/scores/frames{_sfx}.parquet",
        params:
            fusion=params_json("fusion", "score"),
            intervals=intervals_path(),
            split=_split,
        log:
            f"{R}/logs/score/fuse_scores{_sfx}.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet fuse --scores {input.scores:q} --manifest {input.manifest:q} --intervals {params.intervals:q}"
            " --split {params.split:q} --train-scores={input.train:q} --baselines {input.baselines:q}"
            " --params {params.fusion:q} --out {output:q} > {log:q} 2>&1"


# The report's provenance hashes the models and reads the features' backbone checkpoint hash: both are upstream of
# the frame scores already, so listing them as inputs adds no work. The ablation table is deliberately not an input:
# it comes from the separate `ablation` target, and as an input it would make `all` train and score every ablation
# variant. Instead the report shows eval/ablation.csv when it exists as the DAG is built; its path and sha256 are
# params, so after `snakemake ablation` (or when the table changes) the next `snakemake` reruns this rule alone.
# The summaries over seeds (`snakemake seeds`, eval/seeds.csv) and over matching-memory seeds (`snakemake
# matching_seeds`, eval/matching_seeds.csv) are shown the same way.
# RBDC / TBDC: the dataset's boxes file is read when it exists (see boxes_path); the detections are the test
# segments' boxes with their scores, fused as rule fuse_scores fuses them.
rule evaluate:
    input:
        frames=f"{R}/scores/frames.parquet",
        segments=f"{R}/scores/segments.parquet",
        segment_files=get_test_segments,
        models=report_models(),
        features=get_report_features,
        validation=get_validation_metrics,
        train=train_scores(f"{R}/scores/segments_train.parquet"),
        weak_split=get_weak_split,  # every score also on its test videos; AR-Net only there
        paper=get_paper_protocol,  # baselines' figures under their paper's own protocol (metrics.json paper_protocol)
    output:
        metrics=f"{R}/eval/metrics.json",
        report=f"{R}/eval/report.html",
        plots=directory(f"{R}/eval/plots"),
    params:
        evaluate=evaluate_params(fusion=config["fusion"], config=config),
        boxes=boxes_path(),
        ablation=ABLATION_TABLE,
        ablation_sha256=content_sha256(ABLATION_TABLE),
        seeds=SEEDS_TABLE,
        seeds_sha256=content_sha256(SEEDS_TABLE),
        matching_seeds=MATCHING_SEEDS_TABLE,
        matching_seeds_sha256=content_sha256(MATCHING_SEEDS_TABLE),
        tuning=TUNING_TABLE,
        tuning_sha256=content_sha256(TUNING_TABLE),
    log:
        f"{R}/logs/eval/evaluate.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output.metrics:q}"
        " --report {output.report:q} --plots {output.plots:q} --weak-split={input.weak_split:q}"
        " --ablation={params.ablation:q}"
        " --seeds={params.seeds:q} --matching-seeds={params.matching_seeds:q} --boxes={params.boxes:q}"
        " --validation={input.validation:q} --tuning={params.tuning:q} --train-scores={input.train:q}"
        " --segments {input.segments:q} --segment-files {input.segment_files:q}"
        " --models {input.models:q} --features {input.features:q} --paper-protocol {input.paper:q} > {log:q} 2>&1"


# The validation split, evaluated exactly like the test split (the same fusion, smoothing and figures) into its own
# metrics.json; the test report shows it (input validation of rule evaluate). No report of its own.
rule evaluate_val:
    input:
        frames=f"{R}/scores/frames_val.parquet",
        segments=f"{R}/scores/segments_val.parquet",
        segment_files=lambda wc: get_split_segments(wc, "val"),
        train=train_scores(f"{R}/scores/segments_train.parquet"),
    output:
        metrics=f"{R}/eval/val_metrics.json",
    params:
        evaluate=evaluate_params(fusion=config["fusion"]),
        boxes=boxes_path(),
    log:
        f"{R}/logs/eval/evaluate_val.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output.metrics:q}"
        " --boxes={params.boxes:q} --segments {input.segments:q} --segment-files {input.segment_files:q}"
        " --train-scores={input.train:q} > {log:q} 2>&1"
