"""PyTorch (CPU) peer for `beanctl bench train`: the same ResNet-like encoder (3×3 stride-2 stem
with BN and ReLU, basic blocks, global average pooling, linear embedding, L2 normalisation), the
same batch-hard triplet loss and Adam, the same batch of random 64×64 images; prints JSON with
training-step images/s and inference-forward images/s."""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.proj(x) if self.proj is not None else x))


def encoder(widths, blocks, embedding):
    layers = [nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for stage, (w, n) in enumerate(zip(widths, blocks)):
        for b in range(n):
            layers.append(Block(c, w, 2 if stage > 0 and b == 0 else 1))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, embedding)]
    return nn.Sequential(*layers)


def triplet_batch_hard(e, labels, margin):
    d = torch.cdist(e, e)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos = torch.where(same & ~eye, d, torch.zeros_like(d)).max(1).values
    neg = torch.where(~same, d, torch.full_like(d, float("inf"))).min(1).values
    return F.relu(margin + pos - neg).mean()


def rate(body, batch, seconds):
    body()
    start, n = time.perf_counter(), 0
    while True:
        body()
        n += 1
        if time.perf_counter() - start >= seconds and n >= 3:
            return n * batch / (time.perf_counter() - start)


def main():
    size, batch, widths, blocks, embedding, threads, seconds = sys.argv[1:8]
    size, batch, embedding, threads, seconds = int(size), int(batch), int(embedding), int(threads), float(seconds)
    widths = [int(v) for v in widths.split(",")]
    blocks = [int(v) for v in blocks.split(",")]
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = encoder(widths, blocks, embedding)
    x = torch.randn(batch, 3, size, size)
    labels = torch.tensor([i % max(2, batch // 4) for i in range(batch)])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        net.train()
        opt.zero_grad()
        loss = triplet_batch_hard(F.normalize(net(x), dim=1), labels, 0.2)
        loss.backward()
        opt.step()

    def forward():
        net.eval()
        with torch.no_grad():
            F.normalize(net(x), dim=1)

    train = rate(step, batch, seconds)
    fwd = rate(forward, batch, seconds)
    print(json.dumps({"torch": torch.__version__, "threads": threads,
                      "train_images_per_s": train, "forward_images_per_s": fwd}))


if __name__ == "__main__":
    main()
