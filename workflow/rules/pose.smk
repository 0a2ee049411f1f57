# Pose: each video's tracked-person JSON, then per-person windows (segments).


rule import_pose:
    input:
        manifest=f"{R}/manifest.csv",
        pose=get_pose_source,
    output:
        f"{R}/pose/{{video}}.json",
    log:
        f"{R}/logs/pose/import_pose/{{video}}.log",
    conda:
        "../../envs/mgenet.yaml"
    shell:
        "mgenet import-pose --manifest {input.manifest} --video {wildcards.video} --out {output} > {log} 2>&1"


rule build_segments:
    input:
        manifest=f"{R}/manifest.csv",
        pose=f"{R}/pose/{{video}}.json",
    output:
        f"{R}/segments/{{video}}.h5",
    params:
        segments=params_json("segments"),
    log:
        f"{R}/logs/segments/{{video}}.log",
    conda:
        "../../envs/mgenet.yaml"
    shell:
        "mgenet segments --manifest {input.manifest} --video {wildcards.video} --pose {input.pose}"
        " --params {params.segments:q} --out {output} > {log} 2>&1"
