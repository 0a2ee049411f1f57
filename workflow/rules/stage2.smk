# Stage 2 (MGENet's guidance-exploration networks): trained on the training videos' cached Video Swin tokens and
# their flow latents f_sk, level by level (RGB encoder + LSTA head, mask encoder, matching memory). Only defined when
# stage2.enabled; without it the pipeline is STG-NF (S_nf alone). Every run with stage-2 settings of its own trains
# here (the main run, each training seed, an ablation or tuning candidate that changes them: RUN_DIRS["stage2"]); a
# matching-seed run writes only M^r of another run's model again (rule rewrite_matching: RUN_DIRS["rewrite"]).


if STAGE2:

    rule train_stage2:
        input:
            features=get_train_features,
            flow=get_run_latents,  # the run's own flow (a training seed) or the main one
        output:
            f"{R}/{{run_dir}}models/stage2.pt",
        params:
            stage2=get_run_stage2_params,
        wildcard_constraints:
            run_dir=RUN_DIRS["stage2"],
        # torch's intra-op threads; the HDF5 reads are small next to the encoders' work. One: at the demo's sizes a
        # second thread did not shorten training (26 CPU-s in 38 s of wall time with two); a cluster profile (GPU
        # jobs) sets more
        threads: 1
        priority: PRIORITY["models"]
        resources:
            # a GPU unless device: cpu, as for extract_features (gpus() in common.smk); amp applies there.
            # Memory: the model, one shuffle buffer of block_rows * buffer_blocks float16 clips, one batch.
            gpu=gpus(stage2=True),
            mem_mb=4000,
        log:
            f"{R}/logs/{{run_dir}}stage2/train_stage2.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}train_stage2.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            # a killed run leaves models/stage2.pt.partial; the rerun resumes from its last finished epoch
            "mgenet --threads {threads} train-stage2 --features {input.features:q} --flow {input.flow:q}"
            " --params {params.stage2:q} --out {output:q} > {log:q} 2>&1"

    # `snakemake matching_seeds` / `seeds_matching`: the trained model kept, its matching memory M^r written again
    # from another seed (the items' random start and the clips' order)
    rule rewrite_matching:
        input:
            model=get_rewrite_base_model,
            features=get_train_features,
            flow=get_run_latents,
        output:
            f"{R}/{{run_dir}}models/stage2.pt",
        params:
            rewrite=json.dumps({"device": config["device"]}),
            mseed=get_matching_seed,
        wildcard_constraints:
            run_dir=RUN_DIRS["rewrite"],
        threads: 2
        resources:
            gpu=gpus(stage2=True),
            mem_mb=4000,
        log:
            f"{R}/logs/{{run_dir}}stage2/rewrite_matching.log",
        benchmark:
            f"{R}/benchmarks/{{run_dir}}rewrite_matching.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            "mgenet --threads {threads} rewrite-matching --model {input.model:q} --features {input.features:q}"
            " --flow {input.flow:q} --seed {params.mseed:q} --params {params.rewrite:q} --out {output:q}"
            " > {log:q} 2>&1"
