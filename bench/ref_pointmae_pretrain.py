#!/usr/bin/env python3
"""PyTorch reference for one Point-MAE pretraining step (the masked autoencoder of Pang et al.),
written like the official code (Point_MAE.py): every group through the mini-PointNet encoder,
random masking of 60% of the groups, a 12-block encoder over the visible tokens, a 4-block
decoder over visible + mask tokens, Conv1d head to 32 x 3 points per masked group, Chamfer L2
(here with torch.cdist, the CPU equivalent of the official CUDA extension). It reuses the
modules of ../shared/bench/ref_pointmae.py (imported, unchanged) and is only a timing anchor for
`bench/vs_reference.sh --pretrain`; it must not be tuned.

    $EWA_VENV/bin/python bench/ref_pointmae_pretrain.py --batch 32 --threads 2 --iters 5
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import statistics
import sys
import time

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
ref_path = os.environ.get("REF", os.path.join(here, "..", "..", "shared", "bench", "ref_pointmae.py"))
spec = importlib.util.spec_from_file_location("ref_pointmae", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


class MaskedAutoencoder(nn.Module):
    def __init__(self, groups=64, group_size=32, dim=384, depth=12, heads=6, dec_depth=4, mask_ratio=0.6,
                 drop_path=0.1):
        super().__init__()
        self.groups, self.group_size, self.mask_ratio = groups, group_size, mask_ratio
        self.encoder = ref.PointPatchEncoder(dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        dpr = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList([ref.Block(dim, heads, 4.0, dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        ddpr = torch.linspace(0, drop_path, dec_depth).tolist()
        self.decoder = nn.ModuleList([ref.Block(dim, heads, 4.0, ddpr[i]) for i in range(dec_depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.increase_dim = nn.Conv1d(dim, 3 * group_size, 1)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, pts):
        neigh, centers = ref.group_points(pts, self.groups, self.group_size)
        B, G, K, _ = neigh.shape
        M = int(self.mask_ratio * G)
        # Official _mask_center_rand: a random permutation per cloud, the first M masked.
        order = torch.rand(B, G).argsort(dim=1)
        mask = torch.zeros(B, G, dtype=torch.bool)
        mask.scatter_(1, order[:, :M], True)
        tokens = self.encoder(neigh)                                   # every group, as the official code
        D = tokens.shape[-1]
        x_vis = tokens[~mask].reshape(B, -1, D)
        pos_vis = self.pos_embed(centers[~mask].reshape(B, -1, 3))
        for blk in self.blocks:
            x_vis = blk(x_vis + pos_vis)
        x_vis = self.norm(x_vis)
        pos = torch.cat([self.decoder_pos_embed(centers[~mask].reshape(B, -1, 3)),
                         self.decoder_pos_embed(centers[mask].reshape(B, -1, 3))], dim=1)
        x = torch.cat([x_vis, self.mask_token.expand(B, M, -1)], dim=1)
        for blk in self.decoder:
            x = blk(x + pos)
        x = self.decoder_norm(x)[:, -M:]
        rebuild = self.increase_dim(x.transpose(1, 2)).transpose(1, 2).reshape(B * M, K, 3)
        gt = neigh[mask].reshape(B * M, K, 3)
        d = torch.cdist(rebuild, gt).pow(2)                            # Chamfer L2, both directions
        return d.min(dim=2).values.mean() + d.min(dim=1).values.mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MaskedAutoencoder()
    model.train()
    opt = torch.optim.AdamW(ref.param_groups(model, 0.05), lr=1e-3, weight_decay=0.05)
    pts = torch.rand(args.batch, 1024, 3) * 2 - 1

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(pts)
        loss.backward()
        opt.step()
        return loss

    res = ref.timeit(step, args.warmup, args.iters)
    print(json.dumps({"train_step": res, "params": sum(p.numel() for p in model.parameters()),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    sys.exit(main())
