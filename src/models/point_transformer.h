// Point-cloud transformer classifier in the style of Point-MAE / Point-BERT (their fine-tuning
// "PointTransformer"):
//   points [B, P, C] -> FPS centers [B, G, 3] -> kNN groups [B, G, K, C] relative to their centers
//   -> mini-PointNet "encoder" -> tokens [B, G, E] (-> "reduce_dim" Linear(E, D) for Point-BERT)
//   -> cls token + position MLP of the centers, added before every block -> Blocks -> norm
//   -> [class token, max over group tokens] [B, 2D] -> "cls_head_finetune".
// Parameter names match the official checkpoints key for key: encoder.first_conv.{0,1,3},
// encoder.second_conv.{0,1,3}, cls_token, cls_pos, pos_embed.{0,2}, blocks.blocks.N.*, norm,
// reduce_dim (Point-BERT), cls_head_finetune.{0,1,4,5,8} (Point-MAE: Linear-BN-ReLU-Dropout x2,
// Linear) or cls_head_finetune.{0,3} (Point-BERT: Linear-ReLU-Dropout-Linear). The encoder's
// 1x1 convolutions are Linear layers over channels-last rows (same math, 25% faster training step
// on CPU); an imported Conv1d weight [out, in, 1] maps onto them by dropping the last dimension.
#pragma once
#include "config/config.h"
#include "models/classifier.h"
#include "nn/layers.h"

namespace ewa::models {

// The grouping of PointTransformer (and PointMae): FPS centers with pointnet2_ops' rules (first
// center = point 0, points within 0.0316 of the origin never centers; kernels/fps/fps.h) and kNN
// groups of the nearest points by exact squared distance (as KNN_CUDA).
struct PointGroups {
  torch::Tensor centers;        // [B, G, 3]
  torch::Tensor neighborhoods;  // [B, G, K, C], xyz relative to the center
  torch::Tensor index;          // [B, G, K] int64: the points of each group
};
PointGroups group_point_cloud(const torch::Tensor& points, int64_t num_groups, int64_t group_size);

// Mini-PointNet: [B, G, K, C] -> [B, G, out]. first_conv (C -> 128 -> 256) on every point, the
// group's max-pooled feature g joined to every point's f, second_conv ([g, f] 512 -> 512 -> out),
// max-pooled over the group. The layout and names are Point-MAE's (its Conv1d of kernel 1 are our
// Linear layers, same weights).
class MiniPointNetImpl : public torch::nn::Module {
 public:
  MiniPointNetImpl(int64_t in_channels, int64_t out_channels);
  // The first layer of second_conv is split by its input: W [g, f] + b = W_f f + (W_g g + b), with
  // W_g g + b computed once per group instead of once per point, and the [g, f] concatenation
  // never built (a quarter of the encoder's multiply-adds saved; the same function).
  torch::Tensor forward(const torch::Tensor& groups);
  // The straightforward formulation (concatenate, then the 512-wide layer), kept for the tests.
  torch::Tensor forward_concat(const torch::Tensor& groups);
  torch::nn::Sequential first_conv{nullptr}, second_conv{nullptr};
};
TORCH_MODULE(MiniPointNet);

// Point-MAE's TransformerEncoder: x = block(x + pos) for every block.
class PointBlocksImpl : public torch::nn::Module {
 public:
  explicit PointBlocksImpl(const Config& cfg);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& pos);
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(PointBlocks);

// The position embedding of Point-MAE and Point-BERT (their pos_embed / decoder_pos_embed): the
// centers [..., 3] -> Linear(3, 128), GELU, Linear(128, dim); parameters "0.*" and "2.*".
torch::nn::Sequential position_mlp(int64_t dim);

// What a point classifier computed for each patch (`ewa show`), from an eval-mode forward pass.
struct PointInspection {
  torch::Tensor logits;     // [B, num_classes]
  torch::Tensor centers;    // [B, G, 3]
  torch::Tensor index;      // [B, G, K] int64: the points of each patch
  torch::Tensor attention;  // [B, G]: the class token's attention to each patch in the last block, mean over heads
  torch::Tensor experts;    // [B, G] int64: first-choice expert of each patch in the last routed MoE block
                            // (undefined when the model has none)
  int64_t experts_block = -1;  // the block `experts` comes from
};

class PointTransformerImpl : public ClassifierImpl {
 public:
  // cfg.model.in_chans (3 = xyz, 6 = xyz + normals) and num_classes must be resolved.
  explicit PointTransformerImpl(const Config& cfg);
  // points [B, P, C] -> [B, 2D]: [class token, max over the group tokens] of forward_tokens
  torch::Tensor forward_features(const torch::Tensor& points) override;
  // points [B, P, C] -> the final norm's output [B, 1 + G, D]: the class token, then the G group tokens
  torch::Tensor forward_tokens(const torch::Tensor& points);
  torch::Tensor forward_head(const torch::Tensor& features) override;
  // The forward pass (no gradients, eval mode is the caller's) with the patches, the class
  // token's attention and routed experts.
  PointInspection inspect(const torch::Tensor& points);
  bool is_head(const std::string& name) const override { return name.rfind("cls_head_finetune.", 0) == 0; }
  std::shared_ptr<torch::nn::Module> head_module() override { return cls_head_finetune.ptr(); }
  bool may_start_fresh(const std::string& name) const override {
    return is_head(name) || name == "cls_token" || name == "cls_pos";
  }
  int64_t num_layers() const override { return depth_ + 1; }
  int64_t layer_of(const std::string& name) const override;

  MiniPointNet encoder{nullptr};
  torch::nn::Linear reduce_dim{nullptr};  // Point-BERT only
  torch::Tensor cls_token, cls_pos;
  torch::nn::Sequential pos_embed{nullptr};
  PointBlocks blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Sequential cls_head_finetune{nullptr};

 private:
  int64_t num_groups_, group_size_, depth_;
};

}  // namespace ewa::models
