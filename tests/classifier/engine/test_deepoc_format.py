import io
import json
import tarfile

import pytest

from classifier.engine.deepoc_format import (
    DeepOCFormatError,
    DeepOCSample,
    extract_archive,
    open_deepoc_model,
    read_deepoc_dataset,
    read_deepoc_model,
    write_deepoc_dataset,
)
from classifier.engine.preprocessing import PreprocessSpec

from .support import DEEPOC_CLASSES, DEEPOC_MEAN, DEEPOC_STD, deepoc_conf


@pytest.mark.parametrize("form", ["folder", "tar.gz", "tar.xz"])
def test_it_reads_a_model_as_image_classification_tf_writes_it(form, deepoc_models):
    with open_deepoc_model(deepoc_models[form]) as model:
        assert model.labels == DEEPOC_CLASSES
        assert model.info == ["516 images in DB", "40 images in DB", "7 images in DB"]
        assert model.spec == PreprocessSpec(
            32, mode="tf", resize="squash", mean_rgb=DEEPOC_MEAN, std_rgb=DEEPOC_STD
        )
        assert model.architecture == "Xception"
        assert model.num_classes == 3
        assert model.weights_path.name == "final_model.h5" and model.weights_path.is_file()
        assert model.root.name == "2019-02-18_112233"
        assert model.metrics["val_acc"] == 0.7 and model.metrics["epochs"] == 2
        assert model.metrics["training_time_s"] == 12.5
        assert model.conf["training"]["batch_size"] == 16
        extracted = model.temp_dir
    if form != "folder":
        assert extracted is not None and not extracted.exists(), "extracted files are removed"


def test_it_extracts_to_a_chosen_folder_and_leaves_it(deepoc_models, tmp_path):
    model = read_deepoc_model(deepoc_models["tar.xz"], extract_to=tmp_path / "out")
    assert model.temp_dir is None
    assert model.weights_path.is_relative_to(tmp_path / "out")


def test_it_names_a_missing_conf_json(deepoc_copy):
    (deepoc_copy / "conf" / "conf.json").unlink()
    with pytest.raises(DeepOCFormatError, match="missing conf/conf.json"):
        read_deepoc_model(deepoc_copy)


def test_it_names_a_missing_checkpoint(deepoc_copy):
    (deepoc_copy / "ckpts" / "final_model.h5").rename(deepoc_copy / "ckpts" / "epoch-02.hdf5")
    with pytest.raises(DeepOCFormatError, match=r"missing ckpts/final_model.h5 .*epoch-02.hdf5"):
        read_deepoc_model(deepoc_copy)
    assert read_deepoc_model(deepoc_copy, ckpt_name="epoch-02.hdf5").num_classes == 3


def add_a_class(folder):
    with open(folder / "dataset_files" / "classes.txt", "a") as fh:
        fh.write("Impatiens glandulifera\n")
    with open(folder / "dataset_files" / "info.txt", "a") as fh:
        fh.write("12 images in DB\n")


def test_it_refuses_a_class_list_that_disagrees_with_conf_json(deepoc_copy):
    add_a_class(deepoc_copy)
    with pytest.raises(DeepOCFormatError, match="num_classes is 3 but .*lists 4 classes"):
        read_deepoc_model(deepoc_copy)


def test_it_refuses_a_class_list_that_disagrees_with_the_output_layer(deepoc_copy):
    conf = deepoc_conf(num_classes=None)
    (deepoc_copy / "conf" / "conf.json").write_text(json.dumps(conf))
    add_a_class(deepoc_copy)
    with pytest.raises(DeepOCFormatError, match="outputs 3 classes but .*lists 4"):
        read_deepoc_model(deepoc_copy)


def test_it_refuses_an_image_size_the_model_was_not_built_for(deepoc_copy):
    conf = deepoc_conf()
    conf["model"]["image_size"] = 224
    (deepoc_copy / "conf" / "conf.json").write_text(json.dumps(conf))
    with pytest.raises(DeepOCFormatError, match="image_size is 224 but .* expects 32x32"):
        read_deepoc_model(deepoc_copy)


def test_it_takes_the_image_size_from_the_model_when_conf_leaves_it_empty(deepoc_copy):
    conf = deepoc_conf()
    conf["model"]["image_size"] = None
    (deepoc_copy / "conf" / "conf.json").write_text(json.dumps(conf))
    assert read_deepoc_model(deepoc_copy).spec.image_size == 32


def test_it_drops_an_info_file_of_the_wrong_length_with_a_warning(deepoc_copy):
    (deepoc_copy / "dataset_files" / "info.txt").write_text("only one line\n")
    with pytest.warns(UserWarning, match="1 lines for 3 classes"):
        assert read_deepoc_model(deepoc_copy).info is None


