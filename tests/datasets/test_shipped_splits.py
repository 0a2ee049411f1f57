"""The weak splits shipped under resources/splits/ parse and hold the published counts."""

from __future__ import annotations

from helpers import REPO

from mgenet.io import read_weak_split


def test_shanghaitech_weak_split_is_zhong_et_als_238_and_199_videos():
    df = read_weak_split(REPO / "resources" / "splits" / "shanghaitech_weak.csv")
    counts = df.groupby(["split", "label"]).size().to_dict()
    # Zhong et al. (CVPR 2019): 238 training videos (63 anomalous), 199 test videos (44 anomalous)
    assert counts == {("train", 0): 175, ("train", 1): 63, ("test", 0): 155, ("test", 1): 44}
    assert df["video"].is_unique and len(df) == 437  # ShanghaiTech's 330 + 107 videos, each once
    # anomalous = one of ShanghaiTech's 107 test videos (SS_CCCC), normal = one of its 330 training videos (SS_CCC)
    clip = df["video"].str.split("_").str[1].str.len()
    assert ((clip == 4) == (df["label"] == 1)).all() and df["video"].str.fullmatch(r"\d\d_\d{3,4}").all()
