# Ablations as configuration (the paper's Tables 2 and 3): `snakemake ablation` evaluates every variant of
# ablation.variants under results/{ds}/ablation/{variant}/ and tabulates them in results/{ds}/eval/ablation.csv/.md.
# Features and the flow are shared with the main run; a variant trains its own stage 2 only when its stage2 settings
# differ from the main ones (get_ablation_segments), else it reuses the main segment scores and only fuses anew.


if STAGE2 and ABLATIONS:

    wildcard_constraints:
        ablation="|".join(ABLATIONS),

    use rule train_stage2 as train_stage2_ablation with:
        output:
            f"{R}/ablation/{{ablation}}/models/stage2.pt",
        params:
            stage2=get_ablation_stage2_params,
        log:
            f"{R}/logs/ablation/{{ablation}}/train_stage2.log",
        benchmark:
            f"{R}/benchmarks/ablation/{{ablation}}/train_stage2.tsv"

    use rule score_components as score_ablation with:
        input:
            flow=f"{R}/flow/test.h5",
            model=f"{R}/ablation/{{ablation}}/models/stage2.pt",
            features=get_test_features,
        output:
            f"{R}/ablation/{{ablation}}/scores/segments.parquet",
        log:
            f"{R}/logs/ablation/{{ablation}}/score_components.log",
        benchmark:
            f"{R}/benchmarks/ablation/{{ablation}}/score_components.tsv"

    use rule fuse_scores as fuse_ablation with:
        input:
            scores=get_ablation_segments,
            manifest=f"{R}/manifest.csv",
            truth=get_ground_truth,
            baselines=[],  # variants of MGENet: the baselines are the main run's
        output:
            f"{R}/ablation/{{ablation}}/scores/frames.parquet",
        params:
            fusion=get_ablation_fusion_params,
            intervals=intervals_path(),
        log:
            f"{R}/logs/ablation/{{ablation}}/fuse_scores.log",

    rule evaluate_ablation:
        input:
            frames=f"{R}/ablation/{{ablation}}/scores/frames.parquet",
            segments=get_ablation_segments,
            segment_files=get_test_segments,
        output:
            f"{R}/ablation/{{ablation}}/eval/metrics.json",
        params:
            evaluate=get_ablation_evaluate_params,
            boxes=boxes_path(),
        log:
            f"{R}/logs/ablation/{{ablation}}/evaluate.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output:q}"
            " --boxes={params.boxes:q} --segments {input.segments:q} --segment-files {input.segment_files:q}"
            " > {log:q} 2>&1"

    rule tabulate_ablation:
        input:
            unpack(get_ablation_metrics),
        output:
            csv=f"{R}/eval/ablation.csv",
            md=f"{R}/eval/ablation.md",
        params:
            metrics=ablation_metrics_args,
            table=json.dumps(
                {
                    "dataset": DS,
                    "descriptions": {k: v.get("description", "") for k, v in config["ablation"]["variants"].items()},
                    "fusion": {k: v["fusion"] for k, v in ABLATIONS.items()},
                }
            ),
        log:
            f"{R}/logs/ablation/tabulate_ablation.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet ablation-table --metrics {params.metrics:q} --params {params.table:q} --out {output.csv:q}"
            " --md {output.md:q} > {log:q} 2>&1"

    rule ablation:
        input:
            f"{R}/eval/ablation.csv",
            f"{R}/eval/ablation.md",
