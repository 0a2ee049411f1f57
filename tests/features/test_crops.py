"""Human-centric crops land where they should."""

from __future__ import annotations

import numpy as np
import torch

from mgenet.features.crops import KINETICS_MEAN, bad_boxes, crop_resize, normalise_clips, widen_boxes


def rectangle_frame() -> np.ndarray:
    """A 200 x 300 black frame with a white 50 x 100 rectangle at x 100..149, y 40..139."""
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[40:140, 100:150] = 255
    return frame


def test_box_is_widened_20_percent_each_side():
    box = np.array([100, 40, 150, 140], np.float32)  # the rectangle: 50 x 100
    np.testing.assert_array_equal(widen_boxes(box, 300, 200), [90, 20, 160, 160])
    np.testing.assert_array_equal(widen_boxes(box, 300, 200, widen=0.0), box)


def test_widened_box_is_rounded_out_and_clipped_to_the_frame():
    boxes = np.array([[[-10.0, -5.0, 20.0, 35.0], [280.5, 150.2, 299.0, 199.0]]], np.float32)  # (1, 2, 4)
    out = widen_boxes(boxes, 300, 200)
    assert out.shape == (1, 2, 4)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 26, 43])  # x2 = 20 + 6, y2 = 35 + 8
    np.testing.assert_array_equal(out[0, 1], [276, 140, 300, 200])  # floor(280.5 - 3.7), floor(150.2 - 9.76)


def test_rectangle_lands_in_the_middle_of_its_crop():
    frame = rectangle_frame()
    box = widen_boxes(np.array([100, 40, 150, 140], np.float32), 300, 200)  # 70 x 140 crop
    same = crop_resize(frame, box, (140, 70))  # no resampling: exact placement
    white = np.argwhere(same[..., 0] == 255)
    assert white.min(0).tolist() == [20, 10] and white.max(0).tolist() == [119, 59]
    assert (same[..., 0] == 255).sum() == 100 * 50
    small = crop_resize(frame, box, (28, 14))  # 1/5: area averaging over aligned 5 x 5 blocks
    np.testing.assert_array_equal(np.argwhere(small[..., 0] == 255).min(0), [4, 2])
    np.testing.assert_array_equal(np.argwhere(small[..., 0] == 255).max(0), [23, 11])
    assert set(np.unique(small)) == {0, 255}
    big = crop_resize(frame, box, (280, 140))  # 2x, bilinear: the rectangle doubles
    rows, cols = np.nonzero(big[..., 0] > 127)
    assert abs(rows.min() - 40) <= 1 and abs(rows.max() - 239) <= 1
    assert abs(cols.min() - 20) <= 1 and abs(cols.max() - 119) <= 1


def test_crop_of_a_clipped_box_keeps_the_visible_part():
    frame = rectangle_frame()
    box = widen_boxes(np.array([120, 160, 180, 240], np.float32), 300, 200)  # runs off the bottom
    assert box[3] == 200
    crop = crop_resize(frame, box, (32, 16))
    assert crop.shape == (32, 16, 3) and crop.max() == 0  # below the rectangle: black


def test_bad_boxes():
    boxes = np.array([[10, 10, 20, 30],      # fine
                      [10, 10, 10, 30],      # zero width
                      [10, 30, 20, 30],      # zero height
                      [np.nan, 0, 5, 5],     # not finite
                      [400, 300, 420, 340],  # entirely outside a 300 x 200 frame
                      [-30, -30, 5, 5]],     # partly outside: cropped to the visible part
                     np.float32)
    np.testing.assert_array_equal(bad_boxes(boxes, widen_boxes(boxes, 300, 200)),
                                  [False, True, True, True, True, False])


def test_normalisation_is_kinetics_mean_std_rgb():
    clips = torch.zeros(1, 2, 4, 4, 3, dtype=torch.uint8)
    clips[..., 0], clips[..., 1], clips[..., 2] = 124, 116, 104  # about the mean, R G B
    x = normalise_clips(clips)
    assert x.shape == (1, 3, 2, 4, 4) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0, 0].numpy(), (np.array([124, 116, 104]) - KINETICS_MEAN) /
                               np.array([58.395, 57.12, 57.375]), atol=1e-6)
    assert x.abs().max() < 0.01
