#include "models/dvae.h"

#include <cmath>

#include "common/error.h"
#include "kernels/chamfer/chamfer.h"
#include "kernels/knn/knn.h"

namespace ewa::models {
namespace {

constexpr int64_t kDgcnnNeighbours = 4;

double cosine_ramp(int64_t n, double start, double target, int64_t ntime) {
  return target + (start - target) * (1.0 + std::cos(M_PI * double(n) / double(ntime))) / 2.0;
}

// Conv (1x1, no bias) - GroupNorm(4) - LeakyReLU(0.2), as a Sequential with upstream's indices.
torch::nn::Sequential edge_layer(int64_t in, int64_t out, bool conv2d) {
  torch::nn::Sequential s;
  if (conv2d) {
    s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(false)));
  } else {
    s->push_back(torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, 1).bias(false)));
  }
  s->push_back(torch::nn::GroupNorm(torch::nn::GroupNormOptions(4, out)));
  s->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
  return s;
}

}  // namespace

double dvae_kl_weight(int64_t n, double start, double target, int64_t ntime, int64_t delay) {
  const int64_t m = n - delay;
  if (m > ntime) return target;
  if (m < 0) return 0.0;
  return cosine_ramp(m, start, target, ntime);
}

double dvae_temperature(int64_t n, double start, double target, int64_t ntime) {
  return n > ntime ? target : cosine_ramp(n, start, target, ntime);
}

DgcnnImpl::DgcnnImpl(int64_t in_channels, int64_t out_channels) {
  input_trans = register_module("input_trans", torch::nn::Conv1d(torch::nn::Conv1dOptions(in_channels, 128, 1)));
  layer1 = register_module("layer1", edge_layer(256, 256, true));
  layer2 = register_module("layer2", edge_layer(512, 512, true));
  layer3 = register_module("layer3", edge_layer(1024, 512, true));
  layer4 = register_module("layer4", edge_layer(1024, 1024, true));
  layer5 = register_module("layer5", edge_layer(2304, out_channels, false));
}

torch::Tensor DgcnnImpl::edge_features(const torch::Tensor& x, const torch::Tensor& idx) {
  const int64_t B = x.size(0), C = x.size(1), G = x.size(2), k = idx.size(2);
  auto rows = x.transpose(1, 2).reshape({B * G, C});
  auto flat = (idx + torch::arange(B, idx.options()).view({B, 1, 1}) * G).reshape(-1);
  auto neighbours = rows.index_select(0, flat).view({B, G, k, C}).permute({0, 3, 1, 2});  // [B, C, G, k]
  auto centre = x.unsqueeze(3).expand({B, C, G, k});
  return torch::cat({neighbours - centre, centre}, 1);
}

torch::Tensor DgcnnImpl::forward(const torch::Tensor& features, const torch::Tensor& centers) {
  torch::Tensor idx;
  {
    torch::NoGradGuard guard;
    idx = std::get<0>(kernels::knn(centers.contiguous(), centers.contiguous(), kDgcnnNeighbours));  // [B, G, 4]
  }
  auto x = input_trans(features.transpose(1, 2));  // [B, 128, G]
  std::vector<torch::Tensor> outs;
  for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
    x = std::get<0>((*layer)->forward(edge_features(x, idx)).max(3));
    outs.push_back(x);
  }
  return layer5->forward(torch::cat(outs, 1)).transpose(1, 2);  // [B, G, out]
}

FoldingDecoderImpl::FoldingDecoderImpl(int64_t channels, int64_t num_fine)
    : num_fine_(num_fine), num_coarse_(num_fine / 4) {
  if (num_fine % 4 != 0) fail("dvae: the group size must be a multiple of 4 (2 x 2 folding), got " + std::to_string(num_fine));
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(channels, 1024), torch::nn::ReLU(true),
                                                      torch::nn::Linear(1024, 1024), torch::nn::ReLU(true),
                                                      torch::nn::Linear(1024, 3 * num_coarse_)));
  final_conv = register_module(
      "final_conv",
      torch::nn::Sequential(torch::nn::Conv1d(torch::nn::Conv1dOptions(channels + 3 + 2, 512, 1)), torch::nn::BatchNorm1d(512),
                            torch::nn::ReLU(true), torch::nn::Conv1d(torch::nn::Conv1dOptions(512, 512, 1)),
                            torch::nn::BatchNorm1d(512), torch::nn::ReLU(true),
                            torch::nn::Conv1d(torch::nn::Conv1dOptions(512, 3, 1))));
  // Grid point s of a coarse point: (a_s, b_s) with a = (-.05, .05, -.05, .05), b = (-.05, -.05, .05, .05).
  seed_ = torch::tensor({-0.05f, 0.05f, -0.05f, 0.05f, -0.05f, -0.05f, 0.05f, 0.05f}).view({2, 4});
}

