#include "nn/layers.h"

#include <cmath>

namespace ewa::nn {
namespace F = torch::nn::functional;

void trunc_normal_(torch::Tensor t, double std) {
  torch::NoGradGuard guard;
  const double lo = 0.5 * (1.0 + std::erf(-2.0 / std::sqrt(2.0)));  // CDF at -2 sigma
  const double hi = 1.0 - lo;
  t.uniform_(2.0 * lo - 1.0, 2.0 * hi - 1.0).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(-2.0 * std, 2.0 * std);
}

void init_linear_(torch::nn::Linear& linear) {
  torch::NoGradGuard guard;
  trunc_normal_(linear->weight, 0.02);
  if (linear->bias.defined()) linear->bias.zero_();
}

void torch_default_linear_(torch::Tensor weight, torch::Tensor bias) {
  torch::NoGradGuard guard;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(-1)));
  weight.uniform_(-bound, bound);
  if (bias.defined()) bias.uniform_(-bound, bound);
}

MlpImpl::MlpImpl(const MlpOptions& options) : options_(options) {
  fc1 = register_module("fc1", torch::nn::Linear(options.in_features(), options.hidden_features()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden_features(), options.in_features()));
  init_linear_(fc1);
  init_linear_(fc2);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = F::dropout(torch::gelu(fc1(x)), F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
  return F::dropout(fc2(h), F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
}

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  TORCH_CHECK(options.dim() % options.num_heads() == 0, "Attention: dim must be divisible by num_heads");
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(options.dim(), 3 * options.dim()).bias(options.qkv_bias())));
  proj = register_module("proj", torch::nn::Linear(options.dim(), options.dim()));
  init_linear_(qkv);
  init_linear_(proj);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), H = options_.num_heads();
  // [B, T, 3, H, D/H] -> [3, B, H, T, D/H]
  auto qkv_t = qkv(x).reshape({B, T, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  auto q = qkv_t[0], k = qkv_t[1], v = qkv_t[2];
  const double p = is_training() ? options_.attn_drop() : 0.0;
  auto out = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, p);
  out = out.transpose(1, 2).reshape({B, T, D});
  return F::dropout(proj(out), F::DropoutFuncOptions().p(options_.proj_drop()).training(is_training()));
}

torch::Tensor AttentionImpl::weights(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), H = options_.num_heads();
  auto qkv_t = qkv(x).reshape({B, T, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  return torch::softmax(torch::matmul(qkv_t[0], qkv_t[1].transpose(-2, -1)) / std::sqrt(double(D / H)), -1);
}

torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto mask = torch::empty(shape, x.options()).bernoulli_(keep);
  return x * mask / keep;
}

BlockImpl::BlockImpl(const BlockOptions& options, std::shared_ptr<FeedForwardImpl> mlp_module) : options_(options) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()}).eps(options.norm_eps())));
  attn = register_module("attn", Attention(AttentionOptions(options.dim(), options.num_heads())
                                               .qkv_bias(options.qkv_bias())
                                               .attn_drop(options.attn_drop())
                                               .proj_drop(options.drop())));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.dim()}).eps(options.norm_eps())));
  mlp = register_module<FeedForwardImpl>("mlp", std::move(mlp_module));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto y = x + drop_path(attn(norm1(x)), options_.drop_path(), is_training());
  return y + drop_path(mlp->forward(norm2(y)), options_.drop_path(), is_training());
}

PatchEmbedImpl::PatchEmbedImpl(const PatchEmbedOptions& options) : options_(options) {
  TORCH_CHECK(options.img_size() % options.patch_size() == 0, "PatchEmbed: patch_size must divide img_size");
  proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_chans(), options.embed_dim(),
                                                                              options.patch_size())
                                                       .stride(options.patch_size())));
}

int64_t PatchEmbedImpl::num_patches() const {
  const int64_t g = options_.img_size() / options_.patch_size();
  return g * g;
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj(x).flatten(2).transpose(1, 2);  // [B, D, h, w] -> [B, h*w, D]
}

}  // namespace ewa::nn
