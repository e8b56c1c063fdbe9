import io

import numpy as np
import pytest
from PIL import Image

from classifier.engine.preprocessing import (
    TEN_CROP_PROPORTION,
    TTA_VIEWS,
    PreprocessSpec,
    decode_image,
    image_views,
    preprocess,
    preprocess_array,
)

from .support import encode, rgb_image

# A 4x4 image tiled from four known pixels; at image_size 4 the resize is the identity, so
# every output value below is computed by hand from these.
P00, P01, P10, P11 = (255, 0, 51), (0, 255, 102), (127, 64, 200), (10, 20, 30)
TILE = np.array([[P00, P01], [P10, P11]], dtype=np.uint8)
KNOWN = np.tile(TILE, (2, 2, 1))
MEAN = (100.0, 50.0, 25.0)
STD = (50.0, 25.0, 13.0)


def run(spec: PreprocessSpec) -> np.ndarray:
    out = preprocess([Image.fromarray(KNOWN)], spec)
    assert out.shape == (1, 4, 4, 3) and out.dtype == np.float32
    return out[0]


def test_xception_mode_scales_to_minus_one_one():
    x = run(PreprocessSpec(4, mode="xception", resize="squash"))
    np.testing.assert_allclose(x[0, 0], [1.0, -1.0, -0.6], atol=1e-6)
    np.testing.assert_allclose(x[0, 1], [-1.0, 1.0, -0.2], atol=1e-6)
    np.testing.assert_allclose(x[1, 0], [-0.00392157, -0.49803922, 0.56862745], atol=1e-6)


def test_tf_mode_subtracts_the_dataset_mean_and_divides_by_127_5():
    x = run(PreprocessSpec(4, mode="tf", resize="squash", mean_rgb=MEAN))
    np.testing.assert_allclose(x[0, 0], [1.21568627, -0.39215686, 0.20392157], atol=1e-6)
    np.testing.assert_allclose(x[0, 1], [-0.78431373, 1.60784314, 0.60392157], atol=1e-6)


def test_caffe_mode_subtracts_the_mean_in_rgb_then_returns_bgr():
    x = run(PreprocessSpec(4, mode="caffe", resize="squash", mean_rgb=MEAN, std_rgb=STD))
    np.testing.assert_allclose(x[0, 0], [26.0, -50.0, 155.0], atol=1e-5)
    np.testing.assert_allclose(x[0, 1], [77.0, 205.0, -100.0], atol=1e-5)


