import numpy as np
import pytest
from helpers import make_stgnf_dataset, make_ubnormal_dataset

from mgenet import MgenetError
from mgenet.datasets.adapters import index_dataset, video_coverage
from mgenet.io import ALPHAPOSE_SUFFIX, load_gt_mask


def test_stgnf_layout_without_videos(tmp_path):
    root = make_stgnf_dataset(tmp_path / "sh", n_frames=60)
    df = index_dataset(root, "stgnf", resolution=[856, 480])
    assert sorted(df["video"]) == ["01_001", "01_0014", "02_0003", "02_001"]
    test = df[df["split"] == "test"].set_index("video")
    assert test.loc["01_0014", "frames"] == 60 and test.loc["01_0014", "scene"] == "01"
    assert test.loc["02_0003", "width"] == 856 and test.loc["02_0003", "height"] == 480
    assert test.loc["01_0014", "gt_path"].endswith("gt/test_frame_mask/01_0014.npy")
    train = df[df["split"] == "train"].set_index("video")
    assert train.loc["01_001", "frames"] == 60 and train.loc["01_001", "gt_path"] == ""


def test_stgnf_needs_resolution_without_videos(tmp_path):
    root = make_stgnf_dataset(tmp_path / "sh")
    with pytest.raises(MgenetError, match="dataset.resolution"):
        index_dataset(root, "stgnf")


def test_stgnf_missing_gt_names_file(tmp_path):
    root = make_stgnf_dataset(tmp_path / "sh")
    (root / "gt" / "test_frame_mask" / "02_0003.npy").unlink()
    with pytest.raises(MgenetError, match=r"02_0003\.npy: ground truth missing"):
        index_dataset(root, "stgnf", resolution=[856, 480])


