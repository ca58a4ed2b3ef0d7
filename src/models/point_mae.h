// Point-MAE masked-autoencoder pretraining (Pang et al., ECCV 2022), with the parameter names of
// the official `Point_MAE` module so checkpoints map both ways:
//   MAE_encoder.{encoder.*, pos_embed.*, blocks.blocks.N.*, norm.*}   the encoder (the same
//       modules as PointTransformer's backbone; its FFNs may be EWA-MoE layers, cfg.moe)
//   mask_token [1, 1, D], decoder_pos_embed.{0,2}, MAE_decoder.{blocks.N.*, norm.*}
//   increase_dim.0  Linear(D, 3 K) (official: Conv1d(D, 3K, 1), weight [3K, D, 1])
// Forward on points [B, P, 3]: FPS + kNN groups (as PointTransformer) -> a mask over the G groups
// (int(mask_ratio * G) per cloud; "rand" uniform or "block" = nearest to a random center) ->
// the mini-PointNet encodes every group -> the encoder runs on the visible tokens only -> the
// decoder sees visible tokens + mask tokens, each with the position embedding of its center ->
// increase_dim predicts the K points of every masked group relative to its center -> loss =
// Chamfer distance between predicted and true masked groups (L2 by default).
#pragma once
#include "config/config.h"
#include "models/point_transformer.h"

namespace ewa::models {

// The mask of one batch: bool [B, G], true = masked, exactly int(ratio * G) per row.
// "rand": uniform without replacement; "block": the int(ratio * G) centers nearest (Euclidean) to
// one center drawn uniformly per cloud. Draws from torch's default generator.
torch::Tensor make_group_mask(const torch::Tensor& centers, double ratio, const std::string& type);
// int(ratio * G): the groups make_group_mask masks per cloud.
inline int64_t masked_group_count(double ratio, int64_t G) { return static_cast<int64_t>(ratio * double(G)); }

// Point-MAE's MaskTransformer: the backbone that fine-tuning copies into PointTransformer.
class PointMaeEncoderImpl : public torch::nn::Module {
 public:
  explicit PointMaeEncoderImpl(const Config& cfg);
  // tokens [B, V, D] of the visible groups, their centers [B, V, 3] -> [B, V, D] (normed).
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& centers);
  MiniPointNet encoder{nullptr};
  torch::nn::Sequential pos_embed{nullptr};
  PointBlocks blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PointMaeEncoder);

// Point-MAE's TransformerDecoder: blocks.N with x = block(x + pos), then norm.
class PointMaeDecoderImpl : public torch::nn::Module {
 public:
  PointMaeDecoderImpl(int64_t dim, int64_t depth, int64_t num_heads, double drop_path_rate);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& pos);
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PointMaeDecoder);

struct MaeOutput {
  torch::Tensor loss;          // scalar
  torch::Tensor centers;       // [B, G, 3]
  torch::Tensor neighborhoods; // [B, G, K, 3], relative to the centers
  torch::Tensor mask;          // bool [B, G]
  torch::Tensor predicted;     // [B, M, K, 3] predicted masked groups, relative to their centers
  torch::Tensor masked_index;  // int64 [B, M] group indices of the masked groups (ascending)
};

class PointMaeImpl : public torch::nn::Module {
 public:
  explicit PointMaeImpl(const Config& cfg);
  // points [B, P, 3 or more] (xyz used); `mask` bool [B, G] or undefined (drawn).
  MaeOutput forward(const torch::Tensor& points, torch::Tensor mask = {});

  PointMaeEncoder MAE_encoder{nullptr};
  torch::Tensor mask_token;
  torch::nn::Sequential decoder_pos_embed{nullptr};
  PointMaeDecoder MAE_decoder{nullptr};
  torch::nn::Sequential increase_dim{nullptr};

 private:
  int64_t num_groups_, group_size_;
  double mask_ratio_;
  std::string mask_type_, loss_;
};
TORCH_MODULE(PointMae);

}  // namespace ewa::models
