"""The discriminative baseline beside ``tiny-dit``: trained on the same digits TRAIN split.

    python -m training.digits_baseline

Multinomial logistic regression (scikit-learn, L2, C chosen on VAL from 0.01..100) on
the 64 pixel levels scaled to [0, 1], and a small CNN in torch (2 conv layers, 1 thread,
seeded, 30 epochs): the paper sets DiT against a ResNet-50 trained on ImageNet; here the
"ResNet" is the best a small discriminative model does on the same 1,197 images. Prints
val and test top-1 of each (test read once, after the choices on val).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from winoground_eval.tasks import digits


def logistic(train, val, test) -> dict:
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in (0.01, 0.1, 1.0, 10.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=5000).fit(train[0], train[1])
        acc = clf.score(*val)
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    acc, c, clf = best
    return {"model": f"logistic regression (C={c})", "val": acc, "test": clf.score(*test)}


def cnn(train, val, test, *, epochs: int = 30, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 16, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    x = torch.tensor(train[0], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(train[1])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(32):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    def acc(split) -> float:
        with torch.no_grad():
            pred = net(torch.tensor(split[0], dtype=torch.float32).reshape(-1, 1, 8, 8)).argmax(1).numpy()
        return float((pred == split[1]).mean())

    return {
        "model": f"CNN (2 conv + 2 linear, {sum(p.numel() for p in net.parameters())} parameters, {epochs} epochs)",
        "val": acc(val),
        "test": acc(test),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)
    data = {}
    for split in ("train", "val", "test"):
        images, labels = digits.training_arrays(split)
        data[split] = (images.reshape(len(images), -1).astype(np.float64) / 255.0, labels)
    for result in (logistic(data["train"], data["val"], data["test"]), cnn(data["train"], data["val"], data["test"])):
        print(f"{result['model']}: val top-1 {result['val']:.3f}, test top-1 {result['test']:.3f}")


if __name__ == "__main__":
    main()
