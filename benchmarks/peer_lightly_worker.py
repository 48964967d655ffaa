"""One lightly training run, executed with the Python of lightly's own virtual environment.

Started by ``peer_lightly.py``; never imports selfsup. The recipes are lightly's documented examples
(``examples/pytorch/simclr.py`` and ``examples/pytorch/byol.py`` of lightly 1.x):

- SimCLR: torchvision ResNet-18 without its classifier, ``SimCLRProjectionHead(512, 512, 128)``,
  ``NTXentLoss()``, ``SimCLRTransform(input_size=32)``, SGD lr 0.06;
- BYOL: ``BYOLProjectionHead(512, 1024, 256)``, ``BYOLPredictionHead(256, 1024, 256)``, momentum copies
  updated with ``cosine_schedule(..., 0.996, 1)``, ``BYOLTransform`` (view 1 / view 2 transforms at 32 px),
  ``NegativeCosineSimilarity``, symmetric loss, SGD lr 0.06.

The data is an image folder read with torchvision's ``ImageFolder`` (labels unused in training), as the
examples do with ``torchvision.datasets.CIFAR10``. The "cifar" stem replaces ``conv1`` by a 3x3/1
convolution and drops the max-pool, as lightly's CIFAR-10 benchmark does.

Trains on the GPU when there is one (``model.to(device)``, as the examples do), else on the CPU; the loss
check after every step waits for the GPU, so the per-step wall times are complete.

Writes ``--out`` JSON (steps, per-step wall times) and ``--features`` NPZ (frozen backbone features of
the train and test folders, for the shared kNN evaluation).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
import torchvision
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import SimCLRTransform
from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightly.utils.scheduler import cosine_schedule
from torch import nn
from torchvision import transforms as T


def resnet18_backbone(stem: str) -> nn.Module:
    resnet = torchvision.models.resnet18()
    if stem == "cifar":
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
    return nn.Sequential(*list(resnet.children())[:-1])


class SimCLR(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


class BYOL(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(512, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()


def features(backbone: nn.Module, folder: str, device: str) -> tuple[np.ndarray, np.ndarray]:
    normalize = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    data = torchvision.datasets.ImageFolder(folder, transform=T.Compose([T.ToTensor(), normalize]))
    loader = torch.utils.data.DataLoader(data, batch_size=256)
    backbone.eval()
    feats, labels = [], []
    with torch.inference_mode():
        for x, y in loader:
            feats.append(backbone(x.to(device)).flatten(start_dim=1).cpu().numpy())
            labels.append(y.numpy())
    return np.concatenate(feats), np.concatenate(labels)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", choices=["simclr", "byol"], required=True)
    p.add_argument("--stem", choices=["standard", "cifar"], required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--minutes", type=float, default=0.0, help="stop after this much training time (0: no limit)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--features")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # as lightly's examples choose it

    backbone = resnet18_backbone(args.stem)
    if args.method == "simclr":
        model: nn.Module = SimCLR(backbone)
        transform = SimCLRTransform(input_size=32)
        criterion: nn.Module = NTXentLoss()
    else:
        model = BYOL(backbone)
        transform = BYOLTransform(view_1_transform=BYOLView1Transform(input_size=32),
                                  view_2_transform=BYOLView2Transform(input_size=32))
        criterion = NegativeCosineSimilarity()
    dataset = torchvision.datasets.ImageFolder(args.train, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    budget = args.minutes * 60

    step, step_times, start = 0, [], time.perf_counter()
    done = False
    while not done:
        previous = None  # the first step of an epoch also pays for starting the loader: not timed
        for (x0, x1), _ in loader:
            now = time.perf_counter()
            if previous is not None:
                step_times.append(now - previous)
            previous = now
            x0, x1 = x0.to(device), x1.to(device)
            if args.method == "simclr":
                loss = criterion(model(x0), model(x1))
            else:
                progress = max(step / args.steps if args.steps else 0.0, (now - start) / budget if budget else 0.0)
                momentum = cosine_schedule(int(1000 * min(progress, 1.0)), 1000, 0.996, 1)
                update_momentum(model.backbone, model.backbone_momentum, m=momentum)
                update_momentum(model.projection_head, model.projection_head_momentum, m=momentum)
                p0, p1 = model(x0), model(x1)
                z0, z1 = model.forward_momentum(x0), model.forward_momentum(x1)
                loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if not torch.isfinite(loss):
                raise SystemExit(f"lightly {args.method}: loss became {loss.item()} at step {step}")
            if (args.steps and step >= args.steps) or (budget and time.perf_counter() - start >= budget):
                done = True
                break
    train_seconds = time.perf_counter() - start
    with open(args.out, "w") as f:
        json.dump({"steps": step, "step_times": step_times, "train_seconds": train_seconds,
                   "final_loss": float(loss.detach()), "torch": torch.__version__}, f)
    if args.features:
        train_x, train_y = features(model.backbone, args.train, device)
        test_x, test_y = features(model.backbone, args.test, device)
        np.savez(args.features, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


if __name__ == "__main__":
    main()
