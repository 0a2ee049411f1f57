# Seeds: summaries over runs of the run table (runs.smk) that differ only by a seed. The main seed's run stands in
# for itself in each; the other runs are made by the rules written once (flow.smk, stage2.smk, score.smk) under
# results/{ds}/runs/<run>/.
#   `snakemake seeds`           the flow, stage 2 and the baselines trained again per training seed of `seeds` on the
#                               same cached features (F_B is a fixed pre-trained backbone), runs seed<n>
#   `snakemake matching_seeds`  the main model kept and only its matching memory M^r written again per seed of
#                               `matching_seeds` (S_nf, S_mo, S_app are the main run's; S_mm and the fused score
#                               change), runs mseed<m>
#   `snakemake seeds_matching`  every training seed's model with every matching seed (a model's own seed is its
#                               seed run), runs seed<n>_mseed<m> (issue 17)
#   `snakemake seeds_val`       the validation split scored with every seed's models, so that a setting whose figure
#                               moves with the seed is chosen on its mean over seeds, on validation
# Each summary writes every AUC as mean ± std into results/{ds}/eval/<target>.csv / .md.

rule tabulate_seeds:
    input:
        unpack(get_seed_table_metrics),
    output:
        csv=f"{R}/eval/{{table}}.csv",
        md=f"{R}/eval/{{table}}.md",
    params:
        metrics=named_args,
        table=seed_table_params,
    wildcard_constraints:
        table="|".join(t for t, spec in SEED_TABLES.items() if spec["enabled"]) or "(?!)",
    log:
        f"{R}/logs/seeds/tabulate_{{table}}.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet seeds-table --metrics {params.metrics:q} --params {params.table:q} --out {output.csv:q}"
        " --md {output.md:q} > {log:q} 2>&1"


# the targets: `snakemake seeds` and so on, each defined when the config asks for its runs
if SEED_TABLES["seeds"]["enabled"]:

    rule seeds:
        input:
            f"{R}/eval/seeds.csv",
            f"{R}/eval/seeds.md",

    rule seeds_val:
        input:
            f"{R}/eval/seeds_val.csv",
            f"{R}/eval/seeds_val.md",


if SEED_TABLES["matching_seeds"]["enabled"]:

    rule matching_seeds:
        input:
            f"{R}/eval/matching_seeds.csv",
            f"{R}/eval/matching_seeds.md",


if SEED_TABLES["seeds_matching"]["enabled"]:

    rule seeds_matching:
        input:
            f"{R}/eval/seeds_matching.csv",
            f"{R}/eval/seeds_matching.md",
