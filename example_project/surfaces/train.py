"""Train the example defect classifier and export it to ONNX.

Trains a small CNN (CPU, seeded, deterministic) on the `train` split of
data/manifest.csv and writes two models next to this file:

    model.onnx             the "production" model, trained on the full train split
    model_small_data.onnx  a deliberately worse candidate, trained the same way
                           on a reduced train split (almost no low-light images),
                           so it regresses on the low_light bucket

Model contract (what erran.toml describes):
    input  "image":  float32 [N, 3, 64, 64], RGB scaled to [0, 1], then
                     (x - 0.5) / 0.25 per channel
    output "logits": float32 [N, 4], classes ok, scratch, dent, stain
    metadata_props["classes"] = '["ok", "scratch", "dent", "stain"]'

Usage:
    python generate_data.py   # once, creates data/
    python train.py
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from PIL import Image
from torch import nn

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "data" / "manifest.csv"
CLASSES = ["ok", "scratch", "dent", "stain"]
MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
STD = np.array([0.25, 0.25, 0.25], dtype=np.float32)
SIZE = 64
SEED = 1234
EPOCHS = 60
BATCH = 32
LR = 3e-3


def set_determinism(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def load_image(path: Path) -> np.ndarray:
    """Exactly the documented preprocessing: RGB, 64x64 bilinear, [0,1], normalise, CHW."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (SIZE, SIZE):
            im = im.resize((SIZE, SIZE), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32) / 255.0
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1).copy()


def load_split(df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    root = MANIFEST.parent
    xs = np.stack([load_image(root / p) for p in df["image"]])
    ys = np.array([CLASSES.index(lab) for lab in df["label"]], dtype=np.int64)
    return torch.from_numpy(xs), torch.from_numpy(ys)


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            if pool:
                layers.append(nn.MaxPool2d(2))
            return layers

        self.features = nn.Sequential(
            *block(3, 16, True),    # 32x32
            *block(16, 32, True),   # 16x16
            *block(32, 64, True),   # 8x8
            *block(64, 64, False),
            # max-pool: a defect is a small local pattern, "is it anywhere?"
            nn.AdaptiveMaxPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips (a dent stays a dent under a flip)."""
    n = x.shape[0]
    hflip = torch.rand(n, generator=gen) < 0.5
    vflip = torch.rand(n, generator=gen) < 0.5
    x = x.clone()
    x[hflip] = x[hflip].flip(-1)
    x[vflip] = x[vflip].flip(-2)
    return x


def train(train_df: pd.DataFrame, seed: int = SEED, epochs: int = EPOCHS) -> nn.Module:
    set_determinism(seed)
    x, y = load_split(train_df)
    model = SmallCNN(len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    steps = epochs * ((len(x) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = augment(x[idx], gen), y[idx]
            opt.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(idx)
        if epoch == 0 or (epoch + 1) % 5 == 0:
            print(f"  epoch {epoch + 1:3d}  loss {loss_sum / total:.4f}  train acc {correct / total:.3f}")
    model.eval()
    return model


def evaluate(model: nn.Module, df: pd.DataFrame) -> float:
    x, y = load_split(df)
    with torch.no_grad():
        pred = model(x).argmax(1)
    return (pred == y).float().mean().item()


def export_onnx(model: nn.Module, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.float32)
    # The legacy TorchScript exporter (dynamo=False) needs no extra packages
    # and writes a single self-contained file.
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(str(path))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key = "classes"
    entry.value = json.dumps(CLASSES)
    m.producer_name = "pytest-erran example_project/train.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def small_data_subset(train_df: pd.DataFrame) -> pd.DataFrame:
    """The reduced train set for the candidate model: keep only 1 in 8
    low-light images (a cheaper data collection that skipped the night shift)."""
    low = train_df[train_df["lighting"] == "low"]
    keep_low = low.iloc[::8]
    return pd.concat([train_df[train_df["lighting"] != "low"], keep_low]).sort_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args()

    df = pd.read_csv(MANIFEST, keep_default_na=False, dtype=str)
    train_df = df[df["split"] == "train"]
    dev_df = df[df["split"] == "dev"]

    for name, subset in (("model.onnx", train_df), ("model_small_data.onnx", small_data_subset(train_df))):
        print(f"training {name} on {len(subset)} images")
        model = train(subset, epochs=args.epochs)
        print(f"  dev accuracy {evaluate(model, dev_df):.3f}")
        export_onnx(model, HERE / name)
        print(f"  wrote {name} ({(HERE / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
