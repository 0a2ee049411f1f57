# Features (F_B): each video's person-segment crop clips through Video Swin-T stages 1-2, cached as float16 tokens,
# plus the video's scene feature. One job per video, so a cluster spreads them; stage 2 reads them many times.


rule extract_features:
    input:
        manifest=f"{R}/manifest.csv",
        segments=f"{R}/segments/{{video}}.h5",
        video=get_video_path,
        weights=get_feature_weights,
    output:
        f"{R}/features/{{video}}.h5",
    params:
        features=params_json("features", "seed", "device"),
    # torch's intra-op threads; decoding and cropping run in one extra thread beside them. One: a job spends most of
    # its time starting (importing torch and mmaction2, building the backbone), so on a few cores two videos side by
    # side finish sooner than one with two threads (the demo's 33 videos: README, 'Quick start'); a cluster profile
    # sets more (set-threads).
    threads: 1
    priority: PRIORITY["features"]
    resources:
        # a GPU unless device: cpu (gpus() in common.smk); under auto a job that gets none runs on the CPU.
        # Memory: decode batches + open windows + two clip batches, flat in the video's length (bench/features.py),
        # except glibc's heap on tracks thousands of frames long (README, 'Features and weights': 2.1 GB at 20,000).
        gpu=gpus(),
        mem_mb=4000,
    log:
        f"{R}/logs/features/{{video}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{video}}.tsv"
    conda:
        "../../envs/features.yaml"
    shell:
        "mgenet --threads {threads} features --manifest {input.manifest:q} --video {wildcards.video:q}"
        " --source {input.video:q} --segments {input.segments:q} --params {params.features:q} --out {output:q}"
        " > {log:q} 2>&1"
