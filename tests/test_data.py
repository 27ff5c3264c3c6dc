"""runner.data.datasets through the real torchvision dataset classes on tiny official-format files, and
runner.data.augment against torchvision's functional transforms."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

import augment_steps
import fixtures
from helpers import ROOT
from runner.data import augment
from runner.data.datasets import STATS, DataError, Dataset, dataset, digits_table

CASES = [  # name, folder, files, number of classes, label range checked against
    ("cifar10", "cifar-10-batches-py",
     [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"], 10),
    ("cifar100", "cifar-100-python", ["train", "test", "meta"], 100),
    ("svhn", "svhn", ["train_32x32.mat", "test_32x32.mat"], 10),
]
NAMES = [c[0] for c in CASES]


def own_message(exc):
    """The exception's message without the trail gin appends when a configurable raises."""
    return str(exc).split("\n  In call to configurable")[0]


def copy_dataset(data_root, name, dst):
    """A private copy of one dataset's folder, for tests that delete or damage files."""
    folder = {c[0]: c[1] for c in CASES}[name]
    shutil.copytree(os.path.join(data_root, folder), os.path.join(dst, folder))
    return dst


# ---------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name,folder,files,classes", CASES, ids=NAMES)
def test_loads_tiny_files_through_torchvision(tiny_datasets, name, folder, files, classes):
    root, written = tiny_datasets
    d = dataset(name=name, root=str(root), verify_md5=False)
    assert isinstance(d, Dataset)
    assert d.name == name and d.num_classes == classes
    for split, x, y in (("train", d.train_x, d.train_y), ("test", d.test_x, d.test_y)):
        n = len(written[name][split][1])
        assert x.dtype == torch.uint8 and tuple(x.shape) == (n, 3, 32, 32), split
        assert y.dtype == torch.int64 and tuple(y.shape) == (n,), split
        assert 0 <= int(y.min()) and int(y.max()) < classes, split
    assert d.in_channels == 3 and d.pad == 4 and d.flip is True
    assert tuple(d.mean.shape) == (1, 3, 1, 1) and tuple(d.std.shape) == (1, 3, 1, 1)


@pytest.mark.parametrize("name", NAMES)
def test_images_and_labels_round_trip_exactly(tiny_datasets, name):
    """Pixel layout (CIFAR R/G/B planes, SVHN HxWxCxN) and labels come back as written."""
    root, written = tiny_datasets
    d = dataset(name=name, root=str(root), verify_md5=False)
    for split, x, y in (("train", d.train_x, d.train_y), ("test", d.test_x, d.test_y)):
        images, labels = written[name][split]
        np.testing.assert_array_equal(x.numpy(), images, err_msg=split)
        np.testing.assert_array_equal(y.numpy(), labels, err_msg=split)


def test_svhn_label_10_means_digit_0(tiny_datasets):
    from scipy.io import loadmat

    root, _ = tiny_datasets
    raw = loadmat(os.path.join(root, "svhn", "train_32x32.mat"))["y"].ravel()
    assert set(raw.tolist()) <= set(range(1, 11)) and 10 in raw and 0 not in raw
    d = dataset(name="svhn", root=str(root), verify_md5=False)
    got = d.train_y.numpy()
    np.testing.assert_array_equal(got, np.where(raw == 10, 0, raw))
    assert set(got.tolist()) == set(range(10))


def test_cifar_channel_planes_are_not_mixed_up(tmp_path):
    """One image, red plane 10, green 20, blue 30: the loaded channels are exactly those."""
    fixtures.write_cifar10(str(tmp_path), n_train=5, n_test=1)
    folder = tmp_path / "cifar-10-batches-py"
    row = np.concatenate([np.full(1024, v, np.uint8) for v in (10, 20, 30)])
    row[5] = 200  # red plane, row 0, column 5
    row[1024 + 32 * 3] = 201  # green plane, row 3, column 0
    fixtures._pickle({"data": row[None], "labels": [7]}, str(folder / "test_batch"))
    d = dataset(name="cifar10", root=str(tmp_path), verify_md5=False)
    img = d.test_x[0]
    assert int(img[0, 0, 5]) == 200 and int(img[1, 3, 0]) == 201
    assert int(img[0, 1, 1]) == 10 and int(img[1, 1, 1]) == 20 and int(img[2, 1, 1]) == 30
    assert int(d.test_y[0]) == 7


def test_limit_caps_each_split(data_root):
    d = dataset(name="cifar10", root=str(data_root), verify_md5=False, limit=8)
    assert d.train_x.shape[0] == 8 and d.train_y.shape[0] == 8
    assert d.test_x.shape[0] == 8 and d.test_y.shape[0] == 8


