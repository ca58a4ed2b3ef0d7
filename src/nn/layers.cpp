#include "nn/layers.h"

#include <cmath>
#include <set>

#include "common/random.h"

namespace ewa::nn {
namespace F = torch::nn::functional;

void trunc_normal_(torch::Tensor t, double std, double a, double b) {
  torch::NoGradGuard guard;
  auto cdf = [std](double x) { return 0.5 * (1.0 + std::erf(x / std / std::sqrt(2.0))); };
  // timm's steps in double precision: a float32 uniform_ over [-1, 1) returns exactly -1 with
  // probability 2^-24, and erfinv(-1) = -inf then clamps to a (-2 = 100 sd at std 0.02); in double
  // that takes 2^-53. The law is timm's, N(0, std^2) cut at [a, b].
  auto d = torch::empty(t.sizes(), t.options().dtype(torch::kDouble));
  d.uniform_(2.0 * cdf(a) - 1.0, 2.0 * cdf(b) - 1.0).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
  t.copy_(d);
}

void init_linear_(torch::Tensor weight, torch::Tensor bias, InitRule rule) {
  torch::NoGradGuard guard;
  const double fan_in = static_cast<double>(weight.size(-1)), fan_out = static_cast<double>(weight.size(-2));
  switch (rule) {
    case InitRule::TorchDefault: {
      const double bound = 1.0 / std::sqrt(fan_in);
      weight.uniform_(-bound, bound);
      if (bias.defined()) bias.uniform_(-bound, bound);
      return;
    }
    case InitRule::TruncNormal:
      trunc_normal_(weight, 0.02);
      break;
    case InitRule::Xavier: {
      const double bound = std::sqrt(6.0 / (fan_in + fan_out));
      weight.uniform_(-bound, bound);
      break;
    }
  }
  if (bias.defined()) bias.zero_();
}

void apply_init(torch::nn::Module& module, InitRule rule) {
  torch::NoGradGuard guard;
  auto conv = [rule](torch::Tensor& w, torch::Tensor& b) {  // [out, in, k...] as a Linear of fan_in in * k
    init_linear_(w.view({w.size(0), -1}), b, rule);
  };
  auto norm = [](torch::Tensor& w, torch::Tensor& b) {
    if (w.defined()) w.fill_(1.0);
    if (b.defined()) b.zero_();
  };
  auto init_one = [&](torch::nn::Module* m) {
    if (auto* l = m->as<torch::nn::Linear>()) {
      init_linear_(l->weight, l->bias, rule);
    } else if (auto* c1 = m->as<torch::nn::Conv1d>()) {
      conv(c1->weight, c1->bias);
    } else if (auto* c2 = m->as<torch::nn::Conv2d>()) {
      if (rule == InitRule::TorchDefault) conv(c2->weight, c2->bias);
    } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
      norm(ln->weight, ln->bias);
    } else if (auto* bn = m->as<torch::nn::BatchNorm1d>()) {
      norm(bn->weight, bn->bias);
    } else if (auto* gn = m->as<torch::nn::GroupNorm>()) {
      norm(gn->weight, gn->bias);
    } else if (auto* ff = dynamic_cast<FeedForwardImpl*>(m)) {
      ff->init_stacked_(rule);
    }
  };
  // The module itself, then its descendants (modules(true) needs a module held by a shared_ptr,
  // which a model applying its rule in its own constructor is not yet). An FFN with a stream of
  // its own is initialised whole on it, its descendants with it.
  std::vector<torch::nn::Module*> all = {&module};
  for (const auto& m : module.modules(/*include_self=*/false)) all.push_back(m.get());
  std::set<const torch::nn::Module*> done;
  for (torch::nn::Module* m : all) {
    if (done.count(m)) continue;
    auto* ff = dynamic_cast<FeedForwardImpl*>(m);
    if (!ff || !ff->init_seed) {
      init_one(m);
      continue;
    }
    with_cpu_seed(*ff->init_seed, [&] {
      init_one(m);
      for (const auto& child : m->modules(/*include_self=*/false)) {
        init_one(child.get());
        done.insert(child.get());
      }
      return 0;
    });
  }
}

MlpImpl::MlpImpl(const MlpOptions& options) : options_(options) {
  fc1 = register_module("fc1", torch::nn::Linear(options.in_features(), options.hidden_features()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden_features(), options.in_features()));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = F::dropout(torch::gelu(fc1(x)), F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
  return F::dropout(fc2(h), F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
}

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  TORCH_CHECK(options.dim() % options.num_heads() == 0, "Attention: dim must be divisible by num_heads");
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(options.dim(), 3 * options.dim()).bias(options.qkv_bias())));
  proj = register_module("proj", torch::nn::Linear(options.dim(), options.dim()));
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
  // timm 0.4.5's drop_path (models/layers/drop.py:150-157), draw for draw: floor(keep + U[0, 1)),
  // so a seeded generator keeps the same samples as upstream.
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto mask = (torch::rand(shape, x.options()) + keep).floor_();
  return x.div(keep) * mask;
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
