#include "models/vit.h"

#include <cstdlib>

#include "models/registry.h"
#include "moe/experts.h"

namespace ewa::models {
namespace F = torch::nn::functional;

torch::Tensor ClassifierImpl::aux_loss() {
  torch::Tensor total;
  for (const auto& m : modules(false)) {
    if (auto ff = std::dynamic_pointer_cast<nn::FeedForwardImpl>(m)) {
      auto l = ff->aux_loss();
      if (l.defined()) total = total.defined() ? total + l : l;
    }
  }
  return total;
}

bool uses_weight_decay(const std::string& name, const torch::Tensor& param) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (param.dim() <= 1) return false;
  if (ends_with("bias") || ends_with(".b1") || ends_with(".b2")) return false;
  if (ends_with("cls_token") || ends_with("mask_token") || ends_with("pos_embed")) return false;
  return true;
}

int64_t block_layer(const std::string& name, const std::string& blocks_prefix) {
  if (name.rfind(blocks_prefix, 0) != 0) return -1;
  const char* p = name.c_str() + blocks_prefix.size();
  char* end = nullptr;
  const long i = std::strtol(p, &end, 10);
  return end != p && *end == '.' ? static_cast<int64_t>(i) + 1 : -1;
}

int64_t VitImpl::layer_of(const std::string& name) const {
  const int64_t b = block_layer(name, "blocks.");
  if (b >= 0) return b;
  if (is_head(name) || name.rfind("norm.", 0) == 0) return depth_ + 1;
  return 0;  // patch_embed, cls_token, pos_embed
}

VitImpl::VitImpl(const Config& cfg) : drop_rate_(cfg.model.drop_rate), depth_(cfg.model.depth) {
  const auto& m = cfg.model;
  patch_embed = register_module("patch_embed", nn::PatchEmbed(nn::PatchEmbedOptions(m.img_size, m.patch_size, m.in_chans, m.embed_dim)));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, m.embed_dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, patch_embed->num_patches() + 1, m.embed_dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const int64_t hidden = static_cast<int64_t>(m.embed_dim * m.mlp_ratio);
  for (int64_t i = 0; i < m.depth; ++i) {
    const double dpr = m.depth > 1 ? m.drop_path_rate * double(i) / double(m.depth - 1) : 0.0;
    auto ffn = make_feed_forward(cfg, i, m.embed_dim, hidden, m.drop_rate);
    blocks->push_back(nn::Block(nn::BlockOptions(m.embed_dim, m.num_heads)
                                    .qkv_bias(m.qkv_bias)
                                    .drop(m.drop_rate)
                                    .attn_drop(m.attn_drop_rate)
                                    .drop_path(dpr),
                                ffn));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({m.embed_dim}).eps(1e-6)));
  head = register_module("head", torch::nn::Linear(m.embed_dim, m.num_classes));
  // timm 0.4.5 VisionTransformer.__init__: trunc_normal_(pos_embed / cls_token, std=.02), then
  // self.apply(self._init_weights) (every Linear trunc_normal 0.02 and bias 0, LayerNorm 1 / 0;
  // the patch embedding's Conv2d keeps PyTorch's initialisation).
  nn::trunc_normal_(pos_embed, 0.02);
  nn::trunc_normal_(cls_token, 0.02);
  nn::apply_init(*this, nn::InitRule::TruncNormal);
}

torch::Tensor VitImpl::forward_features(const torch::Tensor& x) {
  auto t = patch_embed(x);  // [B, T, D]
  t = torch::cat({cls_token.expand({t.size(0), 1, t.size(2)}), t}, 1) + pos_embed;
  t = F::dropout(t, F::DropoutFuncOptions().p(drop_rate_).training(is_training()));
  for (const auto& b : *blocks) t = b->as<nn::Block>()->forward(t);
  return norm(t).select(1, 0);
}

torch::Tensor VitImpl::forward_head(const torch::Tensor& features) {
  return head(F::dropout(features, F::DropoutFuncOptions().p(drop_rate_).training(is_training())));
}

}  // namespace ewa::models
