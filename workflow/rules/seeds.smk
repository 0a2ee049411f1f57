# Seeds: `snakemake seeds` trains the flow and stage 2 once per seed of config `seeds` on the same cached features
# (F_B is a fixed pre-trained backbone, so features are not redrawn), evaluates each run like the main one under
# results/{ds}/seeds/{seed}/, and summarises every AUC as mean ± std in results/{ds}/eval/seeds.csv/.md. The main
# run's seed is not trained twice: its results stand in for that seed.

if config["seeds"]:

    if SEEDS:

        wildcard_constraints:
            seed="|".join(str(s) for s in SEEDS),

        use rule train_flow as train_flow_seed with:
            output:
                f"{R}/seeds/{{seed}}/models/flow.pt",
            params:
                flow=seed_flow_params,
            log:
                f"{R}/logs/seeds/{{seed}}/train_flow.log",
            benchmark:
                f"{R}/benchmarks/seeds/{{seed}}/train_flow.tsv"

        use rule encode_flow as encode_flow_seed with:
            input:
                model=f"{R}/seeds/{{seed}}/models/flow.pt",
                segments=get_segments,
            output:
                f"{R}/seeds/{{seed}}/flow/{{split}}.h5",
            log:
                f"{R}/logs/seeds/{{seed}}/encode_flow_{{split}}.log",
            benchmark:
                f"{R}/benchmarks/seeds/{{seed}}/encode_flow_{{split}}.tsv"

        if STAGE2:

            use rule train_stage2 as train_stage2_seed with:
                input:
                    features=get_train_features,
                    flow=f"{R}/seeds/{{seed}}/flow/train.h5",
                output:
                    f"{R}/seeds/{{seed}}/models/stage2.pt",
                params:
                    stage2=seed_stage2_params,
                log:
                    f"{R}/logs/seeds/{{seed}}/train_stage2.log",
                benchmark:
                    f"{R}/benchmarks/seeds/{{seed}}/train_stage2.tsv"

            use rule score_components as score_components_seed with:
                input:
                    flow=f"{R}/seeds/{{seed}}/flow/test.h5",
                    model=f"{R}/seeds/{{seed}}/models/stage2.pt",
                    features=get_test_features,
                output:
                    f"{R}/seeds/{{seed}}/scores/segments.parquet",
                log:
                    f"{R}/logs/seeds/{{seed}}/score_components.log",
                benchmark:
                    f"{R}/benchmarks/seeds/{{seed}}/score_components.tsv"

        else:

            use rule score_components as score_components_seed with:
                input:
                    flow=f"{R}/seeds/{{seed}}/flow/test.h5",
                output:
                    f"{R}/seeds/{{seed}}/scores/segments.parquet",
                log:
                    f"{R}/logs/seeds/{{seed}}/score_components.log",

        use rule fuse_scores as fuse_scores_seed with:
            input:
                scores=f"{R}/seeds/{{seed}}/scores/segments.parquet",
                manifest=f"{R}/manifest.csv",
                truth=get_ground_truth,
                baselines=get_seed_baseline_scores,
            output:
                f"{R}/seeds/{{seed}}/scores/frames.parquet",
            log:
                f"{R}/logs/seeds/{{seed}}/fuse_scores.log",

        rule evaluate_seed:
            input:
                frames=f"{R}/seeds/{{seed}}/scores/frames.parquet",
                segments=f"{R}/seeds/{{seed}}/scores/segments.parquet",
                segment_files=get_test_segments,
                weak_split=get_weak_split,
            output:
                f"{R}/seeds/{{seed}}/eval/metrics.json",
            params:
                evaluate=evaluate_params(fusion=config["fusion"]),
                boxes=boxes_path(),
            log:
                f"{R}/logs/seeds/{{seed}}/evaluate.log",
            conda:
                "../../envs/core.yaml"
            shell:
                "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output:q}"
                " --weak-split={input.weak_split:q} --boxes={params.boxes:q} --segments {input.segments:q}"
                " --segment-files {input.segment_files:q} > {log:q} 2>&1"

    rule tabulate_seeds:
        input:
            unpack(get_seed_metrics),
        output:
            csv=f"{R}/eval/seeds.csv",
            md=f"{R}/eval/seeds.md",
        params:
            metrics=seed_metrics_args,
            table=json.dumps({"dataset": DS}),
        log:
            f"{R}/logs/seeds/tabulate_seeds.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet seeds-table --metrics {params.metrics:q} --params {params.table:q} --out {output.csv:q}"
            " --md {output.md:q} > {log:q} 2>&1"

    rule seeds:
        input:
            f"{R}/eval/seeds.csv",
            f"{R}/eval/seeds.md",


