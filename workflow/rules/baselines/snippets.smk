# Snippet features for the video-level baselines: each video's whole frames in consecutive snippets of snippet_len
# frames, through the same Video Swin stages 1-2 as extract_features, one pooled vector per snippet. A method asks
# for its own snippet_len (AR-Net 16); a video's snippets are made only when an enabled method reads them.


rule extract_snippets:
    input:
        manifest=f"{R}/manifest.csv",
        video=get_video_path,
        weights=get_feature_weights,
    output:
        f"{R}/snippets/len{{snippet_len}}/{{video}}.h5",
    params:
        snippets=snippets_params,
    wildcard_constraints:
        snippet_len=r"[1-9][0-9]*",
    # torch's intra-op threads; decoding runs between forwards. One, as extract_features: videos side by side use a
    # few cores better than two threads on one (README, 'Quick start'); a cluster profile sets more.
    threads: 1
    resources:
        # a GPU unless device: cpu (gpus() in common.smk); memory: one batch of resized snippets, flat in the length
        gpu=gpus(),
        mem_mb=3000,
    log:
        f"{R}/logs/snippets/len{{snippet_len}}/{{video}}.log",
    benchmark:
        f"{R}/benchmarks/snippets/len{{snippet_len}}/{{video}}.tsv"
    conda:
        "../../../envs/features.yaml"
    shell:
        "mgenet --threads {threads} snippets --manifest {input.manifest:q} --video {wildcards.video:q}"
        " --source {input.video:q} --snippet-len {wildcards.snippet_len:q} --params {params.snippets:q}"
        " --out {output:q} > {log:q} 2>&1"
