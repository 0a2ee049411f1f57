# Scores: per-segment component scores, fused frame scores, and the evaluation (metrics.json, plots, report).


rule score_components:
    input:
        flow=f"{R}/flow/test.h5",
    output:
        f"{R}/scores/segments.parquet",
    log:
        f"{R}/logs/score/score_components.log",
    conda:
        "../../envs/mgenet.yaml"
    shell:
        "mgenet score --flow {input.flow} --out {output} > {log} 2>&1"


rule fuse_scores:
    input:
        scores=f"{R}/scores/segments.parquet",
        manifest=f"{R}/manifest.csv",
    output:
        f"{R}/scores/frames.parquet",
    params:
        fusion=params_json("fusion", "score"),
        intervals=intervals_path(),
    log:
        f"{R}/logs/score/fuse_scores.log",
    conda:
        "../../envs/mgenet.yaml"
    shell:
        "mgenet fuse --scores {input.scores} --manifest {input.manifest} --intervals {params.intervals:q}"
        " --params {params.fusion:q} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        f"{R}/scores/frames.parquet",
    output:
        metrics=f"{R}/eval/metrics.json",
        report=f"{R}/eval/report.html",
        plots=directory(f"{R}/eval/plots"),
    params:
        evaluate=json.dumps({"dataset": DS, "config": config}),
    log:
        f"{R}/logs/eval/evaluate.log",
    conda:
        "../../envs/mgenet.yaml"
    shell:
        "mgenet evaluate --frames {input} --params {params.evaluate:q} --out {output.metrics}"
        " --report {output.report} --plots {output.plots} > {log} 2>&1"
