import numpy as np
import pytest

from mgenet.pose.detectors import letterbox, ssd_anchors, tile_windows
from mgenet.pose.regions import Region, box_iou, hard_nms, project, region_from_points, weighted_nms


def test_ssd_anchors_match_blazepose_detector_layout():
    a = ssd_anchors(224)
    assert a.shape == (2254, 2)  # the detector's 2254 outputs
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])  # two anchors per cell on the stride-8 layer
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[28 * 28 * 2], [0.5 / 14, 0.5 / 14])
    assert np.allclose(a[-6:], [6.5 / 7, 6.5 / 7])  # six anchors per cell on the three stride-32 layers


def test_letterbox_maps_pixels():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255
    canvas, scale, px, py = letterbox(img, 224)
    assert canvas.shape == (224, 224, 3) and scale == pytest.approx(1.12) and px == 0 and py == 56
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    assert abs(xs.mean() - (100 * scale + px)) < 1.5 and abs(ys.mean() - (50 * scale + py)) < 1.5


def test_region_crop_and_projection_round_trip():
    rng = np.random.default_rng(0)
    img = np.zeros((300, 400, 3), np.uint8)
    img[118:123, 248:253] = 255  # a dot at (250, 120)
    for angle in (0.0, 0.7, -2.0):
        r = Region(240.0, 130.0, 80.0, angle)
        patch, m = r.crop(img, 64)
        ys, xs = np.nonzero(patch[..., 0] > 100)
        # the dot's centre in continuous crop coordinates projects back onto the dot
        back = project(np.array([xs.mean() + 0.5, ys.mean() + 0.5]), m)
        np.testing.assert_allclose(back, [250, 120], atol=1.0)
    pts = rng.uniform(0, 64, (10, 2))
    r = Region(10, 20, 50, 0.3)
    m = r.crop_to_image(64)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    np.testing.assert_allclose(project(project(pts, m), inv), pts, atol=1e-9)


def test_region_from_points_rotation_convention():
    upright = region_from_points(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert upright.angle == pytest.approx(0.0) and upright.size == pytest.approx(250.0)
    head_right = region_from_points(np.array([100.0, 200.0]), np.array([200.0, 200.0]))
    assert head_right.angle == pytest.approx(np.pi / 2)
    # the crop's "up" is the hips -> head direction in the image
    m = head_right.crop_to_image(2)
    up = project(np.array([1.0, 0.0]), m) - project(np.array([1.0, 1.0]), m)
    assert up[0] > 0 and abs(up[1]) < 1e-9


def test_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.6, 0.8])
    assert box_iou(boxes, boxes)[0, 1] == pytest.approx(81 / 119)
    assert list(hard_nms(boxes, scores, 0.3)) == [0, 2]
    b, s, e = weighted_nms(boxes, scores, 0.3, extra=boxes[:, :2].copy())
    assert len(b) == 2 and s[0] == 0.9
    np.testing.assert_allclose(b[0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    np.testing.assert_allclose(e[0], b[0, :2])


def test_tiles_cover_the_frame():
    wins = tile_windows(1000, 500, 3, 2, 0.25)
    assert wins[0] == (0, 0, 1000, 500) and len(wins) == 7
    cover = np.zeros((500, 1000), bool)
    for x1, y1, x2, y2 in wins[1:]:
        cover[y1:y2, x1:x2] = True
    assert cover.all()
