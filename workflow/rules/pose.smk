# Pose: each video's tracked-person JSON, then per-person windows (segments). pose.source picks where the JSON comes
# from: the dataset's own AlphaPose files (import) or the videos themselves (extract); both write the same file.


if config["pose"]["source"] == "extract":

    rule extract_pose:
        input:
            get_video_path,
        output:
            f"{R}/pose/{{video}}.json",
        params:
            pose=params_json("pose"),
        log:
            f"{R}/logs/pose/extract_pose/{{video}}.log",
        benchmark:
            f"{R}/benchmarks/extract_pose/{{video}}.tsv"
        threads: 2
        conda:
            "../../envs/pose.yaml"
        shell:
            "mgenet --threads {threads} pose {input:q} --params {params.pose:q} --out {output:q} > {log:q} 2>&1"

else:

    rule import_pose:
        input:
            manifest=f"{R}/manifest.csv",
            pose=get_pose_source,
        output:
            f"{R}/pose/{{video}}.json",
        priority: PRIORITY["segments"]
        log:
            f"{R}/logs/pose/import_pose/{{video}}.log",
        benchmark:
            f"{R}/benchmarks/import_pose/{{video}}.tsv"
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet import-pose --manifest {input.manifest:q} --video {wildcards.video:q} --out {output:q}"
            " > {log:q} 2>&1"


rule build_segments:
    input:
        manifest=f"{R}/manifest.csv",
        pose=f"{R}/pose/{{video}}.json",
    output:
        f"{R}/segments/{{video}}.h5",
    params:
        segments=params_json("segments"),
    priority: PRIORITY["segments"]
    log:
        f"{R}/logs/segments/{{video}}.log",
    benchmark:
        f"{R}/benchmarks/build_segments/{{video}}.tsv"
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet segments --manifest {input.manifest:q} --video {wildcards.video:q} --pose {input.pose:q}"
        " --params {params.segments:q} --out {output:q} > {log:q} 2>&1"
