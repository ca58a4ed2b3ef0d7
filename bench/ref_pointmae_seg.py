#!/usr/bin/env python3
"""PyTorch reference for one Point-MAE part-segmentation training step (PM:segmentation/models/pt.py,
written like the official code): 2048 points, 128 groups of 32 through the mini-PointNet encoder, a
12-block transformer whose blocks 4, 8 and 12 are kept and normed, max + mean pooling repeated over
the points, the one-hot category through Conv1d-BN-LeakyReLU, PointNet++ feature propagation
(3-NN by sorting the squared distances, gather, concat, Conv1d-BN-ReLU 1155 -> 1536 -> 1024), the
Conv1d head 3392 -> 512 -> 256 -> 50, log_softmax + nll_loss, AdamW (one step per batch). Optional
RupMoE + EWA FFNs in every other block. It reuses the modules of ../shared/bench/ref_pointmae.py
(imported, unchanged) and is only a timing anchor for `bench/vs_reference.sh --seg`; it must not be
tuned.

    $EWA_VENV/bin/python bench/ref_pointmae_seg.py --batch 16 --threads 2 --iters 3 [--moe rup]
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
ref_path = os.environ.get("REF", os.path.join(here, "..", "..", "shared", "bench", "ref_pointmae.py"))
spec = importlib.util.spec_from_file_location("ref_pointmae", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


class FeaturePropagation(nn.Module):
    def __init__(self, in_channel, mlp):
        super().__init__()
        self.mlp_convs, self.mlp_bns = nn.ModuleList(), nn.ModuleList()
        last = in_channel
        for out in mlp:
            self.mlp_convs.append(nn.Conv1d(last, out, 1))
            self.mlp_bns.append(nn.BatchNorm1d(out))
            last = out

    def forward(self, xyz1, xyz2, points1, points2):  # [B, N, 3], [B, S, 3], [B, C1, N], [B, C2, S]
        B, N, _ = xyz1.shape
        d = -2 * xyz1 @ xyz2.transpose(1, 2) + (xyz1 ** 2).sum(-1, keepdim=True) + (xyz2 ** 2).sum(-1).unsqueeze(1)
        d, idx = d.sort(dim=-1)
        d, idx = d[:, :, :3], idx[:, :, :3]
        w = 1.0 / (d + 1e-8)
        w = w / w.sum(dim=2, keepdim=True)
        p2 = points2.transpose(1, 2)
        batch = torch.arange(B, device=p2.device).view(B, 1, 1)
        interpolated = (p2[batch, idx] * w.unsqueeze(-1)).sum(2)
        x = torch.cat([points1.transpose(1, 2), interpolated], dim=-1).transpose(1, 2)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = F.relu(bn(conv(x)))
        return x


class PointMaeSeg(nn.Module):
    def __init__(self, experts=0, groups=128, group_size=32, dim=384, depth=12, heads=6, parts=50, categories=16):
        super().__init__()
        self.groups, self.group_size, self.categories = groups, group_size, categories
        self.encoder = ref.PointPatchEncoder(dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        dpr = torch.linspace(0, 0.1, depth).tolist()
        self.blocks = nn.ModuleList([ref.Block(dim, heads, 4.0, dpr[i], experts if i % 2 == 1 else 0)
                                     for i in range(depth)])
        self.fetch = [3, 7, 11]
        self.norm = nn.LayerNorm(dim)
        self.label_conv = nn.Sequential(nn.Conv1d(categories, 64, 1, bias=False), nn.BatchNorm1d(64), nn.LeakyReLU(0.2))
        self.propagation_0 = FeaturePropagation(3 * dim + 3, [4 * dim, 1024])
        self.convs1 = nn.Conv1d(1024 + 6 * dim + 64, 512, 1)
        self.dp1 = nn.Dropout(0.5)
        self.convs2 = nn.Conv1d(512, 256, 1)
        self.convs3 = nn.Conv1d(256, parts, 1)
        self.bns1, self.bns2 = nn.BatchNorm1d(512), nn.BatchNorm1d(256)

    def forward(self, pts, cls_one_hot):
        B, N, _ = pts.shape
        neigh, centers = ref.group_points(pts, self.groups, self.group_size)
        x = self.encoder(neigh)
        pos = self.pos_embed(centers)
        feats = []
        for i, blk in enumerate(self.blocks):
            x = blk(x + pos)
            if i in self.fetch:
                feats.append(self.norm(x).transpose(1, 2))
        f = torch.cat(feats, dim=1)  # [B, 3D, G]
        g = torch.cat([f.max(2)[0].unsqueeze(-1).repeat(1, 1, N), f.mean(2).unsqueeze(-1).repeat(1, 1, N),
                       self.label_conv(cls_one_hot.view(B, self.categories, 1)).repeat(1, 1, N)], dim=1)
        f0 = self.propagation_0(pts, centers, pts.transpose(1, 2), f)
        x = torch.cat([f0, g], dim=1)
        x = self.dp1(F.relu(self.bns1(self.convs1(x))))
        x = F.relu(self.bns2(self.convs2(x)))
        return F.log_softmax(self.convs3(x), dim=1)  # [B, parts, N]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--moe", choices=["none", "rup"], default="none")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(os.environ.get("REF_DEVICE", "cpu"))
    model = PointMaeSeg(experts=4 if args.moe == "rup" else 0).to(dev)
    model.train()
    opt = torch.optim.AdamW(ref.param_groups(model, 0.05), lr=2e-4, weight_decay=0.05)
    pts = (torch.rand(args.batch, args.points, 3) * 2 - 1).to(dev)
    cat = torch.randint(0, 16, (args.batch,))
    one_hot = F.one_hot(cat, 16).float().to(dev)
    target = torch.randint(0, 50, (args.batch, args.points)).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.nll_loss(model(pts, one_hot), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
        opt.step()
        if args.moe == "rup":
            with torch.no_grad():
                ref.ewa_update(model, 0.3)
        return loss

    res = ref.timeit(step, args.warmup, args.iters)
    print(json.dumps({"train_step": res, "params": sum(p.numel() for p in model.parameters()),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    sys.exit(main())
