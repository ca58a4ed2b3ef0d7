"""Seed corpora for the libFuzzer targets (make fuzz): small valid files of every format our
parsers read, one folder per target under the output directory. Runs with the project's
virtual environment (torch writes the .pt / .pth seeds as torch.save does)."""
import json
import os
import struct
import sys

import torch

out = sys.argv[1]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# OFF meshes: plain, counts glued to the header (as in ModelNet40), quads with colours, comments.
put("off", "tetra.off", "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n")
put("off", "glued.off", "OFF4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
put("off", "colours.off", "OFF\n# a comment\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 255 0 0\n")
# Text points: xyz, xyz + normals, csv with a header row, pts with a count line.
put("text_points", "a.xyz", "0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
put("text_points", "normals.txt", "0.1,0.2,0.3,0,0,1\n0.4,0.5,0.6,0,1,0\n")
put("text_points", "header.csv", "x,y,z\n1,2,3\n4,5,6\n")
put("text_points", "count.pts", "2\n1 2 3\n4 5 6\n")


put("ply", "ascii.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
put("ply", "binary_le.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty double x\nproperty double y\n"
    b"property double z\nproperty uchar red\nend_header\n" + struct.pack("<3dB3dB", 1, 2, 3, 9, 4, 5, 6, 7))
put("ply", "binary_be.ply", b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty short x\nproperty int y\n"
    b"property float z\nend_header\n" + struct.pack(">hif", -2, 70000, 0.5))


def npy(descr, shape, payload, version=1, fortran=False):
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + " " * (pad % 64) + "\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + size + h.encode() + payload


put("npy", "f4.npy", npy("<f4", "(4, 3)", struct.pack("<12f", *range(12))))
put("npy", "f8_fortran_v2.npy", npy("<f8", "(2, 3)", struct.pack("<6d", *range(6)), version=2, fortran=True))
put("npy", "big_endian.npy", npy(">f4", "(1, 3)", struct.pack(">3f", 1, 2, 3)))


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


images = idx(0x803, (2, 4, 4), bytes(range(32)))
labels = idx(0x801, (2,), bytes([3, 7]))
# First byte: where the image file ends (as a fraction of the rest, 255 = all of it).
split = round(255 * len(images) / (len(images) + len(labels)))
put("idx", "two_images", bytes([split]) + images + labels)
put("cifar", "two_records.bin", bytes([3]) + bytes(3072) + bytes([9]) + bytes(range(256)) * 12)

configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
for name in sorted(os.listdir(configs)):
    if name.endswith(".json"):
        with open(os.path.join(configs, name), "rb") as f:
            put("config", name, f.read())
put("config", "small.json", json.dumps({"train": {"epochs": 2}, "moe": {"kind": "rup", "blocks": [0, 1]}}))

tiny = {"blocks.0.mlp.w1": torch.randn(2, 4, 3), "head.weight": torch.randn(5, 3)}
cfg = json.dumps({"name": "fuzz"})
ckpt = {"format": "ewa-checkpoint-1", "kind": "train", "config": cfg, "step": 3, "epoch": 1, "model": tiny,
        "rng_cpu": torch.get_rng_state(), "class_names": ["a", "b"], "progress": json.dumps({"position": 1})}
tmp = os.path.join(out, "tmp.pt")
torch.save(ckpt, tmp)
with open(tmp, "rb") as f:
    put("checkpoint", "train.pt", f.read())
torch.save({"model": tiny}, tmp)
with open(tmp, "rb") as f:
    put("weights", "point_mae_style.pth", b"\x00" + f.read())
os.remove(tmp)
header = {"head.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "__metadata__": {"format": "pt"}}
hb = json.dumps(header).encode()
put("weights", "tiny.safetensors", b"\x01" + struct.pack("<Q", len(hb)) + hb + struct.pack("<6f", *range(6)))
print("seed corpora in", out)
