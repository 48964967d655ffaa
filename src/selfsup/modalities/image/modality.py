"""Images as selfsup sees them: uint8 tensors [3, S, S], resized (shorter side S) and centre-cropped."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from ...errors import SelfSupError
from ...pretext.masking import random_block_mask
from ...pretext.image_eval import eval_transform
from ...pretext.image_recipes import light_augment, simclr_augment
from ...pretext.views import two_views
from ..base import Modality, Pretext, given

if TYPE_CHECKING:  # pragma: no cover
    from ...config import RunConfig


def resize_views(views: torch.Tensor, size: int) -> torch.Tensor:
    """A batch of views [B, 3, H, W] at ``size`` × ``size`` (torchvision's bilinear resize, antialiased)."""
    if views.shape[-2:] == (size, size):
        return views
    from torchvision.transforms.v2.functional import resize

    return resize(views, [size, size], antialias=True)


class ImageModality(Modality):
    def load_train_data(self, data, run_dir: Path, progress: bool = True):
        from .training import load_image_data

        return load_image_data(data, progress=progress)

    def shard_source(self, data, encoding="utf-8", text_field="text"):
        from ...shards.write import file_source
        from .readers import find_images

        return file_source(data, find_images(data))

    def hold_out(self, data, limit, seed, folder):
        """Image files of DATA held out into ``folder/heldout.txt``, the rest listed in ``folder/train.txt`` (tar
        shards: whole shards, ``folder/*.shards.json``)."""
        from ..base import hold_out_media
        from .readers import find_images

        return hold_out_media(data, find_images, limit, seed, folder, self.info.unit)

    def input_size(self, data: dict[str, Any]) -> int:
        return int(data["image_size"])

    def encoder_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"image_size": int(data["image_size"])}

    def stored_data_settings(self, stored, config):
        """The stored encoder's image size, unless ``--image-size`` is given (a CNN takes any size; a ViT's
        position embeddings fit only their own, and loading its weights says so)."""
        return {} if given(config, "image_size") else {"data.image_size": stored.input_size}

    def foundation_settings(self, source: str, config: RunConfig) -> dict[str, Any]:
        """A timm architecture (``--encoder``) plus a local weights file (encoder ``timm_image``), or a Hugging Face
        vision folder or cached id (encoder ``hf_image``); with the input statistics the checkpoint expects and,
        unless ``--image-size`` is given, the image side it was trained at."""
        from ...encoders.timm_image import is_weights_file, timm_folder

        named, own_size = config.encoder.get("name"), given(config, "image_size")
        folder = timm_folder(source)
        if folder is not None or is_weights_file(source):
            from ...encoders.timm_image import NAME, check_arch, timm_defaults, weights_path

            if folder is not None:  # timm's Hub layout names its architecture
                if named not in (None, NAME, folder.arch):
                    raise SelfSupError(f"--init {source} is a timm {folder.arch} folder; leave out --encoder {named}")
                arch, path = check_arch(folder.arch, source), folder.weights
            else:
                arch = check_arch(config.encoder.get("arch") if named == NAME else named, source)
                path = weights_path(source)
            defaults = timm_defaults(arch)
            mean, std = (folder.mean, folder.std) if folder and folder.mean and folder.std else (defaults.mean,
                                                                                                 defaults.std)
            settings = {"encoder.name": NAME, "encoder.arch": arch, "encoder.source": str(path),
                        "encoder.input_mean": list(mean), "encoder.input_std": list(std)}
            side = (folder.image_size if folder else None) or defaults.image_size
            return settings if own_size else {**settings, "data.image_size": side}
        from ...encoders.hf_checkpoint import init_encoder
        from ...encoders.hf_image import NAME, check_patch_size, image_checkpoint

        checkpoint = image_checkpoint(source)
        settings = {**init_encoder(NAME, source, checkpoint.folder, named),
                    "encoder.input_mean": list(checkpoint.mean), "encoder.input_std": list(checkpoint.std)}
        if own_size:
            check_patch_size(checkpoint, source, config.data.image_size)
            return settings
        return {**settings, "data.image_size": checkpoint.image_size}

    # ------------------------------------------------------------------ evaluation
    def read_labeled(self, loaded, path, classes, encoding):
        from ...evaluation.downstream import Labeled
        from .readers import load_labeled

        data = load_labeled(path, loaded.input_size, classes=classes)
        return Labeled(data.images, data.labels, data.classes, references=[str(p) for p in data.paths])

    def eval_transforms(self, loaded):
        """Fine-tuning: light crop (0.5-1) + flip; features: resize + normalise."""
        return light_augment(loaded.input_size, scale=(0.5, 1.0)), eval_transform(loaded.input_size)

    def baseline_scores(self, name, loaded, train_set, test_set, seed):
        """``pixels``: logistic regression on standardised raw pixels of the images shrunk to 8 px (the tiny-images
        baseline, see :mod:`.pixels`), fitted on each label subset."""
        if name != "pixels":
            return super().baseline_scores(name, loaded, train_set, test_set, seed)
        from ...evaluation.linear import linear_probe_accuracy
        from .pixels import tiny_pixels

        train_feats, test_feats = tiny_pixels(train_set.inputs), tiny_pixels(test_set.inputs)
        return lambda idx: linear_probe_accuracy(train_feats[idx], train_set.labels[idx], test_feats, test_set.labels,
                                                 seed=seed)

    def onnx_graph(self, loaded):
        """uint8 ``pixels`` [B, 3, S, S], normalised inside the graph (:mod:`.onnx_graph`)."""
        from .onnx_graph import image_graph

        return image_graph(loaded)

    def embed_source(self, loaded, data, strict=False, encoding="utf-8", text_field="text"):
        """One row per image (a folder's files in sorted order, or tar shards' samples in order), decoded at the
        run's size a batch at a time; ``path`` names it."""
        from ...embedding import EmbedSource
        from ...shards.labelled import reference, streamed
        from ...shards.tar import SUFFIXES, count_tar, tar_samples
        from .readers import decode_threads, find_images, image_of_sample, read_image, unreadable_error

        size = loaded.input_size
        shards = streamed(str(data), SUFFIXES, count_tar, tar_samples, strict)
        if shards is not None:
            items, count = shards
            decode = lambda item: (reference(*item), image_of_sample(item[1], size))  # noqa: E731
            threads = 1
        else:
            items = find_images(data)
            count, threads = len(items), decode_threads(items)
            decode = lambda path: (str(path), read_image(path, size))  # noqa: E731
        return EmbedSource("path", items, decode, torch.stack, eval_transform(size), count, (ValueError,),
                           unreadable_error, "images", threads)

    # ------------------------------------------------------------------ the run report
    def report_sample(self, loaded, data, limit, seed, settings, device):
        """Up to ``limit`` images of ``data`` (files, or samples of its first tar shards) decoded at the run's size
        (unreadable ones left out) and embedded."""
        from ...evaluation.features import extract_features
        from ..base import DataSample, sample_of_stored
        from .readers import IMAGE_EXTENSIONS, find_images, read_image, read_images

        files, total = sample_of_stored(data, find_images, IMAGE_EXTENSIONS, limit, seed)
        if all(item.path is not None for item in files):  # files: decoded by one thread per core
            images, rows, _ = read_images([item.path for item in files], loaded.input_size, progress=False)
            kept = [files[i].id for i in rows]
        else:
            decoded, kept = [], []
            for item in files:
                try:
                    decoded.append(read_image(item.opened(item.read()), loaded.input_size, name=item.name))
                    kept.append(item.id)
                except ValueError:
                    continue  # unreadable: left out
            images = torch.stack(decoded) if decoded else torch.empty(0, 3, loaded.input_size, loaded.input_size)
        feats = extract_features(loaded.encoder, images, eval_transform(loaded.input_size), device=device)
        return DataSample(feats, kept, total)

    def report_items(self, loaded, references, settings):
        """A 64 px thumbnail of each image file, captioned with its class folder and name."""
        from ..base import ItemView
        from .readers import read_image

        views = []
        for reference in references:
            path = Path(reference)
            caption = f"{path.parent.name}/{path.name}"
            try:
                views.append(ItemView(caption, read_image(path, 64).permute(1, 2, 0).numpy()))
            except ValueError:
                views.append(ItemView(f"{caption} (not readable here)"))
        return views

    # ------------------------------------------------------------------ what generic methods ask for
    @staticmethod
    def _augment(input_size: int, settings: Any):
        """SimCLR's augmentation (crop scale ``settings.crop_min_scale``..1, flip ``settings.flip_p``)."""
        return simclr_augment(input_size, crop_scale=(getattr(settings, "crop_min_scale", 0.08), 1.0),
                              flip_p=getattr(settings, "flip_p", 0.5))

    def two_views(self, input_size: int, settings: Any) -> Pretext:
        """SimCLR's augmentation twice."""
        augment = self._augment(input_size, settings)
        return two_views(augment, augment)

    def one_view(self, input_size: int, settings: Any) -> Pretext:
        """SimCLR's augmentation once."""
        augment = self._augment(input_size, settings)
        return lambda images, generator=None: {"view": augment(images, generator=generator)}

    def resized_inputs(self, size: int, fill_ins: dict[str, Any]) -> tuple[Callable[[Any], Any], dict[str, Any]]:
        """Views resized to ``size`` × ``size`` (bilinear, antialiased when shrinking): a teacher that reads larger
        images than its student (a 32 px CIFAR student of a teacher pretrained at 224 px)."""
        return partial(resize_views, size=size), {**fill_ins, "image_size": size}

    def masked_inputs(self, encoder, input_size: int, settings: Any) -> Pretext:
        """data2vec for vision (BEiT-style): a light crop + flip, then blocks of
        ``settings.image_mask_block``² patches hidden until ``settings.image_mask_ratio`` of them are."""
        augment = light_augment(input_size, scale=(0.5, 1.0))
        grid = input_size // encoder.patch_size

        def pretext(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            positions = random_block_mask(images.shape[0], grid, settings.image_mask_block, settings.image_mask_ratio,
                                          images.device, generator)
            views = augment(images, generator=generator)
            return {"student": views, "teacher": views, "positions": positions}

        return pretext

    def normalize_targets(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """Parameter-less layer norm per patch (data2vec §3.3, vision)."""
        return F.layer_norm(states.float(), states.shape[-1:])

    # ------------------------------------------------------------------ data inspection
    def inspect_items(self, data, settings, loaded, device, batch_size):
        """Images: BLAKE2b of the file's bytes, a 64-bit perceptual hash (or the run's encoder), width, height and
        file size, the class subfolder when DATA has one per class."""
        from .inspection import inspect_images

        return inspect_images(data, loaded, device, batch_size)
