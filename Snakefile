# mgenet: MGENet video anomaly detection as a Snakemake DAG. Each stage is one rules file; every artifact lands
# under results/{dataset}/ (a variant run's under results/{dataset}/runs/<run>/). See README.md for what each stage
# produces, and config.yaml for the settings.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# the config (validated) and path functions, then the table of runs (main, seeds, ablations, tuning candidates) that
# the rules below are written over; the rules files after them may come in any order
include: "workflow/rules/common.smk"
include: "workflow/rules/runs.smk"


wildcard_constraints:
    video=r"[A-Za-z0-9][A-Za-z0-9._-]*",  # mgenet.datasets.adapters.SAFE_NAME: index_dataset refuses others
    split=r"train|test|val",
    run_dir=RUN_DIRS["any"],  # "" (the main run) or runs/<run>/ (runs.smk)


include: "workflow/rules/data.smk"
include: "workflow/rules/pose.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/stage2.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/baselines/common.smk"
include: "workflow/rules/baselines/snippets.smk"
include: "workflow/rules/baselines/crkr.smk"
include: "workflow/rules/baselines/arnet.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
