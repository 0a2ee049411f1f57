# Scores: per-segment component scores, fused frame scores, and the evaluation (metrics.json, plots, report).


if STAGE2:

    # S_nf from the flow file joined with stage 2's S_mo, S_app, S_mm (and Table 3's level-1 measurements)
    rule score_components:
        input:
            flow=f"{R}/flow/test.h5",
            model=f"{R}/models/stage2.pt",
            features=get_test_features,
        output:
            f"{R}/scores/segments.parquet",
        params:
            score=stage2_score_params(),
        threads: 2
        resources:
            gpu=gpus(stage2=True),
        log:
            f"{R}/logs/score/score_components.log",
        benchmark:
            f"{R}/benchmarks/score_components.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score --flow {input.flow:q} --stage2 {input.model:q}"
            " --features {input.features:q} --params {params.score:q} --out {output:q} > {log:q} 2>&1"

else:

    rule score_components:
        input:
            flow=f"{R}/flow/test.h5",
        output:
            f"{R}/scores/segments.parquet",
        log:
            f"{R}/logs/score/score_components.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet score --flow {input.flow:q} --out {output:q} > {log:q} 2>&1"


rule fuse_scores:
    input:
        scores=f"{R}/scores/segments.parquet",
        manifest=f"{R}/manifest.csv",
        truth=get_ground_truth,  # read through the manifest's gt_path and params.intervals: inputs, so edits rerun
        baselines=get_baseline_scores,  # the enabled baselines' per-frame scores, smoothed and added as columns
    output:
        f"{R}/scores/frames.parquet",
    params:
        fusion=params_json("fusion", "score"),
        intervals=intervals_path(),
    log:
        f"{R}/logs/score/fuse_scores.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet fuse --scores {input.scores:q} --manifest {input.manifest:q} --intervals {params.intervals:q}"
        " --baselines {input.baselines:q} --params {params.fusion:q} --out {output:q} > {log:q} 2>&1"


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
    log:
        f"{R}/logs/eval/evaluate.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output.metrics:q}"
        " --report {output.report:q} --plots {output.plots:q} --weak-split={input.weak_split:q}"
        " --ablation={params.ablation:q} --seeds={params.seeds:q} --matching-seeds={params.matching_seeds:q}"
        " --boxes={params.boxes:q} --segments {input.segments:q} --segment-files {input.segment_files:q}"
        " --models {input.models:q} --features {input.features:q} --paper-protocol {input.paper:q} > {log:q} 2>&1"
