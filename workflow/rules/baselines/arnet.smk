# AR-Net (Wan et al., ICME 2020), the weakly supervised baseline: an MLP over each video's snippet features, trained
# with video labels on the weak split's training videos (every normal training video and some anomalous test
# videos), scoring every test video. Its column `arnet` is evaluated on the weak split's test videos only. Trained
# once per training seed: the main run and each seed run of `snakemake seeds` (RUN_DIRS["baselines"] in runs.smk).


if ARNET:

    BASELINE_SCORES["arnet"] = "scores/baselines/arnet.parquet"

    rule train_arnet:
        input:
            snippets=get_arnet_train_snippets,  # the weak split's training videos only: no weak-test file is read
            weak_split=get_weak_split,
        output:
            f"{R}/{{run_dir}}models/arnet.pt",
        params:
            arnet=get_arnet_params,
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        # a two-layer MLP over cached vectors: one thread (a second one only adds start-up beside the other jobs)
        threads: 1
        resources:
            gpu=gpus(),
        log:
            f"{R}/logs/{{run_dir}}arnet/train_arnet.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}arnet/train_arnet.tsv"
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} train-arnet --snippets {input.snippets:q} --weak-split {input.weak_split:q}"
            " --params {params.arnet:q} --out {output:q} > {log:q} 2>&1"

    rule score_arnet:
        input:
            model=f"{R}/{{run_dir}}models/arnet.pt",
            snippets=get_arnet_test_snippets,
            manifest=f"{R}/manifest.csv",
        output:
            f"{R}/{{run_dir}}scores/baselines/arnet.parquet",
        params:
            score=json.dumps({"device": config["device"]}),
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        threads: 1
        resources:
            gpu=gpus(),
        log:
            f"{R}/logs/{{run_dir}}arnet/score_arnet.log",
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score-arnet --model {input.model:q} --snippets {input.snippets:q}"
            " --manifest {input.manifest:q} --params {params.score:q} --out {output:q} > {log:q} 2>&1"
