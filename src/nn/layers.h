// Transformer building blocks in timm's shape: Attention -> Mlp -> Block, and PatchEmbed.
// Parameter names follow timm / Point-MAE (qkv, proj, fc1, fc2, norm1, norm2) so checkpoints
// map onto them one to one.
#pragma once
#include <optional>

#include <torch/torch.h>

namespace ewa::nn {

// How a module's layers start, as an upstream constructor's `self.apply(self._init_weights)`
// leaves them (docs/protocols.md, "Initialisation"):
//   TorchDefault  PyTorch's own: every Linear / Conv weight and bias from U(-1/sqrt(fan_in),
//                 1/sqrt(fan_in)) (kaiming_uniform_ with a = sqrt(5)); what a module that calls
//                 no init function keeps (Point-MAE's and Point-BERT's classifiers, the dVAE,
//                 the segmentation network);
//   TruncNormal   timm's _init_weights: Linear and Conv1d weights trunc_normal_(std = 0.02)
//                 (timm's bounds, a = -2, b = 2: absolute values, so in effect N(0, 0.02^2)),
//                 biases 0 (Point-MAE's / Point-BERT's MaskTransformer, timm's ViT);
//   Xavier        Point-MAE's TransformerDecoder: Linear weights xavier_uniform_, biases 0.
// LayerNorm, BatchNorm and GroupNorm start at weight 1, bias 0 under every rule.
enum class InitRule { TorchDefault, TruncNormal, Xavier };

// The FFN sub-layer of a Block: [B, T, D] -> [B, T, D]. Dense Mlp and the MoE layers
// (src/moe) implement it, so a Block never knows which one it holds.
class FeedForwardImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // Auxiliary loss of the last forward pass (load balancing); undefined tensor when none.
  virtual torch::Tensor aux_loss() const { return {}; }
  // Re-initialises parameters that are not held by torch::nn layers (stacked experts) by `rule`,
  // each stacked layer as the Linear it stands for; apply_init calls it.
  virtual void init_stacked_(InitRule /*rule*/) {}
  // The seed of this FFN's own random stream (Stream::kFfnInit of its block, set by the model
  // registry), when it has one: it was built on that stream, and apply_init draws it from there
  // too, so the rest of the model starts the same whatever the FFN is (dense, 2 or 8 experts).
  std::optional<uint64_t> init_seed;
};

// Fills `t` in place as timm 0.4.5's trunc_normal_(t, mean = 0, std, a, b): N(0, std^2) cut at
// the absolute values a and b (inverse-CDF sampling, then a clamp; LibTorch has no trunc_normal_).
// With timm's defaults a = -2, b = 2 and std = 0.02 the cut is at 100 standard deviations. Drawn
// in double precision (a float32 draw hits a = -2 with probability 2^-24 per element).
void trunc_normal_(torch::Tensor t, double std, double a = -2.0, double b = 2.0);

// One Linear layer (weight [..., out, in], bias [..., out] or undefined; leading dimensions are
// independent layers, as stacked experts) re-initialised by `rule`.
void init_linear_(torch::Tensor weight, torch::Tensor bias, InitRule rule);

// `rule` applied to every Linear, Conv1d, Conv2d, LayerNorm, BatchNorm, GroupNorm and stacked
// expert layer of `module` and its descendants (upstream's `module.apply(_init_weights)`); an FFN
// with an init_seed draws on its own stream (the default generator is left as it was).
// Under TruncNormal and Xavier a Conv2d keeps PyTorch's initialisation (timm's and Point-MAE's
// _init_weights leave it); parameters registered directly (tokens, position tables) are the
// caller's.
void apply_init(torch::nn::Module& module, InitRule rule);

struct MlpOptions {
  MlpOptions(int64_t in_features, int64_t hidden_features) : in_features_(in_features), hidden_features_(hidden_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, hidden_features);
  TORCH_ARG(double, drop) = 0.0;
};

// fc1 -> GELU -> dropout -> fc2 -> dropout.
class MlpImpl : public FeedForwardImpl {
 public:
  explicit MlpImpl(const MlpOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  MlpOptions options_;
};
TORCH_MODULE(Mlp);

struct AttentionOptions {
  AttentionOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(bool, qkv_bias) = false;
  TORCH_ARG(double, attn_drop) = 0.0;
  TORCH_ARG(double, proj_drop) = 0.0;
};

// Multi-head self-attention, [B, T, D] -> [B, T, D], through scaled_dot_product_attention.
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  // The attention probabilities softmax(q k^T / sqrt(D/H)) [B, H, T, T] of `x` (explicitly, for
  // visualisation; forward() uses the fused kernel).
  torch::Tensor weights(const torch::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

// Stochastic depth: in training, zeroes each sample's residual branch with probability p and
// scales the survivors by 1 / (1 - p); the samples drawn as timm's drop_path draws them.
torch::Tensor drop_path(const torch::Tensor& x, double p, bool training);

struct BlockOptions {
  BlockOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(bool, qkv_bias) = false;
  TORCH_ARG(double, drop) = 0.0;
  TORCH_ARG(double, attn_drop) = 0.0;
  TORCH_ARG(double, drop_path) = 0.0;
  // LayerNorm epsilon: 1e-6 as timm's ViT, 1e-5 (PyTorch's default) as Point-MAE / Point-BERT.
  TORCH_ARG(double, norm_eps) = 1e-6;
};

// Pre-norm transformer block: x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))).
// The FFN is given by the caller (dense Mlp, RupMoE or RoutedMoE).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const BlockOptions& options, std::shared_ptr<FeedForwardImpl> mlp);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  std::shared_ptr<FeedForwardImpl> mlp;

 private:
  BlockOptions options_;
};
TORCH_MODULE(Block);

struct PatchEmbedOptions {
  PatchEmbedOptions(int64_t img_size, int64_t patch_size, int64_t in_chans, int64_t embed_dim)
      : img_size_(img_size), patch_size_(patch_size), in_chans_(in_chans), embed_dim_(embed_dim) {}
  TORCH_ARG(int64_t, img_size);
  TORCH_ARG(int64_t, patch_size);
  TORCH_ARG(int64_t, in_chans);
  TORCH_ARG(int64_t, embed_dim);
};

// Non-overlapping patches through a strided conv: [B, C, H, W] -> [B, (H/p)*(W/p), D].
class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const PatchEmbedOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t num_patches() const;
  torch::nn::Conv2d proj{nullptr};

 private:
  PatchEmbedOptions options_;
};
TORCH_MODULE(PatchEmbed);

}  // namespace ewa::nn
