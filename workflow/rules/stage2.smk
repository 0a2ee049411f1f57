# Stage 2 (MGENet's guidance-exploration networks): trained on the training videos' cached Video Swin tokens and
# their flow latents f_sk, level by level (RGB encoder + LSTA head, mask encoder, matching memory). Only defined when
# stage2.enabled; without it the pipeline is STG-NF (S_nf alone).


if STAGE2:

    rule train_stage2:
        input:
            features=get_train_features,
            flow=f"{R}/flow/train.h5",
        output:
            f"{R}/models/stage2.pt",
        params:
            stage2=stage2_params(config["stage2"]),
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
            f"{R}/logs/stage2/train_stage2.log",
        benchmark:
            f"{R}/benchmarks/train_stage2.tsv"
        conda:
            "../../envs/models.yaml"
        shell:
            # a killed run leaves models/stage2.pt.partial; the rerun resumes from its last finished epoch
            "mgenet --threads {threads} train-stage2 --features {input.features:q} --flow {input.flow:q}"
            " --params {params.stage2:q} --out {output:q} > {log:q} 2>&1"
