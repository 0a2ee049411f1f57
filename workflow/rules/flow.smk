# Stage 1: the spatio-temporal normalizing flow (STG-NF) on normal training poses. Written once for every run that
# trains its own flow (the main run and each training seed: RUN_DIRS["flow"] in runs.smk).


# STG-NF's supervised setting (flow.train.supervised): each anomalous training video's windows, labelled from
# UBnormal's object masks (1 normal, -1 on an anomalous object).
rule label_windows:
    input:
        segments=f"{R}/segments/{{video}}.h5",
        annotations=get_annotation_dir,
    output:
        f"{R}/labels/{{video}}.csv",
    priority: PRIORITY["segments"]
    log:
        f"{R}/logs/labels/{{video}}.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet label-windows --segments {input.segments:q} --annotations={input.annotations:q} --out {output:q}"
        " > {log:q} 2>&1"


rule train_flow:
    input:
        segments=get_train_segments,
        abnormal=get_abnormal_train_segments,  # flow.train.supervised only, with their labels
        labels=get_window_labels,
        checkpoint=get_flow_checkpoint,
    output:
        f"{R}/{{run_dir}}models/flow.pt",
    params:
        flow=get_run_flow_params,
    wildcard_constraints:
        run_dir=RUN_DIRS["flow"],
    # one thread: on a few cores the flow then trains beside the per-video jobs instead of waiting for all of them
    # (STG-NF is small; a second thread gained 1.4x on the demo); a cluster profile sets more (set-threads)
    threads: 1
    priority: PRIORITY["models"]
    log:
        f"{R}/logs/{{run_dir}}flow/train_flow.log",
    benchmark:
        f"{R}/benchmarks/{{run_dir}}train_flow.tsv"
    conda:
        "../../envs/models.yaml"
    shell:
        "mgenet --threads {threads} train-flow --segments {input.segments:q} --params {params.flow:q}"
        " --abnormal-segments {input.abnormal:q} --labels {input.labels:q} --out {output:q} > {log:q} 2>&1"


rule encode_flow:
    input:
        model=f"{R}/{{run_dir}}models/flow.pt",
        segments=get_segments,
    output:
        f"{R}/{{run_dir}}flow/{{split}}.h5",
    params:
        encode=json.dumps({"batch_size": config["flow"]["encode_batch_size"], "device": config["device"]}),
    wildcard_constraints:
        run_dir=RUN_DIRS["flow"],
    # one thread, as every job on the way to stage 2: a two-thread job waits until both cores are free at once, which
    # on the demo's 2 cores held the training latents (and stage 2) back until every feature job had finished
    threads: 1
    priority: PRIORITY["models"]
    log:
        f"{R}/logs/{{run_dir}}flow/encode_flow_{{split}}.log",
    benchmark:
        f"{R}/benchmarks/{{run_dir}}encode_flow_{{split}}.tsv"
    conda:
        "../../envs/models.yaml"
    shell:
        "mgenet --threads {threads} encode-flow --model {input.model:q} --segments {input.segments:q}"
        " --params {params.encode:q} --out {output:q} > {log:q} 2>&1"