def test_digits_needs_no_files(tmp_path):
    d = dataset(name="digits", root=str(tmp_path / "nothing here"))
    assert d.train_x.dtype == torch.uint8 and tuple(d.train_x.shape[1:]) == (1, 16, 16)
    assert d.train_x.shape[0] + d.test_x.shape[0] == 1797
    assert d.in_channels == 1 and d.num_classes == 10 and d.pad == 2 and d.flip is False
    assert set(d.test_y.tolist()) == set(range(10))


def test_digits_are_scikit_learns_read_without_importing_it():
    from sklearn.datasets import load_digits

    images, labels = digits_table()
    d = load_digits()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
    code = ("import sys; from runner.data.datasets import dataset; dataset(name='digits'); "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("name,folder,files,classes", CASES, ids=NAMES)
def test_missing_folder_is_a_one_line_data_error(tmp_path, name, folder, files, classes):
    with pytest.raises(DataError) as info:
        dataset(name=name, root=str(tmp_path), verify_md5=False)
    msg = own_message(info.value)
    assert "\n" not in msg
    assert os.path.join(str(tmp_path), folder) in msg
    for f in files:
        assert f in msg
    assert "dataset.download" in msg


def test_error_names_only_the_missing_file(tmp_path, data_root):
    copy_dataset(data_root, "cifar10", tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError) as info:
        dataset(name="cifar10", root=str(tmp_path), verify_md5=False)
    msg = own_message(info.value)
    assert "test_batch" in msg and "dataset.download" in msg
    assert "data_batch_1" not in msg and "batches.meta" not in msg


@pytest.mark.parametrize("name", NAMES)
def test_md5_check_rejects_tiny_files(data_root, name):
    """verify_md5=True (the default) runs torchvision's integrity check, which the tiny files
    fail; that surfaces as a DataError, not as a torchvision RuntimeError."""
    with pytest.raises(DataError) as info:
        dataset(name=name, root=str(data_root), verify_md5=True)
    assert "\n" not in own_message(info.value)


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown dataset 'imagenet21k'"):
        dataset(name="imagenet21k")


@pytest.mark.parametrize("name,victim", [("cifar10", "cifar-10-batches-py/data_batch_1"),
                                         ("svhn", "svhn/train_32x32.mat")])
def test_damaged_file_is_a_data_error(tmp_path, data_root, name, victim):
    copy_dataset(data_root, name, tmp_path)
    path = tmp_path / victim
    path.write_bytes(path.read_bytes()[:100])  # truncated download
    with pytest.raises(DataError):
        dataset(name=name, root=str(tmp_path), verify_md5=False)


# -------------------------------------------------------------------------- splitting


def _dataset_of(n):
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.long)
    m = torch.zeros(1, 3, 1, 1)
    return Dataset("t", x, y, x, y, m, m + 1, True, 4, 10)


