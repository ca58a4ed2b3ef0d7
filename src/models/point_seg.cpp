#include "models/point_seg.h"

#include "common/error.h"
#include "nn/layers.h"

namespace ewa::models {

std::vector<int64_t> seg_feature_blocks(int64_t depth) {
  const int64_t step = depth / 3;
  return {step - 1, 2 * step - 1, 3 * step - 1};
}

FeaturePropagationImpl::FeaturePropagationImpl(int64_t target_channels, int64_t known_channels,
                                               const std::vector<int64_t>& widths)
    : target_channels_(target_channels) {
  mlp_convs = register_module("mlp_convs", torch::nn::ModuleList());
  mlp_bns = register_module("mlp_bns", torch::nn::ModuleList());
  int64_t in = target_channels + known_channels;
  for (const int64_t w : widths) {
    mlp_convs->push_back(torch::nn::Linear(in, w));
    mlp_bns->push_back(torch::nn::BatchNorm1d(w));
    in = w;
  }
}

torch::Tensor FeaturePropagationImpl::interpolation(const torch::Tensor& targets, const torch::Tensor& known) {
  torch::NoGradGuard guard;
  auto t = targets.to(torch::kFloat), k = known.to(torch::kFloat);
  // Squared distances as PointNet++'s square_distance: -2 t.k + |t|^2 + |k|^2.
  auto d = torch::baddbmm((t * t).sum(-1, true) + (k * k).sum(-1).unsqueeze(1), t, k.transpose(1, 2), 1.0, -2.0);
  const int64_t nearest = std::min<int64_t>(3, k.size(1));
  auto [dist, idx] = d.topk(nearest, -1, /*largest=*/false, /*sorted=*/true);
  auto recip = 1.0 / (dist + 1e-8);
  auto w = recip / recip.sum(-1, true);
  return torch::zeros_like(d).scatter_(2, idx, w);
}

torch::Tensor FeaturePropagationImpl::forward(const torch::Tensor& targets, const torch::Tensor& known,
                                              const torch::Tensor& target_features, const torch::Tensor& known_features) {
  const int64_t B = targets.size(0), N = targets.size(1), Ct = target_channels_;
  auto* first = mlp_convs[0]->as<torch::nn::Linear>();
  const auto& w = first->weight;  // [H, Ct + Ck]: columns [target features, interpolated known features]
  // W_k (sum_j a_j f_j) = sum_j a_j (W_k f_j): the known features are projected at the S centres.
  auto projected = known_features.matmul(w.narrow(1, Ct, w.size(1) - Ct).t());                        // [B, S, H]
  auto interpolated = torch::bmm(interpolation(targets, known).to(projected.scalar_type()), projected);  // [B, N, H]
  auto h = torch::addmm(first->bias, target_features.reshape({B * N, Ct}), w.narrow(1, 0, Ct).t())
               .add_(interpolated.reshape({B * N, -1}));
  h = mlp_bns[0]->as<torch::nn::BatchNorm1d>()->forward(h).relu_();
  for (size_t i = 1; i < mlp_convs->size(); ++i)
    h = mlp_bns[i]->as<torch::nn::BatchNorm1d>()->forward(mlp_convs[i]->as<torch::nn::Linear>()->forward(h)).relu_();
  return h;
}

PointSegImpl::PointSegImpl(const Config& cfg)
    : num_groups_(cfg.model.num_groups),
      group_size_(cfg.model.group_size),
      depth_(cfg.model.depth),
      num_parts_(cfg.model.num_classes),
      num_categories_(cfg.model.num_categories) {
  const auto& m = cfg.model;
  if (m.in_chans < 3 || num_parts_ <= 0 || num_categories_ <= 0)
    fail("model: point_seg needs in_chans >= 3, num_classes (parts) and num_categories resolved from the dataset");
  const int64_t d = m.embed_dim, features = 3 * d;
  const int64_t e = m.encoder_dims > 0 ? m.encoder_dims : d;
  if (e != d) fail("model.encoder_dims: point_seg needs encoder_dims = embed_dim (or 0), as Point-MAE");
  encoder = register_module("encoder", MiniPointNet(m.in_chans, e));
  pos_embed = register_module("pos_embed", position_mlp(d));
  blocks = register_module("blocks", PointBlocks(cfg));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)));
  label_conv = register_module(
      "label_conv", torch::nn::Sequential(torch::nn::Linear(torch::nn::LinearOptions(num_categories_, 64).bias(false)),
                                          torch::nn::BatchNorm1d(64),
                                          torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2))));
  const int64_t fp_hidden = m.seg_fp_hidden > 0 ? m.seg_fp_hidden : 4 * d;
  propagation_0 = register_module("propagation_0", FeaturePropagation(int64_t(3), features, std::vector<int64_t>{fp_hidden, m.seg_fp_dim}));
  const int64_t h = m.seg_head_hidden;
  convs1 = register_module("convs1", torch::nn::Linear(m.seg_fp_dim + 2 * features + 64, h));
  dp1 = register_module("dp1", torch::nn::Dropout(0.5));
  convs2 = register_module("convs2", torch::nn::Linear(h, h / 2));
  convs3 = register_module("convs3", torch::nn::Linear(h / 2, num_parts_));
  bns1 = register_module("bns1", torch::nn::BatchNorm1d(h));
  bns2 = register_module("bns2", torch::nn::BatchNorm1d(h / 2));
  // Every layer keeps PyTorch's initialisation: PM:segmentation/models/pt.py get_model calls no
  // init function, and PM:segmentation/main.py applies only inplace_relu before loading --ckpts.
}

