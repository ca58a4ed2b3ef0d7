#!/usr/bin/env python3
"""PyTorch reference for one training step of each Point-BERT pretraining stage, written like the
official code (PB:models/dvae.py, PB:models/Point_BERT.py), from the modules of
../shared/bench/ref_pointmae.py (grouping, mini-PointNet encoder, Block; imported, unchanged):

  --stage dvae   the dVAE tokenizer: encoder, DGCNN (k = 4, Conv2d + GroupNorm) to 8192 logits,
                 F.gumbel_softmax(soft), codebook, second DGCNN, folding decoder; Chamfer-L1 on
                 the coarse and fine points (torch.cdist, the CPU equivalent of the official CUDA
                 extension) + KL to the uniform prior
  --stage bert   masked point modelling: the frozen dVAE's tokens, the online MaskTransformer on the
                 block-masked clouds and on their patch-mixed versions, the momentum update, the
                 key pass, token CE at the masked patches, the patch-mix contrastive loss over a
                 16384-key queue, the enqueue

It is a timing anchor for `bench/vs_reference.sh --pointbert`; it must not be tuned.

    $EWA_VENV/bin/python bench/ref_pointbert.py --stage bert --batch 16 --threads 2 --iters 3
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import importlib.util
import json
import random
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
ref_path = os.environ.get("REF", os.path.join(here, "..", "..", "shared", "bench", "ref_pointmae.py"))
spec = importlib.util.spec_from_file_location("ref_pointmae", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


class DGCNN(nn.Module):
    def __init__(self, cin, cout, k=4):
        super().__init__()
        self.k = k
        self.input_trans = nn.Conv1d(cin, 128, 1)
        layer = lambda conv, i, o: nn.Sequential(conv(i, o, kernel_size=1, bias=False), nn.GroupNorm(4, o),
                                                 nn.LeakyReLU(negative_slope=0.2))
        self.layer1, self.layer2 = layer(nn.Conv2d, 256, 256), layer(nn.Conv2d, 512, 512)
        self.layer3, self.layer4 = layer(nn.Conv2d, 1024, 512), layer(nn.Conv2d, 1024, 1024)
        self.layer5 = layer(nn.Conv1d, 2304, cout)

    def graph(self, x, idx):
        B, C, G = x.shape
        base = torch.arange(B).view(-1, 1, 1) * G
        flat = (idx + base).view(-1)
        nb = x.transpose(1, 2).reshape(B * G, C)[flat].view(B, G, self.k, C).permute(0, 3, 1, 2)
        centre = x.unsqueeze(-1).expand(-1, -1, -1, self.k)
        return torch.cat([nb - centre, centre], dim=1)

    def forward(self, f, coor):
        idx = torch.cdist(coor, coor).topk(self.k, dim=-1, largest=False).indices
        x = self.input_trans(f.transpose(1, 2))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(self.graph(x, idx)).max(dim=-1)[0]
            outs.append(x)
        return self.layer5(torch.cat(outs, dim=1)).transpose(1, 2)


class Decoder(nn.Module):
    def __init__(self, c, num_fine):
        super().__init__()
        self.num_fine, self.num_coarse = num_fine, num_fine // 4
        self.mlp = nn.Sequential(nn.Linear(c, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 1024), nn.ReLU(inplace=True),
                                 nn.Linear(1024, 3 * self.num_coarse))
        self.final_conv = nn.Sequential(nn.Conv1d(c + 5, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                        nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                        nn.Conv1d(512, 3, 1))
        a = torch.linspace(-0.05, 0.05, 2).view(1, 2).expand(2, 2).reshape(1, -1)
        b = torch.linspace(-0.05, 0.05, 2).view(2, 1).expand(2, 2).reshape(1, -1)
        self.folding_seed = torch.cat([a, b], dim=0).view(1, 2, 4)

    def forward(self, feat):
        B, G, C = feat.shape
        f = feat.reshape(B * G, C)
        coarse = self.mlp(f).reshape(B * G, self.num_coarse, 3)
        point_feat = coarse.unsqueeze(2).expand(-1, -1, 4, -1).reshape(B * G, self.num_fine, 3).transpose(2, 1)
        seed = self.folding_seed.unsqueeze(2).expand(B * G, -1, self.num_coarse, -1).reshape(B * G, -1, self.num_fine)
        glob = f.unsqueeze(2).expand(-1, -1, self.num_fine)
        fine = self.final_conv(torch.cat([glob, seed, point_feat], dim=1)) + point_feat
        return coarse.reshape(B, G, self.num_coarse, 3), fine.reshape(B, G, 3, self.num_fine).transpose(-1, -2)


def chamfer_l1(a, b):
    d = torch.cdist(a, b)
    return (d.min(2).values.mean() + d.min(1).values.mean()) / 2


class DiscreteVAE(nn.Module):
    def __init__(self, groups=64, group_size=32, encoder_dims=256, tokens=8192, tokens_dims=256, decoder_dims=256):
        super().__init__()
        self.groups, self.group_size, self.tokens = groups, group_size, tokens
        self.encoder = ref.PointPatchEncoder(encoder_dims)
        self.dgcnn_1 = DGCNN(encoder_dims, tokens)
        self.codebook = nn.Parameter(torch.randn(tokens, tokens_dims))
        self.dgcnn_2 = DGCNN(tokens_dims, decoder_dims)
        self.decoder = Decoder(decoder_dims, group_size)

    def forward(self, pts, temperature=1.0):
        neigh, center = ref.group_points(pts, self.groups, self.group_size)
        logits = self.dgcnn_1(self.encoder(neigh), center)
        soft = F.gumbel_softmax(logits, tau=temperature, dim=2, hard=False)
        coarse, fine = self.decoder(self.dgcnn_2(soft @ self.codebook, center))
        B, G, K = neigh.shape[0], self.groups, self.group_size
        gt = neigh.reshape(B * G, K, 3)
        recon = chamfer_l1(coarse.reshape(B * G, -1, 3), gt) + chamfer_l1(fine.reshape(B * G, K, 3), gt)
        log_q = F.log_softmax(logits, dim=-1).exp().mean(1).log()
        log_u = torch.log(torch.tensor([1.0 / self.tokens]))
        kl = F.kl_div(log_q, log_u.expand_as(log_q), None, None, "batchmean", log_target=True)
        return recon + 0.1 * kl


class MaskTransformer(nn.Module):
    def __init__(self, dim=384, depth=12, heads=6, encoder_dims=256, tokens=8192, cls_dim=512, drop_path=0.1,
                 mask_ratio=(0.25, 0.45)):
        super().__init__()
        self.mask_ratio = mask_ratio
        self.encoder = ref.PointPatchEncoder(encoder_dims)
        self.reduce_dim = nn.Linear(encoder_dims, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        dpr = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList([ref.Block(dim, heads, 4.0, dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, tokens)
        self.cls_head = nn.Sequential(nn.Linear(dim, cls_dim), nn.GELU(), nn.Linear(cls_dim, cls_dim))

    def _mask_center(self, center):  # the official block masking, a Python loop over the clouds
        masks = []
        for points in center:
            points = points.unsqueeze(0)
            index = random.randint(0, points.size(1) - 1)
            distance = torch.norm(points[:, index].reshape(1, 1, 3) - points, p=2, dim=-1)
            idx = torch.argsort(distance, dim=-1, descending=False)[0]
            ratio = random.uniform(self.mask_ratio[0], self.mask_ratio[1])
            mask = torch.zeros(len(idx))
            mask[idx[:int(ratio * len(idx))]] = 1
            masks.append(mask.bool())
        return torch.stack(masks)

    def forward(self, neigh, center, only_cls=False):
        mask = self._mask_center(center)
        x = self.reduce_dim(self.encoder(neigh))
        B, G, _ = x.shape
        w = mask.unsqueeze(-1).type_as(x)
        x = x * (1 - w) + self.mask_token.expand(B, G, -1) * w
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        pos = torch.cat((self.cls_pos.expand(B, -1, -1), self.pos_embed(center)), dim=1)
        for blk in self.blocks:
            x = blk(x + pos)
        x = self.norm(x)
        if only_cls:
            return self.cls_head(x[:, 0])
        logits = self.lm_head(x[:, 1:])
        return self.cls_head(x[:, 0]), logits[mask], mask


class PointBERT(nn.Module):
    def __init__(self, groups=64, group_size=32, K=16384, m=0.999, T=0.07):
        super().__init__()
        self.groups, self.group_size, self.K, self.m, self.T = groups, group_size, K, m, T
        self.transformer_q = MaskTransformer()
        self.transformer_k = copy.deepcopy(self.transformer_q)
        for p in self.transformer_k.parameters():
            p.requires_grad = False
        self.dvae = DiscreteVAE(groups, group_size)
        for p in self.dvae.parameters():
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(512, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, pts):
        neigh, center = ref.group_points(pts, self.groups, self.group_size)
        with torch.no_grad():
            label = self.dvae.dgcnn_1(self.dvae.encoder(neigh), center).argmax(-1).long()
        _, logits, mask = self.transformer_q(neigh, center)
        r = torch.rand(neigh.size(0))
        mm = (torch.rand(neigh.shape[:2]) < r.unsqueeze(-1)).type_as(neigh)
        mix_neigh = neigh * mm[..., None, None] + neigh.flip(0) * (1 - mm[..., None, None])
        mix_center = center * mm[..., None] + center.flip(0) * (1 - mm[..., None])
        mix_label = (label * mm + label.flip(0) * (1 - mm)).long()
        mix_q, mix_logits, mix_mask = self.transformer_q(mix_neigh, mix_center)
        mix_q = F.normalize(mix_q, dim=1)
        with torch.no_grad():
            for pq, pk in zip(self.transformer_q.parameters(), self.transformer_k.parameters()):
                pk.data = pk.data * self.m + pq.data * (1.0 - self.m)
            k = F.normalize(self.transformer_k(neigh, center, only_cls=True), dim=1)
        token = F.cross_entropy(logits, label[mask]) + F.cross_entropy(mix_logits, mix_label[mix_mask])
        ce = torch.cat([mix_q @ k.t(), mix_q @ self.queue.clone().detach()], 1) / self.T
        labels = torch.arange(ce.shape[0])
        each = nn.CrossEntropyLoss(reduction="none")
        mix = (r * each(ce, labels) + (1 - r) * each(ce, labels.flip(0))).mean()
        with torch.no_grad():
            n, ptr = k.shape[0], int(self.queue_ptr)
            self.queue[:, ptr:ptr + n] = k.T
            self.queue_ptr[0] = (ptr + n) % self.K
        return token + mix


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["dvae", "bert"], required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    if args.stage == "dvae":
        model = DiscreteVAE()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=5e-4)
    else:
        model = PointBERT()
        opt = torch.optim.AdamW(ref.param_groups(model.transformer_q, 0.05), lr=5e-4, weight_decay=0.05)
    model.train()
    pts = torch.rand(args.batch, 1024, 3) * 2 - 1

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(pts)
        loss.backward()
        opt.step()
        return loss

    res = ref.timeit(step, args.warmup, args.iters)
    print(json.dumps({"train_step": res, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    sys.exit(main())