# Matching-memory seeds: `snakemake matching_seeds` keeps the trained model and writes only its matching memory M^r
# again, once per seed of config `matching_seeds` (the items' random start and the clips' order), then scores S_mm
# with it, fuses and evaluates each under results/{ds}/matching_seeds/{mseed}/ and summarises them in
# results/{ds}/eval/matching_seeds.csv/.md. S_nf, S_mo and S_app are the main run's; only S_mm (and the fused score)
# change. The main seed redraws the main model's own M^r, so the main run stands in for it.

if STAGE2 and config["matching_seeds"]:

    if MATCHING_SEEDS:

        wildcard_constraints:
            mseed="|".join(str(s) for s in MATCHING_SEEDS),

        rule rewrite_matching:
            input:
                model=f"{R}/models/stage2.pt",
                features=get_train_features,
                flow=f"{R}/flow/train.h5",
            output:
                f"{R}/matching_seeds/{{mseed}}/models/stage2.pt",
            params:
                rewrite=json.dumps({"device": config["device"]}),
            threads: 2
            resources:
                gpu=gpus(stage2=True),
                mem_mb=4000,
            log:
                f"{R}/logs/matching_seeds/{{mseed}}/rewrite_matching.log",
            benchmark:
                f"{R}/benchmarks/matching_seeds/{{mseed}}/rewrite_matching.tsv"
            conda:
                "../../envs/models.yaml"
            shell:
                "mgenet --threads {threads} rewrite-matching --model {input.model:q} --features {input.features:q}"
                " --flow {input.flow:q} --seed {wildcards.mseed:q} --params {params.rewrite:q} --out {output:q}"
                " > {log:q} 2>&1"

        # S_mm with the rewritten M^r; S_nf, S_mo, S_app and the level-1 measurements are the main run's (--base),
        # which the rewrite cannot change, so the mask encoder's passes are not run again
        rule score_components_mseed:
            input:
                flow=f"{R}/flow/test.h5",
                model=f"{R}/matching_seeds/{{mseed}}/models/stage2.pt",
                features=get_test_features,
                base=f"{R}/scores/segments.parquet",
            output:
                f"{R}/matching_seeds/{{mseed}}/scores/segments.parquet",
            params:
                score=stage2_score_params(),
            threads: 2
            resources:
                gpu=gpus(stage2=True),
            log:
                f"{R}/logs/matching_seeds/{{mseed}}/score_components.log",
            benchmark:
                f"{R}/benchmarks/matching_seeds/{{mseed}}/score_components.tsv"
            conda:
                "../../envs/models.yaml"
            shell:
                "mgenet --threads {threads} score --flow {input.flow:q} --stage2 {input.model:q}"
                " --features {input.features:q} --base {input.base:q} --params {params.score:q} --out {output:q}"
                " > {log:q} 2>&1"

        use rule fuse_scores as fuse_scores_mseed with:
            input:
                scores=f"{R}/matching_seeds/{{mseed}}/scores/segments.parquet",
                manifest=f"{R}/manifest.csv",
                truth=get_ground_truth,
                baselines=get_baseline_scores,  # the main run's: they do not change with M^r's seed
            output:
                f"{R}/matching_seeds/{{mseed}}/scores/frames.parquet",
            log:
                f"{R}/logs/matching_seeds/{{mseed}}/fuse_scores.log",

        rule evaluate_mseed:
            input:
                frames=f"{R}/matching_seeds/{{mseed}}/scores/frames.parquet",
                segments=f"{R}/matching_seeds/{{mseed}}/scores/segments.parquet",
                segment_files=get_test_segments,
                weak_split=get_weak_split,
            output:
                f"{R}/matching_seeds/{{mseed}}/eval/metrics.json",
            params:
                evaluate=evaluate_params(fusion=config["fusion"]),
                boxes=boxes_path(),
            log:
                f"{R}/logs/matching_seeds/{{mseed}}/evaluate.log",
            conda:
                "../../envs/core.yaml"
            shell:
                "mgenet evaluate --frames {input.frames:q} --params {params.evaluate:q} --out {output:q}"
                " --weak-split={input.weak_split:q} --boxes={params.boxes:q} --segments {input.segments:q}"
                " --segment-files {input.segment_files:q} > {log:q} 2>&1"

    rule tabulate_matching_seeds:
        input:
            unpack(get_matching_seed_metrics),
        output:
            csv=f"{R}/eval/matching_seeds.csv",
            md=f"{R}/eval/matching_seeds.md",
        params:
            metrics=seed_metrics_args,
            table=json.dumps({"dataset": DS, "target": "matching_seeds",
                              "title": f"AUC over matching-memory seeds (M^r written again), {DS}"}),
        log:
            f"{R}/logs/matching_seeds/tabulate_matching_seeds.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet seeds-table --metrics {params.metrics:q} --params {params.table:q} --out {output.csv:q}"
            " --md {output.md:q} > {log:q} 2>&1"

    rule matching_seeds:
        input:
            f"{R}/eval/matching_seeds.csv",
            f"{R}/eval/matching_seeds.md",
