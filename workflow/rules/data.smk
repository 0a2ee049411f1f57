# The dataset: the synthetic demo (when dataset.generate is set) and the manifest of every video.


# Defined only for the synthetic dataset, so that a missing real dataset is reported, never overwritten.
if config["dataset"]["generate"]:

    rule make_demo_dataset:
        output:
            directory(DATA_ROOT),
        params:
            demo=params_json("demo", generator_version=DEMO_GENERATOR_VERSION),
        threads: 2  # videos rendered side by side (the files do not depend on it)
        log:
            f"{R}/logs/data/make_demo_dataset.log",
        benchmark:
            f"{R}/benchmarks/make_demo_dataset.tsv"
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet --threads {threads} make-demo --params {params.demo:q} --out {output:q} > {log:q} 2>&1"


checkpoint index_dataset:
    input:
        get_dataset_root,
    output:
        f"{R}/manifest.csv",
    params:
        dataset=params_json(
            "dataset", pose_source=config["pose"]["source"], **({"abnormal_train": True} if SUPERVISED else {})
        ),
        # the dataset's file set: a pose file removed or put back, a video or mask added, reindexes
        files=dataset_listing(),
    log:
        f"{R}/logs/data/index_dataset.log",
    benchmark:
        f"{R}/benchmarks/index_dataset.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet index --params {params.dataset:q} --out {output:q} > {log:q} 2>&1"
