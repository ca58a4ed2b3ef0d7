// Vision Transformer (Dosovitskiy et al.; timm naming): patch_embed, cls_token, pos_embed,
// blocks.N.{norm1,attn,norm2,mlp}, norm, head. Each block's FFN is a dense Mlp, RupMoE or
// RoutedMoE as the config says.
#pragma once
#include "config/config.h"
#include "models/classifier.h"
#include "nn/layers.h"

namespace ewa::models {

class VitImpl : public ClassifierImpl {
 public:
  // cfg.model must have img_size, in_chans and num_classes resolved (non-zero).
  explicit VitImpl(const Config& cfg);
  // x [B, C, H, W] -> class-token features [B, D] after the final norm.
  torch::Tensor forward_features(const torch::Tensor& x) override;
  torch::Tensor forward_head(const torch::Tensor& features) override;
  bool is_head(const std::string& name) const override { return name.rfind("head.", 0) == 0; }
  std::shared_ptr<torch::nn::Module> head_module() override { return head.ptr(); }
  int64_t num_layers() const override { return depth_ + 1; }
  int64_t layer_of(const std::string& name) const override;

  nn::PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  double drop_rate_;
  int64_t depth_;
};

}  // namespace ewa::models
