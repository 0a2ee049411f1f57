# The baselines' settings and input functions (their rules: arnet.smk, crkr.smk, snippets.smk beside this file).


# ---------------------------------------------------------------------------------------------------- snippets
def snippets_params(wildcards):
    """The settings the snippet vectors depend on: the snippets section, the backbone's weights, seed and device."""
    return json.dumps({**config["snippets"], "weights": config["features"]["weights"], "seed": config["seed"],
                       "device": config["device"]}, sort_keys=True)


def snippet_files(videos, snippet_len):
    """Snippets files of ``videos`` at ``snippet_len`` frames per snippet (what a baseline's rule takes as input)."""
    return expand(f"{R}/snippets/len{snippet_len}/{{video}}.h5", video=sorted(videos))


# ---------------------------------------------------------------------------------------------------- AR-Net
# Without a weak split it cannot run; a config that sets a real dataset over config.yaml inherits arnet.enabled from
# it, so that is said, not an error.
ARNET = config["arnet"]["enabled"]
if ARNET and not WEAK_SPLIT:
    ARNET = False
    print("mgenet: arnet.enabled but no dataset.weak_split: AR-Net does not run (it trains on the weak split's "
          "training videos and is evaluated on its test videos only; README, 'AR-Net'). Set dataset.weak_split, "
          "or arnet.enabled: false to silence this.", file=sys.stderr)


def get_arnet_params(wildcards):
    """What shapes AR-Net's training: the arnet section (but `enabled`), the run's seed and device."""
    keep = {k: v for k, v in config["arnet"].items() if k != "enabled"}
    return json.dumps({**keep, "seed": get_run_seed(wildcards), "device": config["device"]}, sort_keys=True)


def _weak_videos(wildcards, split):
    weak = pd.read_csv(get_weak_split(wildcards)[0], dtype=str, keep_default_na=False)
    return sorted(weak.loc[weak["split"].str.strip() == split, "video"])


def get_arnet_train_snippets(wildcards):
    """Snippets files of the weak split's training videos (index_dataset has checked the split)."""
    return snippet_files(_weak_videos(wildcards, "train"), config["arnet"]["snippet_len"])


def get_arnet_test_snippets(wildcards):
    """Snippets files of every test video: AR-Net's table covers the test split (evaluate keeps the weak test part)."""
    return snippet_files(videos_of(wildcards, "test"), config["arnet"]["snippet_len"])


# ---------------------------------------------------------------------------------------------------- CR + KR
CRKR = config["crkr"]


def crkr_params(stream):
    """What a stream's training (and scoring) depends on: its section, plus for CR the backbone's weights, and the
    run's seed and device."""

    def params(wildcards):
        out = {**CRKR[stream], "seed": get_run_seed(wildcards), "device": config["device"]}
        if stream == "cr":  # F_B is fixed: the main seed's (for random weights), whatever the training seed
            out.update(weights=config["features"]["weights"], backbone_seed=config["seed"])
        return json.dumps(out, sort_keys=True)

    return params


@dag_errors
def _split_video_files(wildcards, split):
    df = manifest(wildcards)
    paths = df.loc[df["split"] == split, "video_path"]
    if (paths == "").any():
        raise MgenetError(f"crkr.enabled: the two-stream baseline reads the videos, but {(paths == '').sum()} {split} "
                          f"video(s) of {R}/manifest.csv have no video file (pose-only dataset); set crkr.enabled: "
                          f"false or put the videos under the dataset root.")
    return sorted(paths)


def get_cr_train_videos(wildcards):
    """The training videos' files: the CR stream learns from them alone (never a test video)."""
    return _split_video_files(wildcards, "train")


def get_cr_test_videos(wildcards):
    return _split_video_files(wildcards, "test")


def get_kr_snippets(split):
    def files(wildcards):
        return snippet_files(videos_of(wildcards, split), CRKR["kr"]["snippet_len"])

    return files
