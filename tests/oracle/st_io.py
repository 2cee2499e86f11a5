"""safetensors and Hugging Face checkpoint-directory I/O for the PyTorch oracles.

Written by hand with json + numpy: Debian's python3-torch (1.13) has no safetensors
package. Shared by ops_oracle.py, model_oracle.py and make_model_fixture.py (they
put their own directory on sys.path, which Python does for a script anyway).

Format: 8-byte little-endian header length N, N bytes of JSON header
({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__":
{str: str}}), then the raw little-endian data; offsets are relative to the data.
"""
import json
import os
import struct

import numpy as np

# numpy dtype -> safetensors dtype string (what write_safetensors stores as-is).
_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.float16): "F16",
           np.dtype(np.int32): "I32", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8",
           np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.bool_): "BOOL"}
# safetensors dtype string -> (numpy storage dtype, element size). BF16 is stored as uint16 bits.
_STORAGE = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
            "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
            "BOOL": np.bool_}


# ------------------------------------------------------------------ bfloat16 by bits

def f32_to_bf16_bits(a):
    """float32 ndarray -> uint16 bfloat16 bits, round to nearest even (NaN kept NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    if nan.any():
        r[nan] = 0x7FC0
    return r


def bf16_bits_to_f32(b):
    """uint16 bfloat16 bits -> float32 ndarray (exact)."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def bf16_round(a):
    """float values -> float32 values rounded to bfloat16 (nearest even)."""
    return bf16_bits_to_f32(f32_to_bf16_bits(np.asarray(a, dtype=np.float32)))


# ------------------------------------------------------------------ writing

class BF16:
    """Marks an array to be stored as BF16 by write_safetensors (values rounded from float32)."""

    def __init__(self, a):
        self.bits = f32_to_bf16_bits(np.asarray(a, dtype=np.float32))
        self.shape = self.bits.shape
        self.dtype = self.bits.dtype


def _encode(a):
    if isinstance(a, BF16):
        return "BF16", list(a.shape), a.bits.astype("<u2").tobytes()
    a = np.ascontiguousarray(a)
    dt = _DTYPES[a.dtype]
    return dt, list(a.shape), a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> np.ndarray (or BF16(array)); metadata: str -> str. Atomic (tmp + rename)."""
    header, blobs, pos = {}, [], 0
    # Descending element size then name: every tensor aligned to its element size.
    for name in sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n)):
        dt, shape, b = _encode(tensors[name])
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------ reading

def read_safetensors(path, floats_as=None, with_dtypes=False):
    """path -> {name: ndarray}. BF16 comes back as float32 (exact). With floats_as (e.g.
    np.float64) every floating tensor is converted to it. With with_dtypes, also returns
    {name: safetensors dtype string}. Validates the header against the file size."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("%s: header length %d exceeds file size" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    out, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b, e) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        if dt not in _STORAGE:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        st = np.dtype(_STORAGE[dt]).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * st.itemsize:
            raise ValueError("%s: tensor %s has bad data_offsets %s" % (path, name, [b, e]))
        a = np.frombuffer(data[b:e], dtype=st).reshape(shape).astype(st.newbyteorder("="))
        if dt == "BF16":
            a = bf16_bits_to_f32(a)
        if floats_as is not None and np.issubdtype(a.dtype, np.floating):
            a = a.astype(floats_as)
        out[name] = a
        dtypes[name] = dt
    return (out, dtypes) if with_dtypes else out


def read_metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8")).get("__metadata__", {})


def load_checkpoint(model_dir, floats_as=np.float64):
    """A Hugging Face model directory -> (config dict, {name: ndarray}, {name: dtype str}).
    Reads model.safetensors, or model.safetensors.index.json ("weight_map": name -> shard
    file) and its shards; every tensor named in the index must be in its shard, and the
    shards must hold no tensor the index does not name."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        tensors, dtypes = read_safetensors(single, floats_as, with_dtypes=True)
        return config, tensors, dtypes
    if not os.path.exists(index):
        raise FileNotFoundError("%s: neither model.safetensors nor model.safetensors.index.json" % model_dir)
    with open(index) as f:
        wmap = json.load(f)["weight_map"]
    tensors, dtypes = {}, {}
    for shard in sorted(set(wmap.values())):
        t, d = read_safetensors(os.path.join(model_dir, shard), floats_as, with_dtypes=True)
        for name in t:
            if wmap.get(name) != shard:
                raise ValueError("%s: tensor %s is in %s but the index says %s" % (model_dir, name, shard, wmap.get(name)))
        tensors.update(t)
        dtypes.update(d)
    missing = sorted(set(wmap) - set(tensors))
    if missing:
        raise ValueError("%s: index names tensors absent from their shards: %s" % (model_dir, missing[:5]))
    return config, tensors, dtypes


def save_checkpoint(model_dir, config, tensors, shards=1, metadata=None):
    """Writes config.json and model.safetensors (shards == 1), or shards files
    model-0000i-of-0000N.safetensors plus model.safetensors.index.json (HF layout).
    tensors: name -> ndarray or BF16(...), stored as given."""
    os.makedirs(model_dir, exist_ok=True)
    meta = {"format": "pt"}
    meta.update(metadata or {})
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    for stale in os.listdir(model_dir):  # a previous fixture of another shape must not linger
        if stale.startswith("model") and (stale.endswith(".safetensors") or stale.endswith(".index.json")):
            os.remove(os.path.join(model_dir, stale))
    if shards <= 1:
        write_safetensors(os.path.join(model_dir, "model.safetensors"), tensors, meta)
        return
    names = list(tensors)  # caller's order (model order); split into contiguous runs of ~equal bytes
    sizes = [tensors[n].bits.nbytes if isinstance(tensors[n], BF16) else tensors[n].nbytes for n in names]
    total, target = sum(sizes), sum(sizes) / shards
    groups, acc = [[] for _ in range(shards)], 0
    for n, s in zip(names, sizes):
        k = min(int(acc / target), shards - 1) if target > 0 else 0
        groups[k].append(n)
        acc += s
    groups = [g for g in groups if g] or [[]]
    wmap = {}
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(groups))
        write_safetensors(os.path.join(model_dir, fn), {n: tensors[n] for n in g}, meta)
        wmap.update({n: fn for n in g})
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2, sort_keys=True)
        f.write("\n")