std::pair<torch::Tensor, torch::Tensor> PointSegImpl::backbone(const torch::Tensor& points) {
  auto groups = group_point_cloud(points, num_groups_, group_size_);
  auto x = encoder(groups.neighborhoods);
  auto pos = pos_embed->forward(groups.centers);
  const auto fetch = seg_feature_blocks(depth_);
  std::vector<torch::Tensor> features;
  for (int64_t i = 0; i < depth_; ++i) {
    x = blocks->blocks[i]->as<nn::Block>()->forward(x + pos);
    if (std::find(fetch.begin(), fetch.end(), i) != fetch.end()) features.push_back(norm(x));
  }
  return {torch::cat(features, 2), groups.centers};
}

torch::Tensor PointSegImpl::forward(const torch::Tensor& points, const torch::Tensor& category) {
  const int64_t B = points.size(0), N = points.size(1);
  auto [f, centers] = backbone(points);  // [B, G, 3D], [B, G, 3]
  auto one_hot = torch::one_hot(category.to(torch::kLong), num_categories_).to(f.scalar_type());
  auto global = torch::cat({std::get<0>(f.max(1)), f.mean(1), label_conv->forward(one_hot)}, 1);  // [B, 6D + 64]
  auto xyz = points.narrow(2, 0, 3);
  auto per_point = propagation_0(xyz, centers, xyz, f);  // [B N, fp_dim]
  // convs1 on [per_point, global]: the global columns once per shape.
  const auto& w = convs1->weight;
  const int64_t fp = per_point.size(1);
  auto per_shape = torch::addmm(convs1->bias, global, w.narrow(1, fp, w.size(1) - fp).t());  // [B, H]
  auto h = torch::mm(per_point, w.narrow(1, 0, fp).t()).view({B, N, -1}).add_(per_shape.unsqueeze(1));
  h = bns1(h.view({B * N, -1})).relu_();
  // dp1 as at::dropout computes it (noise.bernoulli_(1 - p), / (1 - p), times the input), the noise
  // drawn over upstream's contiguous [B, C, N] layout, so a seeded training pass drops what
  // upstream's drops.
  const double p = dp1->options.p();
  if (is_training() && p > 0) {
    auto noise = torch::empty({B, h.size(1), N}, h.options()).bernoulli_(1.0 - p).div_(1.0 - p);
    h = (h.view({B, N, -1}) * noise.transpose(1, 2)).view({B * N, -1});
  }
  h = bns2(convs2(h)).relu_();
  return convs3(h).view({B, N, num_parts_});
}

}  // namespace ewa::models
