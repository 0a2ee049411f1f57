# Ablations as configuration (the paper's Tables 2 and 3): `snakemake ablation` evaluates every variant of
# ablation.variants as run abl_<variant> of the run table (runs.smk), under results/{ds}/runs/abl_<variant>/, and
# tabulates them in results/{ds}/eval/ablation.csv/.md. Features and the flow are shared with the main run; a variant
# trains its own stage 2 only when its stage2 settings differ from the main ones, else it reuses the main segment
# scores and only fuses anew.


if STAGE2 and ABLATIONS:

    rule tabulate_ablation:
        input:
            unpack(get_ablation_metrics),
        output:
            csv=f"{R}/eval/ablation.csv",
            md=f"{R}/eval/ablation.md",
        params:
            metrics=named_args,
            table=json.dumps(
                {
                    "dataset": DS,
                    "descriptions": {k: v.get("description", "") for k, v in config["ablation"]["variants"].items()},
                    "fusion": {k: v["fusion"] for k, v in ABLATIONS.items()},
                }
            ),
        log:
            f"{R}/logs/ablation/tabulate_ablation.log",
        conda:
            "../../envs/core.yaml"
        shell:
            "mgenet ablation-table --metrics {params.metrics:q} --params {params.table:q} --out {output.csv:q}"
            " --md {output.md:q} > {log:q} 2>&1"

    rule ablation:
        input:
            f"{R}/eval/ablation.csv",
            f"{R}/eval/ablation.md",
