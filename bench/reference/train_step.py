"""Seconds per training step of the same embedder in PyTorch eager: the reference of
`make bench`'s train/* lines.

usage: train_step.py MODEL SIZE BATCH STEPS THREADS [DEVICE]
MODEL: convnet-small | resnet18 | resnet50. The step matches train_step_bench: random images,
forward through backbone + attentive grouping (P = 4, 128 per group, reduction 8),
per-group margin loss with distance-weighted sampling + 0.02 * diversity loss, backward, Adam.
Prints one JSON object: {"seconds_per_step": s, "steps": n, "threads": t}.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from pytorch_metric_learning import losses, miners

GROUPS, EMBEDDING, REDUCTION = 4, 512, 8


class ConvNetSmall(nn.Module):
    """agml's convnet-small: conv3x3 (no bias) + BN + ReLU with (16,1) (32,2) (64,2) (64,1)."""

    def __init__(self, channels=3):
        super().__init__()
        layers = []
        for out, stride in [(16, 1), (32, 2), (64, 2), (64, 1)]:
            layers += [nn.Conv2d(channels, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.net = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x):
        return self.net(x)


def resnet(name):
    model = getattr(torchvision.models, name)(weights=None)
    features = nn.Sequential(*list(model.children())[:-2])
    features.channels = model.fc.in_features
    return features


class Attentive(nn.Module):
    """Keys C -> C/r and values C -> d (bias-free, shared), one query per group, softmax over
    positions, pooled values L2-normalised per group."""

    def __init__(self, channels, groups, size, reduction):
        super().__init__()
        key = max(channels // reduction, 1)
        self.keys = nn.Linear(channels, key, bias=False)
        self.values = nn.Linear(channels, size, bias=False)
        bound = 1 / math.sqrt(key)
        self.queries = nn.Parameter(torch.empty(groups, key).uniform_(-bound, bound))

    def forward(self, x):
        positions = x.flatten(2).transpose(1, 2)  # [n, N, C]
        attention = torch.softmax(self.keys(positions) @ self.queries.t(), dim=1)
        pooled = attention.transpose(1, 2) @ self.values(positions)  # [n, P, d]
        return F.normalize(pooled, dim=2)


def diversity(groups):
    cos = groups @ groups.transpose(1, 2)
    upper = torch.triu(torch.ones_like(cos[0]), diagonal=1)
    n, p = groups.shape[:2]
    return (F.softplus(50 * (cos - 0.5)) * upper).sum() / (n * (p - 1))


def main():
    model_name, size, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
    device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = ConvNetSmall() if model_name == "convnet-small" else resnet(model_name)
    head = Attentive(backbone.channels, GROUPS, EMBEDDING // GROUPS, REDUCTION)
    backbone, head = backbone.to(device), head.to(device)
    classes = batch // 2
    labels = (torch.arange(batch) // 2).to(device)
    margin = [losses.MarginLoss(margin=0.2, nu=0, beta=1.2, learn_beta=True, num_classes=classes).to(device)
              for _ in range(GROUPS)]
    miner = miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
    params = list(backbone.parameters()) + list(head.parameters())
    params += [p for loss in margin for p in loss.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-5, weight_decay=3e-3)
    times = []
    for step in range(steps + 1):
        images = torch.randn(batch, 3, size, size, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        groups = head(backbone(images))
        loss = 0.02 * diversity(groups)
        for p in range(GROUPS):
            embedding = groups[:, p]
            loss = loss + margin[p](embedding, labels, miner(embedding, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step > 0:
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds_per_step": sum(times) / len(times), "steps": len(times), "threads": threads}))


if __name__ == "__main__":
    main()
