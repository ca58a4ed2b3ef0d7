// Point-MAE's part-segmentation network (PM:segmentation/models/pt.py, docs/protocols.md
// "Part segmentation"), with the official parameter names so its checkpoints map both ways:
//   encoder.*, pos_embed.{0,2}, blocks.blocks.N.*, norm        the backbone (no class token; FFNs
//       may be EWA-MoE layers as in classification, cfg.moe)
//   label_conv.{0,1}      one-hot category (16) -> Linear(16, 64, no bias) - BatchNorm - LeakyReLU(0.2)
//   propagation_0.mlp_convs.{0,1}, propagation_0.mlp_bns.{0,1}
//                          PointNet++ feature propagation from the G centres to every point
//   convs1, bns1, convs2, bns2, convs3    the per-point head (Conv-BN-ReLU-Dropout 0.5, Conv-BN-ReLU, Conv)
// Forward on points [B, N, C] and the category [B]: FPS + kNN groups -> mini-PointNet tokens ->
// blocks, keeping the outputs of blocks depth/3, 2 depth/3 and depth (Point-MAE: 4, 8, 12), each
// through the shared final norm -> f [B, G, 3D]; global = [max_G f, mean_G f, label embedding];
// every point gets the 3-NN inverse-distance interpolation of f from the centres, joined to its
// xyz, through the propagation MLP; the head reads [propagated, global] -> part logits [B, N, P].
// The official Conv1d layers are Linear layers over channels-last rows (same weights, an
// imported [out, in, 1] drops its last dimension), and two products are reordered without
// changing the function: the propagation's first layer is applied to the G centre features
// before the interpolation (its weights sum to one), and the head's first layer splits its input
// into the per-point part and the per-shape global part (computed once per shape, never repeated
// over the points).
#pragma once
#include "config/config.h"
#include "models/point_transformer.h"

namespace ewa::models {

// PointNet++'s feature propagation (3 nearest known points, weights 1 / (d^2 + 1e-8) normalised)
// followed by Linear-BatchNorm-ReLU layers of `widths`; the input of the first layer is
// [target features, interpolated known features].
class FeaturePropagationImpl : public torch::nn::Module {
 public:
  FeaturePropagationImpl(int64_t target_channels, int64_t known_channels, const std::vector<int64_t>& widths);
  // targets [B, N, 3], known [B, S, 3] (S >= 3), target_features [B, N, Ct], known_features [B, S, Ck]
  // -> [B * N, widths.back()] (rows in (b, n) order).
  torch::Tensor forward(const torch::Tensor& targets, const torch::Tensor& known, const torch::Tensor& target_features,
                        const torch::Tensor& known_features);
  // The interpolation matrix [B, N, S]: row n holds the 3 weights of target n's nearest known points.
  static torch::Tensor interpolation(const torch::Tensor& targets, const torch::Tensor& known);
  torch::nn::ModuleList mlp_convs{nullptr}, mlp_bns{nullptr};

 private:
  int64_t target_channels_;
};
TORCH_MODULE(FeaturePropagation);

class PointSegImpl : public torch::nn::Module {
 public:
  // cfg.model: in_chans, num_classes (parts) and num_categories resolved.
  explicit PointSegImpl(const Config& cfg);
  // points [B, N, C], category int64 [B] -> part logits [B, N, num_parts].
  torch::Tensor forward(const torch::Tensor& points, const torch::Tensor& category);
  // The three normed block outputs joined: [B, G, 3D], and the centres [B, G, 3].
  std::pair<torch::Tensor, torch::Tensor> backbone(const torch::Tensor& points);
  int64_t num_parts() const { return num_parts_; }
  int64_t num_categories() const { return num_categories_; }

  MiniPointNet encoder{nullptr};
  torch::nn::Sequential pos_embed{nullptr};
  PointBlocks blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Sequential label_conv{nullptr};
  FeaturePropagation propagation_0{nullptr};
  torch::nn::Linear convs1{nullptr}, convs2{nullptr}, convs3{nullptr};
  torch::nn::BatchNorm1d bns1{nullptr}, bns2{nullptr};
  torch::nn::Dropout dp1{nullptr};

 private:
  int64_t num_groups_, group_size_, depth_, num_parts_, num_categories_;
};
TORCH_MODULE(PointSeg);

// The blocks whose outputs point_seg joins: depth/3 - 1, 2 depth/3 - 1, depth - 1 (0-based).
std::vector<int64_t> seg_feature_blocks(int64_t depth);

}  // namespace ewa::models