std::pair<torch::Tensor, torch::Tensor> FoldingDecoderImpl::forward(const torch::Tensor& features) {
  const int64_t B = features.size(0), G = features.size(1), C = features.size(2), M = num_coarse_, N = num_fine_;
  auto f = features.reshape({B * G, C});
  auto coarse = mlp->forward(f).view({B * G, M, 3});
  // Fine point n = m * 4 + s: coarse point m, grid point s.
  auto centre = coarse.unsqueeze(2).expand({B * G, M, 4, 3}).reshape({B * G, N, 3}).transpose(1, 2);  // [BG, 3, N]
  auto seed = seed_.to(f.device(), f.scalar_type()).unsqueeze(1).expand({2, M, 4}).reshape({1, 2, N}).expand({B * G, 2, N});
  auto feat = torch::cat({f.unsqueeze(2).expand({B * G, C, N}), seed, centre}, 1);  // [BG, C + 5, N]
  auto fine = final_conv->forward(feat) + centre;                                     // [BG, 3, N]
  return {coarse.view({B, G, M, 3}), fine.view({B, G, 3, N}).transpose(2, 3)};
}

DiscreteVaeImpl::DiscreteVaeImpl(const DvaeOptions& o) : o_(o) {
  encoder = register_module("encoder", MiniPointNet(3, o.encoder_dims));
  dgcnn_1 = register_module("dgcnn_1", Dgcnn(o.encoder_dims, o.num_tokens));
  codebook = register_parameter("codebook", torch::randn({o.num_tokens, o.tokens_dims}));
  dgcnn_2 = register_module("dgcnn_2", Dgcnn(o.tokens_dims, o.decoder_dims));
  decoder = register_module("decoder", FoldingDecoder(o.decoder_dims, o.group_size));
  // Every layer keeps PyTorch's initialisation and the codebook torch.randn: PB:models/dvae.py
  // DiscreteVAE (and its Encoder, DGCNN and Decoder) calls no init function.
}

DvaeOutput DiscreteVaeImpl::forward(const torch::Tensor& points, double temperature, bool hard, torch::Tensor gumbel) {
  DvaeOutput out;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), o_.num_groups, o_.group_size);
  out.centers = groups.centers;
  out.neighborhoods = groups.neighborhoods;
  out.logits = dgcnn_1(encoder(groups.neighborhoods), groups.centers);  // [B, G, T]
  // F.gumbel_softmax(logits, tau, dim=2, hard): softmax((logits + g) / tau), g ~ Gumbel(0, 1);
  // hard: the one-hot of its argmax with the soft sample's gradient (straight through).
  // Drawn in the logits' logical [B, G, T] order (contiguous, as F.gumbel_softmax's
  // legacy_contiguous_format), so a seeded pass draws upstream's noise element for element.
  if (!gumbel.defined()) gumbel = -torch::empty(out.logits.sizes(), out.logits.options()).exponential_().log();
  auto soft = torch::softmax((out.logits + gumbel) / temperature, 2);
  out.codes = soft;
  if (hard) {
    auto one_hot = torch::zeros_like(soft).scatter_(2, soft.argmax(2, true), 1.0);
    out.codes = one_hot - soft.detach() + soft;
  }
  auto sampled = torch::matmul(out.codes, codebook);  // [B, G, tokens_dims]
  std::tie(out.coarse, out.fine) = decoder(dgcnn_2(sampled, groups.centers));
  const int64_t B = points.size(0), G = o_.num_groups, K = o_.group_size;
  auto truth = groups.neighborhoods.reshape({B * G, K, 3});
  out.recon = kernels::chamfer_distance_l1(out.coarse.reshape({B * G, -1, 3}).contiguous(), truth.contiguous()) +
              kernels::chamfer_distance_l1(out.fine.reshape({B * G, K, 3}).contiguous(), truth.contiguous());
  // F.kl_div(log mean_G softmax(logits), log(1 / T), 'batchmean', log_target=True).
  auto log_q = torch::softmax(out.logits, 2).mean(1).log();  // [B, T]
  const double log_uniform = -std::log(double(o_.num_tokens));
  out.kl = (std::exp(log_uniform) * (log_uniform - log_q)).sum() / double(B);
  return out;
}

torch::Tensor DiscreteVaeImpl::tokens(const torch::Tensor& points) {
  auto groups = group_point_cloud(points.narrow(2, 0, 3), o_.num_groups, o_.group_size);
  return tokens(groups.neighborhoods, groups.centers);
}

DvaeOptions dvae_options(const Config& cfg) {
  DvaeOptions o;
  o.num_groups = cfg.model.num_groups;
  o.group_size = cfg.model.group_size;
  o.encoder_dims = cfg.model.encoder_dims > 0 ? cfg.model.encoder_dims : 256;
  o.num_tokens = cfg.pretrain.num_tokens;
  o.tokens_dims = cfg.pretrain.tokens_dims;
  o.decoder_dims = cfg.pretrain.decoder_dims;
  return o;
}


}  // namespace ewa::models
