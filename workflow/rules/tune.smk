# `snakemake tune` (issue 17): settings chosen on the validation split only. Candidates (stage2.* keys of tune.grid,
# one value at a time around the main config) train their own stage 2 under results/{ds}/tune/{candidate}/ (but
# stage2.mm_form, a scoring-time setting, which rescores the main model) and score the validation segments (and the
# training segments when the grid or the config normalise by them); rule tune then scores every fusion setting of the
# grid on every candidate and writes eval/tuning.csv and eval/tuned.yaml. No rule here reads a test file.


if STAGE2 and TUNE_CANDIDATES:

    wildcard_constraints:
        candidate="|".join(TUNE_CANDIDATES),
        retrained="|".join(TUNE_RETRAINED) or "^$",

    use rule train_stage2 as train_stage2_tune with:
        output:
            f"{R}/tune/{{retrained}}/models/stage2.pt",
        params:
            stage2=get_tune_stage2_params,
        log:
            f"{R}/logs/tune/{{retrained}}/train_stage2.log",
        benchmark:
            f"{R}/benchmarks/tune/{{retrained}}/train_stage2.tsv"

    use rule score_components_val as score_val_tune with:
        input:
            flow=f"{R}/flow/val.h5",
            model=get_tune_model,
            features=lambda wc: _features_of(wc, "val"),
        output:
            f"{R}/tune/{{candidate}}/scores/segments_val.parquet",
        params:
            score=get_tune_score_params,
        log:
            f"{R}/logs/tune/{{candidate}}/score_components_val.log",
        benchmark:
            f"{R}/benchmarks/tune/{{candidate}}/score_components_val.tsv"

    use rule score_components_train as score_train_tune with:
        input:
            flow=f"{R}/flow/train.h5",
            model=get_tune_model,
            features=get_train_features,
        output:
            f"{R}/tune/{{candidate}}/scores/segments_train.parquet",
        params:
            score=get_tune_score_params,
        log:
            f"{R}/logs/tune/{{candidate}}/score_components_train.log",
        benchmark:
            f"{R}/benchmarks/tune/{{candidate}}/score_components_train.tsv"


rule tune:
    input:
        unpack(get_tune_inputs),
        manifest=f"{R}/manifest.csv",
        truth=lambda wc: get_ground_truth(wc, "val"),
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
