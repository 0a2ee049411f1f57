"""Studies over runs: summaries over seeds, the ablation table, and tuning on the validation split."""
