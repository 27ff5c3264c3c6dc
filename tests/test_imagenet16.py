"""ImageNet16-120 from tiny files in the official downsampled-ImageNet pickle format."""
import os
import pickle

import numpy as np
import pytest
import torch

import fixtures
from runner.data import imagenet16
from runner.data.datasets import DataError, dataset


def own_message(exc):
    return str(exc).split("\n  In call to configurable")[0]


def test_loads_classes_1_to_120_with_0_based_labels(tiny_datasets):
    root, written = tiny_datasets
    d = dataset(name="imagenet16", root=str(root), verify_md5=False)
    assert d.num_classes == 120 and d.in_channels == 3 and d.pad == 2 and d.flip is True
    for split, x, y in (("train", d.train_x, d.train_y), ("test", d.test_x, d.test_y)):
        images, labels = written["imagenet16"][split]
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 16, 16)
        np.testing.assert_array_equal(x.numpy(), images, err_msg=split)
        np.testing.assert_array_equal(y.numpy(), labels, err_msg=split)
        assert int(y.min()) >= 0 and int(y.max()) == 119  # label 120 kept, as 119


def test_labels_above_120_are_dropped_and_labels_shift_by_one(tmp_path):
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    rows = np.zeros((4, 768), np.uint8)
    rows[:, 0] = [1, 2, 3, 4]  # red plane, pixel (0, 0) identifies the image
    rows[:, 256 + 17] = 9  # green plane, row 1, column 1
    for f in imagenet16.TRAIN + [imagenet16.VAL]:
        with open(folder / f, "wb") as fh:
            pickle.dump({"data": rows, "labels": [1, 121, 120, 1000]}, fh)
    x, y = imagenet16.read(str(folder / "val_data"), verify_md5=False)
    assert y.tolist() == [0, 119] and x[:, 0, 0, 0].tolist() == [1, 3]
    assert x[0, 1, 1, 1] == 9 and x[0, 1, 0, 1] == 0
    d = dataset(name="imagenet16", root=str(tmp_path), verify_md5=False)
    assert d.train_y.tolist() == [0, 119] * 10


def test_statistics_are_nb201s_in_unit_range(tiny_datasets):
    d = dataset(name="imagenet16", root=str(tiny_datasets[0]), verify_md5=False)
    assert torch.allclose(d.mean.flatten(), torch.tensor([122.68, 116.66, 104.01]) / 255)
    assert torch.allclose(d.std.flatten(), torch.tensor([63.22, 61.26, 65.09]) / 255)


def test_missing_file_is_one_line_naming_it(tmp_path):
    fixtures.write_imagenet16(str(tmp_path))
    os.remove(tmp_path / "ImageNet16" / "train_data_batch_7")
    with pytest.raises(DataError) as info:
        dataset(name="imagenet16", root=str(tmp_path), verify_md5=False, download=True)
    msg = own_message(info.value)
    assert "\n" not in msg and "train_data_batch_7" in msg and "val_data" not in msg
    assert os.path.join(str(tmp_path), "ImageNet16") in msg and "dataset.root" in msg


def test_md5_is_checked_by_default(tiny_datasets):
    with pytest.raises(DataError, match="md5 mismatch .*train_data_batch_1"):
        dataset(name="imagenet16", root=str(tiny_datasets[0]))
