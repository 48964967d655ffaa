"""The image reader on real files: folders, list files, odd formats, corrupt files, labeled splits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.modalities.image.readers import find_images, load_labeled, load_unlabeled, read_image, read_images
from selfsup.errors import SelfSupError

SIZE = 16


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_find_images_recurses_sorted_and_ignores_non_images(image_folder):
    (image_folder / "README.txt").write_text("not an image")
    (image_folder / "blob" / "labels.csv").write_text("a,b")
    save(image_folder / "blob" / ".hidden.png", solid((1, 2, 3)))
    save(image_folder / "extra" / "UPPER.PNG", solid((9, 9, 9)))
    files = find_images(image_folder)
    assert len(files) == 48 + 1
    assert files == sorted(files)
    assert image_folder / "extra" / "UPPER.PNG" in files
    assert all(f.suffix.lower() == ".png" and not f.name.startswith(".") for f in files)
    assert sum("deeper" in f.parts for f in files) == 3 * 5  # nested two levels down are found


def test_load_unlabeled_decodes_every_image(image_folder):
    dataset = load_unlabeled(image_folder, SIZE, progress=False)
    assert len(dataset) == 48
    assert dataset.images.shape == (48, 3, SIZE, SIZE) and dataset.images.dtype == torch.uint8
    assert dataset.paths == find_images(image_folder)
    # pixels are the file's pixels (16 px files at size 16: no resampling)
    expected = torch.from_numpy(np.array(Image.open(dataset.paths[5]))).permute(2, 0, 1)
    assert torch.equal(dataset[5], expected)


def test_corrupt_file_is_skipped_with_a_warning_naming_it(image_folder, caplog):
    bad = image_folder / "hstripes" / "broken.jpg"
    bad.write_bytes(os.urandom(400))
    good_jpeg = save(image_folder / "vstripes" / "photo.jpg", solid((200, 30, 30)), quality=95)
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        dataset = load_unlabeled(image_folder, SIZE, progress=False)
    assert len(dataset) == 49  # 48 PNGs + 1 good JPEG
    assert bad not in dataset.paths and good_jpeg in dataset.paths
    warnings = [r.getMessage() for r in caplog.records if r.name == "selfsup" and r.levelno == logging.WARNING]
    assert any(str(bad) in w for w in warnings), warnings
    assert any("skipped 1 unreadable image(s) of 50" in w for w in warnings), warnings
    jpeg = dataset[dataset.paths.index(good_jpeg)]
    assert (jpeg[0].float().mean() - 200).abs() < 8 and jpeg[1].float().mean() < 50  # really decoded


def test_read_images_reports_skipped_and_kept_indices(tmp_path):
    good = [save(tmp_path / f"ok{i}.png", solid((i * 40, 0, 0))) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))  # a PNG signature, then junk
    images, kept, report = read_images([good[0], bad, good[1], good[2]], SIZE, progress=False)
    assert kept == [0, 2, 3]
    assert report.decoded == 3 and report.skipped == [bad]
    assert images.shape == (3, 3, SIZE, SIZE)
    assert images[:, 0, 0, 0].tolist() == [0, 40, 80]


def test_strict_mode_raises_naming_the_file(image_folder):
    bad = image_folder / "blob" / "zz_broken.jpg"
    bad.write_bytes(os.urandom(400))
    with pytest.raises(SelfSupError, match="zz_broken.jpg") as info:
        load_unlabeled(image_folder, SIZE, strict=True, progress=False)
    assert "cannot decode" in str(info.value)


def test_all_files_corrupt_is_an_error(tmp_path):
    for i in range(2):
        (tmp_path / f"x{i}.jpg").write_bytes(os.urandom(100))
    with pytest.raises(SelfSupError, match="none of the 2 image files could be decoded"):
        load_unlabeled(tmp_path, SIZE, progress=False)


def test_empty_missing_and_imageless_folders_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SelfSupError, match="no images found"):
        load_unlabeled(empty, SIZE, progress=False)

    with pytest.raises(SelfSupError, match="no such file or folder"):
        load_unlabeled(tmp_path / "does_not_exist", SIZE, progress=False)

    other = tmp_path / "docs"
    (other / "sub").mkdir(parents=True)
    (other / "a.txt").write_text("hello")
    (other / "sub" / "b.csv").write_text("1,2")
    with pytest.raises(SelfSupError, match="no images found") as info:
        load_unlabeled(other, SIZE, progress=False)
    assert str(other) in str(info.value)

    not_a_list = tmp_path / "weights.bin"
    not_a_list.write_bytes(b"\0" * 8)
    with pytest.raises(SelfSupError, match="expected a folder of images or a .txt file"):
        find_images(not_a_list)


def test_list_file_of_relative_paths(image_folder, tmp_path):
    chosen = find_images(image_folder)[::8]  # 6 files
    listing = tmp_path / "subset.txt"
    lines = ["# a comment", ""] + [str(p.relative_to(tmp_path)) for p in chosen]
    listing.write_text("\n".join(lines) + "\n")
    assert find_images(listing) == [p.resolve() for p in chosen]  # list order kept, comments skipped
    dataset = load_unlabeled(listing, SIZE, progress=False)
    assert dataset.images.shape == (len(chosen), 3, SIZE, SIZE)
    full = load_unlabeled(image_folder, SIZE, progress=False)
    assert torch.equal(dataset.images, full.images[::8])

    listing.write_text("\n".join(lines + ["images/missing.png"]) + "\n")
    with pytest.raises(SelfSupError, match="1 listed file"):
        find_images(listing)


def test_grayscale_rgba_palette_and_non_square_images_decode_to_rgb_squares(tmp_path):
    gray = save(tmp_path / "gray.png", Image.new("L", (SIZE, SIZE), 77))
    rgba = save(tmp_path / "rgba.png", Image.new("RGBA", (SIZE, SIZE), (10, 200, 30, 128)))
    palette = save(tmp_path / "palette.png", solid((0, 0, 250)).convert("P"))
    gray_jpeg = save(tmp_path / "gray.jpg", Image.new("L", (SIZE, SIZE), 150), quality=95)
    # 40 x 20 (w x h): left quarter red, middle half green, right quarter blue.
    wide = Image.new("RGB", (40, 20), (0, 255, 0))
    wide.paste((255, 0, 0), (0, 0, 10, 20))
    wide.paste((0, 0, 255), (30, 0, 40, 20))
    wide = save(tmp_path / "wide.png", wide)
    tall = save(tmp_path / "tall.png", Image.new("RGB", (12, 30), (90, 90, 10)))

    for path in (gray, rgba, palette, gray_jpeg, wide, tall):
        image = read_image(path, SIZE)
        assert image.shape == (3, SIZE, SIZE), path.name
        assert image.dtype == torch.uint8, path.name

    assert read_image(gray, SIZE).unique().tolist() == [77]
    assert read_image(rgba, SIZE)[:, 5, 5].tolist() == [10, 200, 30]
    palette_rgb = list(Image.open(palette).convert("RGB").getpixel((0, 0)))
    assert palette_rgb[2] > 200 and read_image(palette, SIZE)[:, 0, 0].tolist() == palette_rgb
    assert (read_image(gray_jpeg, SIZE).int() - 150).abs().max() <= 2
    assert read_image(tall, SIZE)[:, 8, 8].tolist() == [90, 90, 10]
    # shorter side resized to 16 (-> 32 x 16), centre crop keeps columns 8..23 of 32: the
    # middle (green) half, with red/blue only bleeding into the outermost columns
    centre = read_image(wide, SIZE).int()
    assert centre[:, :, 3:13].tolist() == torch.tensor([0, 255, 0]).view(3, 1, 1).expand(3, SIZE, 10).tolist()

    images, kept, _ = read_images([gray, rgba, wide, tall], 8, progress=False)
    assert images.shape == (4, 3, 8, 8) and kept == [0, 1, 2, 3]


def test_load_labeled_reads_class_folders(labeled_pair):
    train_dir, test_dir = labeled_pair
    train = load_labeled(train_dir, SIZE, progress=False)
    assert train.classes == ["blob", "hstripes", "vstripes"]
    assert train.images.shape == (48, 3, SIZE, SIZE)
    assert torch.bincount(train.labels).tolist() == [16, 16, 16]  # nested files count for their class
    test = load_labeled(test_dir, SIZE, classes=train.classes, progress=False)
    assert test.classes == train.classes
    assert torch.bincount(test.labels).tolist() == [6, 6, 6]
    # labels follow folders: the horizontal-stripe class has rows that differ, columns that don't
    hstripes = train.images[train.labels == train.classes.index("hstripes")].float()
    assert (hstripes.diff(dim=2).abs().mean() > 5 * hstripes.diff(dim=3).abs().mean())


def test_labeled_folder_with_one_class_is_an_error(tmp_path, write_images):
    root = write_images(tmp_path / "one", per_class=3, seed=0, classes=("blob",))
    with pytest.raises(SelfSupError, match="found 1 class subfolder"):
        load_labeled(root, SIZE, progress=False)
    with pytest.raises(SelfSupError, match="not a folder"):
        load_labeled(tmp_path / "nope", SIZE, progress=False)


def test_test_split_with_a_class_unknown_to_train_is_an_error(labeled_pair, write_images):
    train_dir, test_dir = labeled_pair
    write_images(test_dir, per_class=2, seed=5, classes=("blob",))  # fine: a known class
    (test_dir / "zebra").mkdir()
    save(test_dir / "zebra" / "z.png", solid((1, 1, 1)))
    train = load_labeled(train_dir, SIZE, progress=False)
    with pytest.raises(SelfSupError, match="zebra") as info:
        load_labeled(test_dir, SIZE, classes=train.classes, progress=False)
    assert "do not appear in the training set" in str(info.value)


def test_sixteen_bit_png_keeps_its_brightness(tmp_path):
    import numpy as np

    pixels = np.full((SIZE, SIZE), 0xFF00, dtype=np.uint16)  # near white in 16 bits
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    image = read_image(path, SIZE)
    assert image.dtype == torch.uint8
    assert int(image.min()) >= 250


def test_exif_orientation_turns_camera_photos_upright(tmp_path):
    # stored 40 x 20 (w x h), left half red, right half blue, tagged "rotate 90 degrees clockwise to view"
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = stored.getexif()
    exif[0x0112] = 6
    path = save(tmp_path / "phone.jpg", stored, exif=exif, quality=95)
    image = read_image(path, SIZE).int()
    # upright it is 20 x 40, red on top: the centre crop's top rows are red, its bottom rows blue
    assert (image[:, 2, SIZE // 2] - torch.tensor([255, 0, 0])).abs().max() < 40
    assert (image[:, SIZE - 3, SIZE // 2] - torch.tensor([0, 0, 255])).abs().max() < 40


def test_float_images_are_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 1, SIZE, dtype=np.float32), (SIZE, 1))
    unit = save(tmp_path / "unit.tif", Image.fromarray(ramp))
    wide_range = save(tmp_path / "kelvin.tif", Image.fromarray(250 + 100 * ramp))
    for path in (unit, wide_range):
        image = read_image(path, SIZE).int()
        assert image[0, 0, 0] <= 2 and image[0, 0, -1] >= 253, path.name  # the ramp spans 0..255
        assert torch.equal(image[0], image[2]), path.name  # grey


def test_large_jpeg_read_at_reduced_scale_matches_a_full_decode(tmp_path):
    y, x = np.mgrid[0:768, 0:1024]
    photo = np.stack([x * 255 // 1023, y * 255 // 767, (x + y) * 255 // 1790], -1).astype(np.uint8)
    path = save(tmp_path / "photo.jpg", Image.fromarray(photo), quality=95)
    fast = read_image(path, 32).float()  # decoded at 1/8 scale (128 x 96), then resized
    full = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    from torchvision.transforms.v2 import functional as TF

    reference = TF.center_crop(TF.resize(full, 32, antialias=True), [32, 32]).float()
    assert (fast - reference).abs().mean() < 2 and (fast - reference).abs().max() < 12


def test_threaded_decoding_keeps_order_and_skips_the_same_files(tmp_path, monkeypatch):
    from selfsup.modalities.image import readers as images

    paths = [save(tmp_path / f"{i}.png", solid((10 * i, 0, 0))) for i in range(12)]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths.insert(5, tmp_path / "broken.png")
    monkeypatch.setattr(images, "LARGE_IMAGE_PIXELS", 10**9)
    one_thread = read_images(paths, SIZE, progress=False)
    monkeypatch.setattr(images, "LARGE_IMAGE_PIXELS", 0)
    threaded = read_images(paths, SIZE, progress=False)
    assert torch.equal(one_thread[0], threaded[0]) and one_thread[1] == threaded[1]
    assert threaded[2].skipped == [tmp_path / "broken.png"] and 5 not in threaded[1]
    assert threaded[0][:, 0, 0, 0].tolist() == [10 * i for i in range(12)]


def test_image_over_the_pixel_limit_is_a_clear_unreadable_file(tmp_path, monkeypatch):
    path = save(tmp_path / "huge.png", solid((1, 2, 3), (40, 40)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels > 2 x the limit: Pillow refuses it
    with pytest.raises(ValueError, match=r"huge\.png: cannot decode image, too large .*downscale the file"):
        read_image(path, SIZE)


def test_less_common_extensions_are_found(tmp_path):
    save(tmp_path / "a.jfif", solid((1, 1, 1)), format="JPEG")
    save(tmp_path / "b.tga", solid((2, 2, 2)))
    save(tmp_path / "c.PNM", solid((3, 3, 3)), format="PPM")
    assert [p.name for p in find_images(tmp_path)] == ["a.jfif", "b.tga", "c.PNM"]
    assert load_unlabeled(tmp_path, SIZE, progress=False).images.shape[0] == 3
