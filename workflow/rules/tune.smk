# `snakemake tune` (issue 17): settings chosen on the validation split only. Candidates (stage2.* keys of tune.grid,
# one value at a time around the main config) are runs tune_<candidate> of the run table (runs.smk): each trains its
# own stage 2 under results/{ds}/runs/tune_<candidate>/ (but stage2.mm_form, a scoring-time setting, which rescores the
# main model) and scores the validation segments (and the training segments when the grid or the config normalise by
# them); rule tune then scores every fusion setting of the grid on every candidate and writes eval/tuning.csv and
# eval/tuned.yaml. With tune.seeds, every candidate is also a run under each listed seed (the seed's run seed<s> for
# "main", runs/seed<s>_tune_<candidate>/ for the others, on the seed's flow and model), mgenet tune reads their
# tables as NAME@SEED and chooses on the mean over the seeds. No rule here reads a test file.


rule tune:
    input:
        unpack(get_tune_inputs),
        manifest=f"{R}/manifest.csv",
        truth=get_val_truth,
    output:
        table=f"{R}/eval/tuning.csv",
        tuned=f"{R}/eval/tuned.yaml",
    params:
        candidates=tune_args("val_"),
        train=tune_args("train_"),
        intervals=intervals_path(),
        tune=tune_params(),
    log:
        f"{R}/logs/eval/tune.log",
    conda:
        "../../envs/core.yaml"
    shell:
        "mgenet tune --candidates {params.candidates:q} --train-scores {params.train:q}"
        " --manifest {input.manifest:q} --intervals {params.intervals:q} --params {params.tune:q}"
        " --out {output.table:q} --tuned {output.tuned:q} > {log:q} 2>&1"
