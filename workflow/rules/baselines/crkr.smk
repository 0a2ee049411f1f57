# The unsupervised two-stream baseline (Cao et al., arXiv 2209.02899) beside MGENet: Context Recovery (a frame
# predictor on the frozen Video Swin stages 1-2, trained on the training videos' frames) and Knowledge Retrieval
# (HashNet hash tables of the training videos' snippet features). Each stream scores every test frame; fuse_crkr
# joins them (columns cr, kr, crkr) into scores/baselines/crkr.parquet, which fuse_scores adds to the frame table,
# and writes the paper's protocol figures, which evaluate adds to metrics.json. Only defined when crkr.enabled. Both
# streams train once per training seed: the main run and each seed run of `snakemake seeds` (RUN_DIRS["baselines"]).


if CRKR["enabled"]:
    BASELINE_SCORES["crkr"] = "scores/baselines/crkr.parquet"
    PAPER_PROTOCOL["crkr"] = f"{R}/scores/baselines/crkr_paper.json"

    rule train_cr:
        input:
            manifest=f"{R}/manifest.csv",
            videos=get_cr_train_videos,
            weights=get_feature_weights,
        output:
            f"{R}/{{run_dir}}models/cr.pt",
        params:
            cr=crkr_params("cr"),
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        # torch's intra-op threads; frames are decoded between steps. One: at the demo's sizes a second thread did not
        # shorten the job; a cluster profile sets more
        threads: 1
        priority: PRIORITY["cr"]
        resources:
            # a GPU unless device: cpu; memory: buffer_videos x iterations samples of (context + 1) resized frames
            gpu=gpus(),
            mem_mb=4000,
        log:
            f"{R}/logs/{{run_dir}}crkr/train_cr.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}crkr/train_cr.tsv"
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} train-cr --manifest {input.manifest:q} --videos {input.videos:q}"
            " --params {params.cr:q} --out {output:q} > {log:q} 2>&1"

    rule score_cr:
        input:
            model=f"{R}/{{run_dir}}models/cr.pt",
            manifest=f"{R}/manifest.csv",
            videos=get_cr_test_videos,
        output:
            f"{R}/{{run_dir}}scores/baselines/cr.parquet",
        params:
            cr=crkr_params("cr"),
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        threads: 1  # as train_cr
        priority: PRIORITY["cr"]
        resources:
            # a GPU unless device: cpu; memory: one batch of predicted frames with their context
            gpu=gpus(),
            mem_mb=3000,
        log:
            f"{R}/logs/{{run_dir}}crkr/score_cr.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}crkr/score_cr.tsv"
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score-cr --model {input.model:q} --manifest {input.manifest:q}"
            " --params {params.cr:q} --out {output:q} > {log:q} 2>&1"

    rule train_kr:
        input:
            snippets=get_kr_snippets("train"),
        output:
            f"{R}/{{run_dir}}models/kr.pt",
        params:
            kr=crkr_params("kr"),
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        # HashNet is a few linear maps on pooled vectors: seconds on a CPU, so no GPU is requested
        threads: 1
        resources:
            mem_mb=2000,
        log:
            f"{R}/logs/{{run_dir}}crkr/train_kr.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}crkr/train_kr.tsv"
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} train-kr --snippets {input.snippets:q} --params {params.kr:q}"
            " --out {output:q} > {log:q} 2>&1"

    rule score_kr:
        input:
            model=f"{R}/{{run_dir}}models/kr.pt",
            manifest=f"{R}/manifest.csv",
            snippets=get_kr_snippets("test"),
        output:
            f"{R}/{{run_dir}}scores/baselines/kr.parquet",
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        threads: 1
        resources:
            mem_mb=2000,
        log:
            f"{R}/logs/{{run_dir}}crkr/score_kr.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}crkr/score_kr.tsv"
        conda:
            "../../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} score-kr --model {input.model:q} --manifest {input.manifest:q}"
            " --snippets {input.snippets:q} --out {output:q} > {log:q} 2>&1"

    rule fuse_crkr:
        input:
            cr=f"{R}/{{run_dir}}scores/baselines/cr.parquet",
            kr=f"{R}/{{run_dir}}scores/baselines/kr.parquet",
            manifest=f"{R}/manifest.csv",
            truth=get_ground_truth,
        output:
            scores=f"{R}/{{run_dir}}scores/baselines/crkr.parquet",
            paper=f"{R}/{{run_dir}}scores/baselines/crkr_paper.json",
        wildcard_constraints:
            run_dir=RUN_DIRS["baselines"],
        params:
            fuse=json.dumps({"paper_sigmas": CRKR["paper_sigmas"]}, sort_keys=True),
        log:
            f"{R}/logs/{{run_dir}}crkr/fuse_crkr.log",
        conda:
            "../../../envs/core.yaml"
        shell:
            "mgenet fuse-crkr --cr {input.cr:q} --kr {input.kr:q} --manifest {input.manifest:q}"
            " --params {params.fuse:q} --out {output.scores:q} --paper {output.paper:q} > {log:q} 2>&1"
