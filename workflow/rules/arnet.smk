# AR-Net (Wan et al., ICME 2020), the weakly supervised baseline: an MLP over each video's snippet features, trained
# with video labels on the weak split's training videos (every normal training video and some anomalous test
# videos), scoring every test video. Its column `arnet` is evaluated on the weak split's test videos only.

if ARNET:

    BASELINE_SCORES["arnet"] = f"{R}/scores/baselines/arnet.parquet"
    BASELINE_SEEDED.add("arnet")

    rule train_arnet:
        input:
            snippets=get_arnet_train_snippets,  # the weak split's training videos only: no weak-test file is read
            weak_split=get_weak_split,
        output:
            f"{R}/models/arnet.pt",
        params:
            arnet=arnet_params(),
        # a two-layer MLP over cached vectors: one thread (a second one only adds start-up beside the other jobs)
        threads: 1
        resources:
            gpu=gpus(),
        log:
            f"{R}/logs/arnet/train_arnet.log",
        benchmark:
            f"{R}/benchmarks/arnet/train_arnet.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} train-arnet --snippets {input.snippets:q} --weak-split {input.weak_split:q}"
            " --params {params.arnet:q} --out {output:q} > {log:q} 2>&1"

    rule score_arnet:
        input:
            model=f"{R}/models/arnet.pt",
            snippets=get_arnet_test_snippets,
            manifest=f"{R}/manifest.csv",
        output:
            f"{R}/scores/baselines/arnet.parquet",
        params:
            score=json.dumps({"device": config["device"]}),
        threads: 1
        resources:
            gpu=gpus(),
        log:
            f"{R}/logs/arnet/score_arnet.log",
        conda:
            "../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score-arnet --model {input.model:q} --snippets {input.snippets:q}"
            " --manifest {input.manifest:q} --params {params.score:q} --out {output:q} > {log:q} 2>&1"

    if SEEDS:

        use rule train_arnet as train_arnet_seed with:
            output:
                f"{R}/seeds/{{seed}}/models/arnet.pt",
            params:
                arnet=seed_arnet_params,
            log:
                f"{R}/logs/seeds/{{seed}}/train_arnet.log",
            benchmark:
                f"{R}/benchmarks/seeds/{{seed}}/train_arnet.tsv"

        use rule score_arnet as score_arnet_seed with:
            input:
                model=f"{R}/seeds/{{seed}}/models/arnet.pt",
                snippets=get_arnet_test_snippets,
                manifest=f"{R}/manifest.csv",
            output:
                f"{R}/seeds/{{seed}}/scores/baselines/arnet.parquet",
            log:
                f"{R}/logs/seeds/{{seed}}/score_arnet.log",
