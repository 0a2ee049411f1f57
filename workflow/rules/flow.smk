# Stage 1: the spatio-temporal normalizing flow (STG-NF) on normal training poses.


rule train_flow:
    input:
        segments=get_train_segments,
        checkpoint=get_flow_checkpoint,
    output:
        f"{R}/models/flow.pt",
    params:
        flow=params_json("flow", "seed", "device", seg_len=config["segments"]["seg_len"]),
    # one thread: on a few cores the flow then trains beside the per-video jobs instead of waiting for all of them
    # (STG-NF is small; a second thread gained 1.4x on the demo); a cluster profile sets more (set-threads)
    threads: 1
    priority: PRIORITY["models"]
    log:
        f"{R}/logs/flow/train_flow.log",
    benchmark:
        f"{R}/benchmarks/train_flow.tsv"
    conda:
        "../../envs/models.yaml"
    shell:
        "mgenet --threads {threads} train-flow --segments {input.segments:q} --params {params.flow:q}"
        " --out {output:q} > {log:q} 2>&1"


rule encode_flow:
    input:
        model=f"{R}/models/flow.pt",
        segments=get_segments,
    output:
        f"{R}/flow/{{split}}.h5",
    params:
        encode=json.dumps({"batch_size": config["flow"]["encode_batch_size"], "device": config["device"]}),
    # one thread, as every job on the way to stage 2: a two-thread job waits until both cores are free at once, which
    # on the demo's 2 cores held the training latents (and stage 2) back until every feature job had finished
    threads: 1
    priority: PRIORITY["models"]
    log:
        f"{R}/logs/flow/encode_flow_{{split}}.log",
    benchmark:
        f"{R}/benchmarks/encode_flow_{{split}}.tsv"
    conda:
        "../../envs/models.yaml"
    shell:
        "mgenet --threads {threads} encode-flow --model {input.model:q} --segments {input.segments:q}"
        " --params {params.encode:q} --out {output:q} > {log:q} 2>&1"