def test_it_refuses_a_folder_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeepOCFormatError, match="no DEEP-OC model folder"):
        read_deepoc_model(tmp_path / "empty")
    with pytest.raises(DeepOCFormatError, match="not found"):
        read_deepoc_model(tmp_path / "nothing.tar.gz")


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"") -> str:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "why"),
    [
        ("/etc/cron.d/evil", tarfile.REGTYPE, "absolute path"),
        ("model/../../evil", tarfile.REGTYPE, r"outside the archive"),
        ("model/ckpts/final_model.h5", tarfile.SYMTYPE, "links are not allowed"),
        ("model/ckpts/final_model.h5", tarfile.LNKTYPE, "links are not allowed"),
        ("model/dev", tarfile.CHRTYPE, "only regular files"),
    ],
)
def test_it_refuses_unsafe_archive_members(tmp_path, name, kind, why):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    member.size = 4 if kind == tarfile.REGTYPE else 0
    archive = _tar_with(tmp_path, member, b"evil")
    with pytest.raises(DeepOCFormatError, match=why):
        read_deepoc_model(archive)
    with pytest.raises(DeepOCFormatError, match="unsafe archive member"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_it_refuses_an_archive_that_expands_too_far(deepoc_models, tmp_path):
    with pytest.raises(DeepOCFormatError, match="expands to more than"):
        extract_archive(deepoc_models["tar.gz"], tmp_path / "out", max_bytes=1000)


# -- datasets -------------------------------------------------------------------------------

INFO = ["516 images in DB ", "", "7 images in DB "]


@pytest.fixture
def dataset(tmp_path):
    return write_deepoc_dataset(
        tmp_path / "data",
        classes=DEEPOC_CLASSES,
        info=INFO,
        splits={
            "train": [("ordesa/a1.jpg", 0), ("ordesa/b1.jpg", 1), ("c1.jpg", 2)],
            "val": [DeepOCSample("ordesa/a2.jpg", 0)],
            "test": [("x/unknown.jpg", None)],
        },
        images={"ordesa/a1.jpg": b"\xff\xd8jpeg", "c1.jpg": b"\xff\xd8jpeg"},
    )


def test_a_dataset_reads_back_what_was_written(dataset):
    assert dataset.classes == DEEPOC_CLASSES
    assert dataset.info == INFO
    assert dataset.splits["train"][1] == DeepOCSample("ordesa/b1.jpg", 1)
    assert dataset.splits["test"] == [DeepOCSample("x/unknown.jpg", None)]
    assert dataset.image_path(dataset.splits["train"][0]).read_bytes() == b"\xff\xd8jpeg"
    assert dataset.missing_images() == ["ordesa/b1.jpg", "ordesa/a2.jpg", "x/unknown.jpg"]
    files = dataset.root / "dataset_files"
    assert (files / "train.txt").read_text() == "ordesa/a1.jpg 0\nordesa/b1.jpg 1\nc1.jpg 2\n"
    assert (files / "test.txt").read_text() == "x/unknown.jpg\n"


def test_writing_a_read_dataset_again_is_byte_identical(dataset, tmp_path):
    copy = write_deepoc_dataset(
        tmp_path / "copy",
        classes=dataset.classes,
        info=dataset.info,
        splits=dataset.splits,
    )
    for name in ("classes.txt", "info.txt", "train.txt", "val.txt", "test.txt"):
        original = (dataset.root / "dataset_files" / name).read_bytes()
        assert (copy.root / "dataset_files" / name).read_bytes() == original, name


def test_a_dataset_label_outside_the_class_list_is_refused(dataset):
    with open(dataset.root / "dataset_files" / "val.txt", "a") as fh:
        fh.write("ordesa/a3.jpg 7\n")
    with pytest.raises(DeepOCFormatError, match=r"val.txt line 2: label 7 is outside 0..2"):
        read_deepoc_dataset(dataset.root)


def test_a_dataset_path_escaping_the_images_folder_is_refused(dataset):
    with open(dataset.root / "dataset_files" / "train.txt", "a") as fh:
        fh.write("../../etc/passwd 0\n")
    with pytest.raises(DeepOCFormatError, match="must be relative"):
        read_deepoc_dataset(dataset.root)


def test_a_dataset_needs_train_and_classes(dataset):
    (dataset.root / "dataset_files" / "train.txt").unlink()
    with pytest.raises(DeepOCFormatError, match="missing dataset_files/train.txt"):
        read_deepoc_dataset(dataset.root)
    (dataset.root / "dataset_files" / "classes.txt").unlink()
    with pytest.raises(DeepOCFormatError, match="missing dataset_files/classes.txt"):
        read_deepoc_dataset(dataset.root)


def test_writing_refuses_what_image_classification_tf_could_not_read(tmp_path):
    with pytest.raises(DeepOCFormatError, match="cannot contain spaces"):
        write_deepoc_dataset(tmp_path, classes=["a"], splits={"train": [("my photo.jpg", 0)]})
    with pytest.raises(DeepOCFormatError, match="needs a label"):
        write_deepoc_dataset(tmp_path, classes=["a"], splits={"train": [("p.jpg", None)]})
    with pytest.raises(DeepOCFormatError, match="unique"):
        write_deepoc_dataset(tmp_path, classes=["a", "a"], splits={"train": []})


def test_a_refused_archive_leaves_an_existing_destination_folder_alone(tmp_path):
    member = tarfile.TarInfo("../evil")
    member.size = 4
    archive = _tar_with(tmp_path, member, b"evil")
    keep = tmp_path / "models"
    keep.mkdir()
    (keep / "other_model.h5").write_bytes(b"x")
    with pytest.raises(DeepOCFormatError):
        read_deepoc_model(archive, extract_to=keep)
    assert (keep / "other_model.h5").exists()