def test_torch_mode_divides_by_the_dataset_std():
    x = run(PreprocessSpec(4, mode="torch", resize="squash", mean_rgb=MEAN, std_rgb=STD))
    np.testing.assert_allclose(x[0, 0], [3.1, -2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(x[0, 1], [-2.0, 8.2, 5.92307692], atol=1e-6)


def test_unit_mode_scales_to_zero_one():
    x = run(PreprocessSpec(4, mode="unit", resize="squash"))
    np.testing.assert_allclose(x[0, 0], [1.0, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(x[1, 0], [0.49803922, 0.25098039, 0.78431373], atol=1e-6)


def test_centre_crop_keeps_the_middle_square_and_squash_keeps_everything():
    # 8 wide, 4 high: red in the two leftmost columns, blue elsewhere.
    wide = np.zeros((4, 8, 3), dtype=np.uint8)
    wide[:, :2] = (255, 0, 0)
    wide[:, 2:] = (0, 0, 255)
    image = Image.fromarray(wide)
    cropped = image_views(image, PreprocessSpec(4, mode="unit", resize="center_crop"))[0]
    squashed = image_views(image, PreprocessSpec(4, mode="unit", resize="squash"))[0]
    np.testing.assert_array_equal(cropped, wide[:, 2:6])
    assert (squashed[:, 0, 0] > 200).all(), "squash keeps the red left edge"
    assert (cropped[..., 0] == 0).all(), "centre crop drops it"


@pytest.mark.parametrize("tta", ["none", "flip", "ten-crop"])
def test_each_tta_policy_gives_its_number_of_views_per_image(tta):
    spec = PreprocessSpec.xception(size=16)
    images = [rgb_image(40, 30, seed=1), rgb_image(25, 50, seed=2)]
    out = preprocess(images, spec, tta)
    assert out.shape == (2 * TTA_VIEWS[tta], 16, 16, 3)
    np.testing.assert_array_equal(out, preprocess(images, spec, tta))  # deterministic
    assert TTA_VIEWS == {"none": 1, "flip": 2, "ten-crop": 10}


def test_flip_adds_the_exact_mirror_of_the_plain_view():
    spec = PreprocessSpec.xception(size=16)
    image = rgb_image(40, 30, seed=3)
    plain = preprocess([image], spec)[0]
    flipped = preprocess([image], spec, "flip")
    np.testing.assert_array_equal(flipped[0], plain)
    np.testing.assert_array_equal(flipped[1], plain[:, ::-1])


def test_ten_crop_views_are_five_crops_and_their_mirrors():
    spec = PreprocessSpec(16, mode="unit", resize="squash")
    image = rgb_image(64, 64, seed=4)
    views = image_views(image, spec, "ten-crop")
    assert len(views) == 10
    for crop, mirror in zip(views[::2], views[1::2], strict=True):
        np.testing.assert_array_equal(mirror, crop[:, ::-1])
    # The first is the centre crop of 0.875 of the side: 56 px from offset 4 in a 64 px image.
    side = 64 * TEN_CROP_PROPORTION
    expected = image.resize((16, 16), Image.Resampling.BILINEAR, box=(4, 4, 4 + side, 4 + side))
    np.testing.assert_array_equal(views[0], np.asarray(expected))
    top_left = image.resize((16, 16), Image.Resampling.BILINEAR, box=(0, 0, side, side))
    np.testing.assert_array_equal(views[2], np.asarray(top_left))
    assert len({v.tobytes() for v in views[::2]}) == 5, "five distinct crops"


def test_min_source_side_leaves_room_for_ten_crop():
    spec = PreprocessSpec.xception()
    assert spec.min_source_side("none") == 299
    assert spec.min_source_side("ten-crop") == 342  # ceil(299 / 0.875)


def test_decode_applies_exif_orientation():
    # 6 wide x 2 high, left half red; orientation 6 means "rotate 90 degrees clockwise to view".
    pixels = np.zeros((2, 6, 3), dtype=np.uint8)
    pixels[:, :3] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(pixels), "PNG", exif=exif)
    image = decode_image(data)
    assert image.size == (2, 6) and image.mode == "RGB"
    upright = np.asarray(image)
    np.testing.assert_array_equal(upright[:3, :, 0], 255)  # the red half is now on top
    np.testing.assert_array_equal(upright[3:, :, 0], 0)


def test_decode_reads_bytes_paths_and_file_objects_alike(tmp_path):
    data = encode(rgb_image(20, 10, seed=5), "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    a = np.asarray(decode_image(data))
    np.testing.assert_array_equal(a, np.asarray(decode_image(path)))
    np.testing.assert_array_equal(a, np.asarray(decode_image(str(path))))
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(a, np.asarray(decode_image(fh)))
        assert not fh.closed, "a caller's file object stays open"


def test_decode_converts_grey_and_alpha_images_to_rgb():
    grey = decode_image(encode(Image.new("L", (5, 5), 128), "PNG"))
    rgba = decode_image(encode(Image.new("RGBA", (5, 5), (10, 20, 30, 0)), "PNG"))
    assert grey.mode == rgba.mode == "RGB"
    assert grey.getpixel((0, 0)) == (128, 128, 128)


def test_decode_shrinks_a_large_jpeg_but_never_below_the_target():
    data = encode(rgb_image(1600, 1200, seed=6), "JPEG", quality=80)
    assert decode_image(data).size == (1600, 1200)
    small = decode_image(data, target_size=299)
    assert small.size == (400, 300)  # DCT scale 1/4: 1/8 would give 150 px < 299
    assert decode_image(data, target_size=1000).size == (1600, 1200)


def test_decode_reads_heic():
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEIF encoder")
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), "HEIF", quality=90)
    image = decode_image(data)
    assert image.size == (64, 48) and image.mode == "RGB"
    assert image.getpixel((32, 24))[0] > 150


def test_training_and_serving_paths_give_identical_arrays(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(rgb_image(900, 700, seed=7), "JPEG", quality=90))
    spec = PreprocessSpec.xception(size=96)
    served = preprocess([decode_image(path, spec.min_source_side())], spec)[0]
    trained = preprocess_array(np.asarray(decode_image(path, spec.min_source_side())), spec)
    assert trained.shape == (96, 96, 3) and trained.dtype == np.float32
    np.testing.assert_array_equal(served, trained)


def test_preprocess_array_refuses_anything_but_uint8_rgb():
    spec = PreprocessSpec.xception(size=8)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_array(np.zeros((8, 8, 3), dtype=np.float32), spec)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess_array(np.zeros((8, 8), dtype=np.uint8), spec)


def test_spec_round_trips_through_a_json_safe_dict():
    import json

    spec = PreprocessSpec(224, mode="torch", resize="squash", mean_rgb=MEAN, std_rgb=STD)
    data = json.loads(json.dumps(spec.to_dict()))
    assert PreprocessSpec.from_dict(data) == spec
    assert data == {
        "image_size": 224,
        "mode": "torch",
        "resize": "squash",
        "mean_rgb": [100.0, 50.0, 25.0],
        "std_rgb": [50.0, 25.0, 13.0],
        "interpolation": "bilinear",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "xception"}, "missing 'image_size'"),
        ({"image_size": 299, "mode": "inception"}, "mode must be one of"),
        ({"image_size": "299", "mode": "xception"}, "image_size must be an integer"),
        ({"image_size": 0, "mode": "xception"}, "between 1 and 4096"),
        ({"image_size": 299, "mode": "xception", "resize": "pad"}, "resize must be one of"),
        ({"image_size": 299, "mode": "tf"}, "needs mean_rgb"),
        ({"image_size": 299, "mode": "torch", "mean_rgb": [1, 2, 3]}, "needs std_rgb"),
        ({"image_size": 299, "mode": "tf", "mean_rgb": [1, 2]}, "3 values"),
        ({"image_size": 299, "mode": "xception", "mean_rgb": [1, 2, 3]}, "must be null"),
        ({"image_size": 299, "mode": "xception", "crop": 0.9}, "unknown preprocessing spec"),
        ({"image_size": 299, "mode": "unit", "interpolation": "cubic"}, "interpolation"),
    ],
)
def test_from_dict_explains_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        PreprocessSpec.from_dict(data)


def test_factories_describe_xception_scivision_and_deepoc_models():
    assert PreprocessSpec.xception() == PreprocessSpec(299, "xception", "center_crop")
    assert PreprocessSpec.scivision_plankton() == PreprocessSpec(256, "unit", "squash")
    conf = {
        "model": {"modelname": "ResNet50", "image_size": 224, "preprocess_mode": None},
        "dataset": {"mean_RGB": [107.6, 112.1, 81.0], "std_RGB": [52.8, 50.6, 50.9]},
    }
    spec = PreprocessSpec.from_deepoc_conf(conf)
    assert (spec.image_size, spec.mode, spec.resize) == (224, "caffe", "squash")
    assert spec.mean_rgb == (107.6, 112.1, 81.0)
    with pytest.raises(ValueError, match="needs mean_rgb"):
        PreprocessSpec.from_deepoc_conf({"model": {"image_size": 224, "preprocess_mode": "tf"}})


def test_an_empty_batch_is_an_empty_array():
    assert preprocess([], PreprocessSpec.xception(size=8)).shape == (0, 8, 8, 3)


def test_decode_rejects_what_is_not_an_image():
    with pytest.raises(Exception, match="cannot identify"):
        decode_image(io.BytesIO(b"not an image"))