def test_gt_of_wrong_length_against_video(tmp_path):
    import cv2

    root = make_stgnf_dataset(tmp_path / "sh", n_frames=60)
    for split, names in (("train", ["01_001", "02_001"]), ("test", ["01_0014", "02_0003"])):
        (root / "videos" / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            w = cv2.VideoWriter(str(root / "videos" / split / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25,
                                (64, 48))
            for _ in range(60 if name != "02_0003" else 50):
                w.write(np.zeros((48, 64, 3), np.uint8))
            w.release()
    with pytest.raises(MgenetError, match=r"02_0003\.npy: ground truth has 60 frames but the video has 50"):
        index_dataset(root, "stgnf")


def test_unknown_layout_and_empty_root(tmp_path):
    with pytest.raises(MgenetError, match="not a known layout"):
        index_dataset(tmp_path, "avenue")
    with pytest.raises(MgenetError, match="no pose file found"):
        index_dataset(tmp_path, "stgnf", resolution=[10, 10])
    with pytest.raises(MgenetError, match="dataset root not found"):
        index_dataset(tmp_path / "missing", "stgnf")


def test_ubnormal_layout(tmp_path):
    root = make_ubnormal_dataset(tmp_path / "ub", n_frames=50)
    df = index_dataset(root, "ubnormal", resolution=[1080, 720]).set_index("video")
    assert df.loc["abnormal_scene_1_scenario_2", "scene"] == "1"
    assert df.loc["normal_scene_2_scenario_3", "split"] == "train"
    row = df.loc["abnormal_scene_1_scenario_2"]
    gt = load_gt_mask(row["gt_path"], int(row["frames"]))
    assert gt.sum() == 15 and gt[10] == 1 and gt[44] == 1 and gt[45] == 0
    normal = df.loc["normal_scene_2_scenario_1"]
    assert normal["gt_path"] == "" and load_gt_mask("", int(normal["frames"])).sum() == 0


def test_extract_source_lists_videos_without_pose_files(tmp_path):
    import cv2

    root = tmp_path / "own"
    for split, names in (("train", ["01_001"]), ("test", ["01_0014"])):
        (root / "videos" / split).mkdir(parents=True)
        for name in names:
            w = cv2.VideoWriter(str(root / "videos" / split / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25,
                                (64, 48))
            for _ in range(30):
                w.write(np.zeros((48, 64, 3), np.uint8))
            w.release()
    frames = root / "videos" / "train" / "02_001"  # a frame folder is a video too
    frames.mkdir()
    for i in range(30):
        cv2.imwrite(str(frames / f"{i:04d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    (root / "gt" / "test_frame_mask").mkdir(parents=True)
    np.save(root / "gt" / "test_frame_mask" / "01_0014.npy", np.zeros(30, np.uint8))
    with pytest.raises(MgenetError, match="no pose file found"):
        index_dataset(root, "stgnf")  # import: the pose files are what it looks for
    df = index_dataset(root, "stgnf", pose_source="extract").set_index("video")
    assert sorted(df.index) == ["01_001", "01_0014", "02_001"]
    assert (df["pose_path"] == "").all() and df.loc["02_001", "video_path"].endswith("videos/train/02_001")
    assert df.loc["01_0014", "frames"] == 30 and df.loc["01_0014", "width"] == 64
    (tmp_path / "empty").mkdir()
    with pytest.raises(MgenetError, match="no video found under videos/train"):
        index_dataset(tmp_path / "empty", "stgnf", pose_source="extract")


def _stgnf_ubnormal(root, n_frames=40):
    """UBnormal as STG-NF ships it: pose/{train,test,validation}, test labels as NumPy arrays saved under a
    `_tracks.txt` name with 1 = normal (all ones for a normal test video), training and validation tracks as text,
    and the official lists of anomalous videos per split."""
    from helpers import walking_track

    from mgenet.io import ALPHAPOSE_SUFFIX, write_alphapose

    rng = np.random.default_rng(0)
    videos = {"train": ["normal_scene_1_scenario_1"],
              "test": ["abnormal_scene_1_scenario_2", "normal_scene_2_scenario_1"],
              "validation": ["abnormal_scene_2_scenario_5"]}
    for folder, names in videos.items():
        for name in names:
            write_alphapose({0: walking_track(range(n_frames), 30, 120, 1.0, rng)},
                            root / "pose" / folder / f"{name}{ALPHAPOSE_SUFFIX}")
    gt = root / "gt"
    gt.mkdir()
    labels = np.ones(n_frames)  # float64, 1 = normal, as STG-NF's files
    labels[10:20] = 0
    with open(gt / "abnormal_scene_1_scenario_2_tracks.txt", "wb") as f:
        np.save(f, labels)
    with open(gt / "normal_scene_2_scenario_1_tracks.txt", "wb") as f:
        np.save(f, np.ones(n_frames))
    (gt / "abnormal_scene_2_scenario_5_tracks.txt").write_text("1,5,9\r\n")
    (gt / "abnormal_scene_7_scenario_3_tracks.txt").write_text("0,0,450\r\n")  # a training video's, not indexed
    (gt / "abnormal_test_video_names.txt").write_text("abnormal_scene_1_scenario_2\n")
    (gt / "abnormal_validation_video_names.txt").write_text("abnormal_scene_2_scenario_5\n")
    (gt / "abnormal_training_video_names.txt").write_text("abnormal_scene_7_scenario_3\n")
    return root


def test_ubnormal_as_stgnf_ships_it(tmp_path):
    root = _stgnf_ubnormal(tmp_path / "UBnormal")
    df = index_dataset(root, "ubnormal", resolution=[1080, 720]).set_index("video")
    assert df["split"].to_dict() == {"normal_scene_1_scenario_1": "train", "abnormal_scene_1_scenario_2": "test",
                                     "normal_scene_2_scenario_1": "test", "abnormal_scene_2_scenario_5": "val"}
    ab = df.loc["abnormal_scene_1_scenario_2"]
    assert ab["frames"] == 40  # the per-frame labels give the length
    gt = load_gt_mask(ab["gt_path"], 40)  # a NumPy file named .txt, 1 = normal: flipped to 1 = anomalous
    assert gt.dtype == np.uint8 and gt.sum() == 10 and gt[10:20].all() and not gt[:10].any()
    assert load_gt_mask(df.loc["normal_scene_2_scenario_1", "gt_path"], 40).sum() == 0
    val = load_gt_mask(df.loc["abnormal_scene_2_scenario_5", "gt_path"], 40)  # text tracks, end inclusive
    assert val.sum() == 5 and val[5:10].all()


def test_ubnormal_split_lists_catch_misplaced_videos(tmp_path):
    root = _stgnf_ubnormal(tmp_path / "UBnormal")
    src = root / "pose" / "validation" / "abnormal_scene_2_scenario_5_alphapose_tracked_person.json"
    src.rename(root / "pose" / "test" / src.name)
    with pytest.raises(MgenetError, match=r"abnormal_scene_2_scenario_5 \(in pose/test, but "
                                          r"gt/abnormal_validation_video_names.txt lists it"):
        index_dataset(root, "ubnormal", resolution=[1080, 720])
    (root / "pose" / "test" / src.name).rename(root / "pose" / "train" / "abnormal_scene_7_scenario_3"
                                               "_alphapose_tracked_person.json")
    with pytest.raises(MgenetError, match="anomalous training video: those go to pose/abnormal_train"):
        index_dataset(root, "ubnormal", resolution=[1080, 720])


def test_a_binary_tracks_file_that_is_not_numpy_is_one_error(tmp_path):
    bad = tmp_path / "x_tracks.txt"
    bad.write_bytes(b"\x93\xff\x00garbage")
    with pytest.raises(MgenetError, match="neither a text tracks file"):
        load_gt_mask(bad, 10)
    labels = tmp_path / "y_tracks.txt"
    with open(labels, "wb") as f:
        np.save(f, np.full(10, 2.0))
    with pytest.raises(MgenetError, match="1 = normal"):
        load_gt_mask(labels, 10)


def test_unsafe_video_names_are_refused_at_indexing_in_one_error_listing_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a `$(touch PWNED)` run by anything would land here
    root = make_stgnf_dataset(tmp_path / "ds", n_frames=40)
    pose = root / "pose" / "test" / f"01_0014{ALPHAPOSE_SUFFIX}"
    for bad in ("01_009$(touch PWNED)", "01 010"):
        (root / "pose" / "test" / f"{bad}{ALPHAPOSE_SUFFIX}").write_bytes(pose.read_bytes())
        np.save(root / "gt" / "test_frame_mask" / f"{bad}.npy", np.zeros(40, np.uint8))
    with pytest.raises(MgenetError) as e:
        index_dataset(root, "stgnf", resolution=[320, 240])
    msg = str(e.value)
    assert msg.startswith("4 dataset file(s) have a video name outside [A-Za-z0-9][A-Za-z0-9._-]*")
    assert "01_009$(touch PWNED)_alphapose" in msg and "01 010.npy" in msg and "\n" not in msg
    assert not (tmp_path / "PWNED").exists()
    for bad in ("01_009$(touch PWNED)", "01 010"):  # renamed, the dataset indexes
        (root / "pose" / "test" / f"{bad}{ALPHAPOSE_SUFFIX}").unlink()
        (root / "gt" / "test_frame_mask" / f"{bad}.npy").unlink()
    assert len(index_dataset(root, "stgnf", resolution=[320, 240])) == 4


def test_a_name_in_both_splits_is_refused(tmp_path):
    root = make_stgnf_dataset(tmp_path / "ds", n_frames=40)
    src = root / "pose" / "test" / f"01_0014{ALPHAPOSE_SUFFIX}"
    (root / "pose" / "train" / src.name).write_bytes(src.read_bytes())
    with pytest.raises(MgenetError, match=r"\['01_0014'\] are in both pose/train and pose/test"):
        index_dataset(root, "stgnf", resolution=[320, 240])


def test_a_test_mask_or_video_without_its_pose_file_is_an_error_not_a_silent_drop(tmp_path):
    root = make_stgnf_dataset(tmp_path / "ds", n_frames=40)
    (root / "pose" / "test" / f"02_0003{ALPHAPOSE_SUFFIX}").unlink()
    (root / "videos" / "test").mkdir(parents=True)
    (root / "videos" / "test" / "01_0020").mkdir()  # a test frame folder without pose file or mask
    with pytest.raises(MgenetError) as e:
        index_dataset(root, "stgnf", resolution=[320, 240])
    assert str(e.value).startswith("2 test file(s) have no pose file in the test split")
    assert "test_frame_mask/02_0003.npy" in str(e.value) and "videos/test/01_0020" in str(e.value)


def test_stgnf_val_split_reads_pose_val_with_its_masks(tmp_path):
    """A validation split in the stgnf layout: pose/val/ with masks in gt/test_frame_mask/ (not orphans of test)."""
    root = make_stgnf_dataset(tmp_path / "ds", n_frames=40)
    src = root / "pose" / "test" / f"02_0003{ALPHAPOSE_SUFFIX}"
    (root / "pose" / "val").mkdir()
    src.rename(root / "pose" / "val" / src.name)
    df = index_dataset(root, "stgnf", resolution=[320, 240]).set_index("video")
    assert df.loc["02_0003", "split"] == "val" and df.loc["02_0003", "gt_path"].endswith("02_0003.npy")
    (root / "pose" / "test" / src.name).write_bytes((root / "pose" / "val" / src.name).read_bytes())
    with pytest.raises(MgenetError, match=r"\['02_0003'\] are in both"):
        index_dataset(root, "stgnf", resolution=[320, 240])


def test_video_coverage_tells_a_pose_only_dataset_from_one_with_some_videos(tmp_path):
    root = make_stgnf_dataset(tmp_path / "st")
    assert video_coverage(root, "stgnf") == ([], ["01_001", "01_0014", "02_0003", "02_001"])
    (root / "testing" / "frames" / "01_0014").mkdir(parents=True)  # ShanghaiTech's own frame folders count too
    (root / "videos" / "train").mkdir(parents=True)
    (root / "videos" / "train" / "02_001.avi").touch()
    assert video_coverage(root, "stgnf") == (["01_0014", "02_001"], ["01_001", "02_0003"])
    ub = make_ubnormal_dataset(tmp_path / "ub")
    assert video_coverage(ub, "ubnormal")[0] == []
    (ub / "Scene1").mkdir()
    (ub / "Scene1" / "abnormal_scene_1_scenario_2.mp4").touch()  # found anywhere under the root, as UBnormal ships
    assert video_coverage(ub, "ubnormal")[0] == ["abnormal_scene_1_scenario_2"]
    assert video_coverage(tmp_path / "missing", "stgnf") == ([], [])
