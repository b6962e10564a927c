"""PyTorch side of `deno task bench --torch`: the same measurements as tasks/bench.ts, in PyTorch.

Runs the 3x3 convolution (N=64, 16x16, 128 -> 128 channels, padding 1: forward, backward-input,
backward-filter) and the CIFAR ResNet-18 (batch 64) / ResNet-50 (batch 32) at width 0.25 (kuangliu
layout, as @mfi/resnet builds it): training steps (SGD, momentum 0.9) and inference, on the
thread count given (torch.set_num_threads). Prints one JSON line:

  {"torch": "<version>", "threads": N, "rows": [{"name": ..., "value": ..., "unit": ...}, ...]}

or, when `import torch` fails, {"torch": null, "error": "<why>"} (and exits 0: a missing PyTorch
is an answer, not a failure). Row names are those of tasks/bench.ts, so the two can be paired.

Usage: python3 tasks/bench_torch.py --threads N [--quick] [--only conv,resnet18,resnet50]
"""

import argparse
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="conv,resnet18,resnet50")
    return p.parse_args(argv)


def timed(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - t0


def bench_conv(torch, quick):
    n, hw, c = 64, 16, 128
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, c, hw, hw, generator=g)
    w = torch.randn(c, c, 3, 3, generator=g) * 0.05
    dy = torch.randn(n, c, hw, hw, generator=g)
    gflop = 2 * n * hw * hw * c * c * 9 / 1e9
    repeats = 3 if quick else 10
    conv_backward = torch.ops.aten.convolution_backward

    def backward(mask):
        return lambda: conv_backward(dy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    runs = {
        "conv3x3 forward": lambda: torch.nn.functional.conv2d(x, w, padding=1),
        "conv3x3 backward-input": backward([True, False, False]),
        "conv3x3 backward-filter": backward([False, True, False]),
    }
    rows = []
    with torch.no_grad():
        for name, fn in runs.items():
            t = timed(fn, repeats)
            rows.append({"name": name, "value": gflop * repeats / t, "unit": "GFLOP/s"})
    return rows


def resnet(torch, arch, width=0.25, classes=10):
    """kuangliu's CIFAR ResNet (3x3 stem, no max-pool, projection shortcuts), widths scaled."""
    nn = torch.nn
    scale = lambda ch: max(1, round(ch * width))
    bottleneck = arch == "resnet50"
    depths = [3, 4, 6, 3] if bottleneck else [2, 2, 2, 2]
    expansion = 4 if bottleneck else 1

    def conv_bn(cin, cout, k, stride):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, width_, stride):
            super().__init__()
            cout = width_ * expansion
            if bottleneck:
                layers = conv_bn(cin, width_, 1, 1) + [nn.ReLU()] + conv_bn(width_, width_, 3, stride)
                layers += [nn.ReLU()] + conv_bn(width_, cout, 1, 1)
            else:
                layers = conv_bn(cin, width_, 3, stride) + [nn.ReLU()] + conv_bn(width_, cout, 3, 1)
            self.body = nn.Sequential(*layers)
            self.shortcut = (
                nn.Sequential(*conv_bn(cin, cout, 1, stride))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    stem = scale(64)
    layers = conv_bn(3, stem, 3, 1) + [nn.ReLU()]
    cin = stem
    for i, (depth, stride) in enumerate(zip(depths, [1, 2, 2, 2])):
        w = scale(64 * 2**i)
        for j in range(depth):
            layers.append(Block(cin, w, stride if j == 0 else 1))
            cin = w * expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def bench_model(torch, arch, batch, quick):
    torch.manual_seed(7)
    model = resnet(torch, arch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32)
    labels = torch.arange(batch) % 10

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        value = loss.item()  # the training loop reads each step's loss, as tasks/bench.ts does
        if value != value:
            raise RuntimeError(f"{arch}: loss is NaN")

    def infer():
        model.eval()
        with torch.no_grad():
            torch.softmax(model(x), dim=1).sum().item()

    steps = 3 if quick else 8
    batches = 3 if quick else 10
    train = timed(step, steps)
    inference = timed(infer, batches)
    return [
        {"name": f"{arch} train (batch {batch})", "value": steps * batch / train, "unit": "images/s"},
        {"name": f"{arch} inference (batch {batch})", "value": batches * batch / inference, "unit": "images/s"},
    ]


def main(argv):
    args = parse_args(argv)
    try:
        import torch
    except ImportError as e:
        print(json.dumps({"torch": None, "error": str(e)}))
        return 0
    torch.set_num_threads(args.threads)
    rows = []
    for only in args.only.split(","):
        if only == "conv":
            rows += bench_conv(torch, args.quick)
        elif only == "resnet18":
            rows += bench_model(torch, "resnet18", 64, args.quick)
        elif only == "resnet50":
            rows += bench_model(torch, "resnet50", 32, args.quick)
        else:
            print(f"bench_torch.py: unknown measurement {only!r} (conv, resnet18, resnet50)", file=sys.stderr)
            return 2
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
