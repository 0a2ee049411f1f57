# Scores: per-segment component scores, fused frame scores, and the evaluation (metrics.json, plots, report), each
# rule written once for every run (runs.smk) and every scored split. The split is a `{split_sfx}` suffix: the test
# split's files keep their short names (scores/segments.parquet, scores/frames.parquet), the others carry the split
# (scores/segments_val.parquet for `snakemake tune` and rule evaluate_val, scores/segments_train.parquet for
# fusion.normalise: train). The training split is scored, never fused.


if STAGE2:

    # S_nf from the flow file joined with stage 2's S_mo, S_app, S_mm (and Table 3's level-1 measurements). A run
    # whose M^r was written again keeps its base run's scores but S_mm (--base): the rewrite cannot change them, so
    # the mask encoder's passes are not run again.
    rule score_components:
        input:
            flow=get_run_latents,
            model=get_run_model,
            features=get_split_features,
            base=get_base_scores,
        output:
            f"{R}/{{run_dir}}scores/segments{{split_sfx}}.parquet",
        params:
            score=get_score_params,
        wildcard_constraints:
            run_dir=RUN_DIRS["scores"],
            split_sfx="|_val|_train",
        threads: score_threads
        priority: PRIORITY["scores"]
        resources:
            gpu=gpus(stage2=True),
        log:
            f"{R}/logs/{{run_dir}}score/score_components{{split_sfx}}.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}score_components{{split_sfx}}.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score --flow {input.flow:q} --stage2 {input.model:q}"
            " --features {input.features:q} --base={input.base:q} --params {params.score:q} --out {output:q}"
            " > {log:q} 2>&1"

else:

    rule score_components:
        input:
            flow=get_run_latents,
        output:
            f"{R}/{{run_dir}}scores/segments{{split_sfx}}.parquet",
        wildcard_constraints:
            run_dir=RUN_DIRS["scores"],
            split_sfx="|_val|_train",
        log:
            f"{R}/logs/{{run_dir}}score/score_components{{split_sfx}}.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}score_components{{split_sfx}}.tsv"
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet score --flow {input.flow:q} --out {output:q} > {log:q} 2>&1"


rule fuse_scores:
    input:
        scores=get_run_segments,  # the run's own, or the main run's for an ablation that only fuses anew
        manifest=f"{R}/manifest.csv",
        # read through the manifest's gt_path and params.intervals: inputs, so edits rerun
        truth=get_run_truth,
        train=get_run_train_scores,
        # the enabled baselines' per-frame scores of the test videos (the run's seed's), smoothed and added as columns
        baselines=get_run_baselines,
    output:
        f"{R}/{{run_dir}}scores/frames{{split_sfx}}.parquet",
    params:
        fusion=get_fusion_params,
        intervals=intervals_path(),
        split=split_of,
    wildcard_constraints:
        run_dir=RUN_DIRS["fused"],
        split_sfx="|_val",
    log:
        f"{R}/logs/{{run_dir}}score/fuse_scores{{split_sfx}}.log",
    benchmark:
        f"{R}/benchmarks/{{run_dir}}fuse_scores{{split_sfx}}.tsv"
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
# UBnormal: each test video's anomalous objects' boxes per frame, from its object masks (RBDC / TBDC).
rule ubnormal_boxes:
    input:
        manifest=f"{R}/manifest.csv",
        annotations=get_annotation_dirs_of_test,
    output:
        f"{R}/gt/anomaly_boxes.csv",
    params:
        root=DATA_ROOT,
    log:
        f"{R}/logs/eval/ubnormal_boxes.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet ubnormal-boxes --manifest {input.manifest:q} --root {params.root:q} --out {output:q} > {log:q} 2>&1"


rule evaluate:
    input:
        frames=f"{R}/scores/frames.parquet",
        boxes=get_boxes,  # UBnormal's, made by ubnormal_boxes (other datasets': a param, read where it exists)
        segments=f"{R}/scores/segments.parquet",
        segment_files=get_test_segments,
        models=report_models(),
        features=get_report_features,
        validation=get_validation_metrics,
        train=get_run_train_scores,
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
    benchmark:
        f"{R}/benchmarks/evaluate.tsv"
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


# Every other run's test split, evaluated like the main run's (the same figures) into its own metrics.json, without
# the main run's report; an ablation leaves the weak split out (get_run_weak_split).
rule evaluate_run:
    input:
        frames=f"{R}/{{run_dir}}scores/frames.parquet",
        segments=get_run_segments,
        segment_files=get_test_segments,
        train=get_run_train_scores,
        weak_split=get_run_weak_split,
    output:
        f"{R}/{{run_dir}}eval/metrics.json",
    params:
        evaluate=get_evaluate_params,
        boxes=boxes_path(),
    wildcard_constraints:
        run_dir=RUN_DIRS["variant"],
    log:
        f"{R}/logs/{{run_dir}}eval/evaluate.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output:q}"
        " --weak-split={input.weak_split:q} --boxes={params.boxes:q} --segments {input.segments:q}"
        " --segment-files {input.segment_files:q} --train-scores={input.train:q} > {log:q} 2>&1"


# The validation split, evaluated exactly like the test split (the same fusion, smoothing and figures) into its own
# metrics.json, for the main run (the test report shows it: input validation of rule evaluate) and for every
# training seed (`snakemake seeds_val`). No report of its own.
rule evaluate_val:
    input:
        frames=f"{R}/{{run_dir}}scores/frames_val.parquet",
        segments=get_run_val_segments,
        segment_files=get_val_segments,
        train=get_run_train_scores,
    output:
        metrics=f"{R}/{{run_dir}}eval/val_metrics.json",
    params:
        evaluate=get_evaluate_params,
        boxes=boxes_path(),
    wildcard_constraints:
        run_dir=RUN_DIRS["fused"],
    log:
        f"{R}/logs/{{run_dir}}eval/evaluate_val.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output.metrics:q}"
        " --boxes={params.boxes:q} --segments {input.segments:q} --segment-files {input.segment_files:q}"
        " --train-scores={input.train:q} > {log:q} 2>&1"