@pytest.mark.parametrize("n", [32, 33, 7, 1])
def test_search_halves_floor_and_rest(n):
    first, rest = _dataset_of(n).search_halves()
    assert first.tolist() == list(range(n // 2))
    assert rest.tolist() == list(range(n // 2, n))


def test_search_halves_other_portion():
    first, rest = _dataset_of(10).search_halves(0.75)
    assert first.tolist() == list(range(7)) and rest.tolist() == [7, 8, 9]


def test_eval_prepare_matches_torchvision_normalize(data_root):
    d = dataset(name="cifar10", root=str(data_root), verify_md5=False, limit=4)
    mean, std, _ = STATS["cifar10"]
    tv = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    expect = torch.stack([tv(img.permute(1, 2, 0).numpy()) for img in d.test_x])
    torch.testing.assert_close(d.prepare(d.test_x, train=False), expect, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------ augmentation


def _images(b=6, c=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g) + 0.5  # nowhere zero


def _tv_crop(img, pad, i, j):
    """torchvision RandomCrop(size, padding=pad) at the given offsets: pad, then crop."""
    return TF.crop(TF.pad(img, [pad]), i, j, img.shape[-2], img.shape[-1])


def test_crop_at_equals_torchvision_pad_and_crop():
    x, pad = _images(), 4
    i = torch.tensor([0, 8, 3, 4, 7, 1])
    j = torch.tensor([8, 0, 5, 4, 2, 6])
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    out = augment.crop_at(xp, i, j, 32, 32)
    for b in range(x.size(0)):
        torch.testing.assert_close(out[b], _tv_crop(x[b], pad, int(i[b]), int(j[b])),
                                   rtol=0, atol=0)


def test_random_crop_is_a_torchvision_crop_at_some_offset():
    x, pad = _images(b=24, h=12, w=12), 2
    out = augment_steps.random_crop(x, pad, torch.Generator().manual_seed(1))
    offsets = set()
    for b in range(x.size(0)):
        hits = [(i, j) for i in range(2 * pad + 1) for j in range(2 * pad + 1)
                if torch.equal(out[b], _tv_crop(x[b], pad, i, j))]
        assert len(hits) == 1, f"sample {b}: no single torchvision crop matches ({hits})"
        offsets.add(hits[0])
    assert len(offsets) > 3  # offsets vary per sample


def test_random_crop_without_padding_is_identity():
    x = _images()
    assert augment_steps.random_crop(x, 0, torch.Generator()) is x


def test_random_flip_is_per_sample_hflip():
    x = _images(b=32)
    out = augment_steps.random_flip(x, torch.Generator().manual_seed(0))
    flipped = 0
    for b in range(x.size(0)):
        if torch.equal(out[b], TF.hflip(x[b])):
            flipped += 1
        else:
            assert torch.equal(out[b], x[b])
    assert 0 < flipped < x.size(0)


def _square_mask(h, w, cy, cx, length):
    """The reference Cutout: zero rows clip(cy-L/2)..clip(cy+L/2), same for columns."""
    m = torch.ones(h, w)
    y1, y2 = np.clip(cy - length // 2, 0, h), np.clip(cy + length // 2, 0, h)
    x1, x2 = np.clip(cx - length // 2, 0, w), np.clip(cx + length // 2, 0, w)
    m[y1:y2, x1:x2] = 0
    return m


def test_apply_cutout_zeroes_the_clipped_square_on_all_channels():
    centres = [(16, 16), (0, 0), (31, 31), (5, 28), (31, 2), (8, 8)]
    x = _images(b=len(centres))
    cy = torch.tensor([c[0] for c in centres])
    cx = torch.tensor([c[1] for c in centres])
    out = augment.apply_cutout(x, cy, cx, 16)
    for b, (y0, x0) in enumerate(centres):
        mask = _square_mask(32, 32, y0, x0, 16)
        torch.testing.assert_close(out[b], x[b] * mask, rtol=0, atol=0)
        zeros = (out[b] == 0)
        assert torch.equal(zeros[0], zeros[1]) and torch.equal(zeros[0], zeros[2])
        side_y = min(y0 + 8, 32) - max(y0 - 8, 0)
        side_x = min(x0 + 8, 32) - max(x0 - 8, 0)
        assert int(zeros[0].sum()) == side_y * side_x
    assert int((out[0] == 0).sum()) == 3 * 16 * 16  # an unclipped square is 16x16


def test_random_cutout_zeroes_one_clipped_square():
    x = _images(b=16)
    out = augment_steps.cutout(x, 16, torch.Generator().manual_seed(3))
    for b in range(x.size(0)):
        zero = (out[b, 0] == 0)
        rows = torch.nonzero(zero.any(1)).flatten()
        cols = torch.nonzero(zero.any(0)).flatten()
        assert rows.numel() and cols.numel()
        # a full rectangle, on every channel, at most 16x16, touching a border if smaller
        assert int(zero.sum()) == rows.numel() * cols.numel()
        assert bool((out[b] == 0).all(0).eq(zero).all())
        assert rows.numel() <= 16 and cols.numel() <= 16
        assert rows.numel() == 16 or int(rows[0]) == 0 or int(rows[-1]) == 31
        assert cols.numel() == 16 or int(cols[0]) == 0 or int(cols[-1]) == 31


def test_train_prepare_order_crop_flip_normalise_cutout():
    """prepare(): uint8 -> [0,1], crop, flip, normalise, then cutout zeroes normalised values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 255, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    mean = torch.tensor([0.5, 0.45, 0.35]).view(1, 3, 1, 1)  # never k/255: no pixel maps to 0
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    plain = augment.prepare(x, mean, std)
    torch.testing.assert_close(plain, (x.float() / 255 - mean) / std)
    cut = augment.prepare(x, mean, std, cutout_length=16, gen=torch.Generator().manual_seed(1))
    zeroed = (cut == 0)
    assert zeroed.any()
    # outside the square the values are the normalised image, untouched
    torch.testing.assert_close(cut[~zeroed], plain[~zeroed])
