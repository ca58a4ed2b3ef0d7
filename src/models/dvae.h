// Point-BERT's dVAE tokenizer (stage 1 of Point-BERT pretraining; PB:models/dvae.py, docs/protocols.md
// via ../shared/PROTOCOLS.md section 5.1), with the official parameter names so its checkpoints
// map both ways:
//   encoder.{first_conv,second_conv}.*   the mini-PointNet of every patch (MiniPointNet)
//   dgcnn_1.*   DGCNN over the patch centres (k = 4): input_trans Conv1d(C, 128), layer1..4
//               Conv2d(1x1, no bias)-GroupNorm(4)-LeakyReLU(0.2) on EdgeConv features
//               [x_j - x_i, x_i] max-pooled over the 4 neighbours, layer5 Conv1d(2304, out,
//               no bias)-GroupNorm(4)-LeakyReLU(0.2) on the four layers' outputs joined
//   codebook    [num_tokens, tokens_dims]
//   dgcnn_2.*   the same DGCNN from the sampled codes to the decoder width
//   decoder.mlp.{0,2,4}   Linear(C, 1024)-ReLU-Linear(1024, 1024)-ReLU-Linear(1024, 3 M): the
//               M = K / 4 coarse points of each patch
//   decoder.final_conv.{0,1,3,4,6}   Conv1d-BN-ReLU x2, Conv1d(512, 3) folding each coarse point
//               with a 2 x 2 grid (+-0.05) into the K fine points
// Forward on points [B, P, 3]: FPS + kNN groups (G x K) -> encoder -> dgcnn_1 -> logits [B, G, T]
// -> Gumbel-softmax (soft in training, hard = straight-through one-hot in evaluation) -> codes @
// codebook -> dgcnn_2 -> decoder -> coarse [B, G, M, 3], fine [B, G, K, 3] in patch coordinates.
// Loss: Chamfer-L1(coarse, patch) + Chamfer-L1(fine, patch) + w_kl * KL(uniform || mean over the
// patches of softmax(logits)), with w_kl and the temperature scheduled per iteration.
#pragma once
#include <torch/torch.h>

#include "models/point_transformer.h"

namespace ewa::models {

// Point-BERT's schedules (PB:tools/runner.py compute_loss, get_temp), per iteration n:
// KL weight 0 for n < delay, then cosine from `start` to `target` over `ntime` iterations, then
// `target`; temperature cosine from `start` to `target` over `ntime`, then `target`.
double dvae_kl_weight(int64_t n, double start = 0.0, double target = 0.1, int64_t ntime = 100000, int64_t delay = 10000);
double dvae_temperature(int64_t n, double start = 1.0, double target = 0.0625, int64_t ntime = 100000);

class DgcnnImpl : public torch::nn::Module {
 public:
  DgcnnImpl(int64_t in_channels, int64_t out_channels);
  // features [B, G, C] of the patches, their centres [B, G, 3] -> [B, G, out].
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& centers);
  // EdgeConv features of x [B, C, G] for neighbours idx [B, G, k]: [x_j - x_i, x_i], [B, 2C, G, k].
  static torch::Tensor edge_features(const torch::Tensor& x, const torch::Tensor& idx);
  torch::nn::Conv1d input_trans{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr}, layer5{nullptr};
};
TORCH_MODULE(Dgcnn);

class FoldingDecoderImpl : public torch::nn::Module {
 public:
  FoldingDecoderImpl(int64_t channels, int64_t num_fine);
  // features [B, G, C] -> coarse [B, G, K / 4, 3], fine [B, G, K, 3].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& features);
  torch::nn::Sequential mlp{nullptr}, final_conv{nullptr};

 private:
  int64_t num_fine_, num_coarse_;
  torch::Tensor seed_;  // [2, 4]: the 2 x 2 folding grid (not a parameter, as upstream)
};
TORCH_MODULE(FoldingDecoder);

struct DvaeOptions {
  int64_t num_groups = 64, group_size = 32, encoder_dims = 256, num_tokens = 8192, tokens_dims = 256,
          decoder_dims = 256;
};
// The dVAE sizes of cfg (model.num_groups, group_size, encoder_dims (0 = 256), pretrain.num_tokens,
// tokens_dims, decoder_dims).
DvaeOptions dvae_options(const Config& cfg);

struct DvaeOutput {
  torch::Tensor centers;        // [B, G, 3]
  torch::Tensor neighborhoods;  // [B, G, K, 3] the patches, relative to their centres
  torch::Tensor logits;         // [B, G, T]
  torch::Tensor codes;          // [B, G, T] the (soft or hard) Gumbel-softmax sample
  torch::Tensor coarse, fine;   // [B, G, K / 4, 3], [B, G, K, 3] in patch coordinates
  torch::Tensor recon;          // scalar: CD-L1(coarse) + CD-L1(fine)
  torch::Tensor kl;             // scalar: KL(uniform || mean_G softmax(logits)), batch mean
};

class DiscreteVaeImpl : public torch::nn::Module {
 public:
  explicit DiscreteVaeImpl(const DvaeOptions& o);
  // points [B, P, 3]; `gumbel` [B, G, T] the Gumbel noise to add (drawn when undefined).
  DvaeOutput forward(const torch::Tensor& points, double temperature, bool hard, torch::Tensor gumbel = {});
  // The token of every patch: argmax of dgcnn_1's logits ([B, G] int64), as Point-BERT's
  // masked point modelling labels its targets.
  torch::Tensor tokens(const torch::Tensor& points);
  // The same for patches [B, G, K, 3] and their centres [B, G, 3] already grouped.
  torch::Tensor tokens(const torch::Tensor& patches, const torch::Tensor& centers) {
    return dgcnn_1(encoder(patches), centers).argmax(2);
  }

  MiniPointNet encoder{nullptr};
  Dgcnn dgcnn_1{nullptr}, dgcnn_2{nullptr};
  torch::Tensor codebook;
  FoldingDecoder decoder{nullptr};

 private:
  DvaeOptions o_;
};
TORCH_MODULE(DiscreteVae);

}  // namespace ewa::models
