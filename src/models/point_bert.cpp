#include "models/point_bert.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>

#include "common/error.h"
#include "nn/layers.h"

namespace ewa::models {
namespace {

namespace F = torch::nn::functional;

torch::Tensor normalized(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(1)); }

// The lm_head logits [M, T] of the masked patches of x [B, 1 + G, D] (row-major over [B, G], the
// order of upstream's logits[mask]) and their tokens [M].
std::pair<torch::Tensor, torch::Tensor> masked_logits(BertTransformerImpl& t, const torch::Tensor& x, const torch::Tensor& mask,
                                                      const torch::Tensor& tokens) {
  auto patches = x.narrow(1, 1, x.size(1) - 1);
  return {t.lm_head->forward(patches.index({mask})), tokens.index({mask})};
}

}  // namespace

torch::Tensor block_mask(const torch::Tensor& centers, const torch::Tensor& ratio, const torch::Tensor& seed) {
  const int64_t B = centers.size(0), G = centers.size(1);
  auto count = (ratio.to(torch::kDouble) * double(G)).floor().to(torch::kLong).to(centers.device());  // int(r * G)
  auto origin = centers.gather(1, seed.to(centers.device()).view({B, 1, 1}).expand({B, 1, 3}));
  auto order = (centers - origin).norm(2, 2).argsort(/*stable=*/true, /*dim=*/1);  // nearest first
  auto rank = torch::empty_like(order).scatter_(1, order, torch::arange(G, order.options()).expand({B, G}));
  return rank < count.unsqueeze(1);
}

MaskDraw draw_mask(int64_t batch, int64_t num_centres, double lo, double hi) {
  MaskDraw d;
  d.seed = torch::randint(num_centres, {batch}, torch::kLong);
  d.ratio = lo + (hi - lo) * torch::rand({batch}, torch::kDouble);
  return d;
}

torch::Tensor draw_block_mask(const torch::Tensor& centers, double lo, double hi) {
  const auto d = draw_mask(centers.size(0), centers.size(1), lo, hi);
  return block_mask(centers, d.ratio, d.seed);
}

BertTransformerImpl::BertTransformerImpl(const Config& cfg, int64_t encoder_dims, int64_t num_tokens, int64_t cls_dim) {
  const int64_t d = cfg.model.embed_dim;
  encoder = register_module("encoder", MiniPointNet(3, encoder_dims));
  reduce_dim = register_module("reduce_dim", torch::nn::Linear(encoder_dims, d));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, d}));
  cls_pos = register_parameter("cls_pos", torch::zeros({1, 1, d}));
  pos_embed = register_module("pos_embed", position_mlp(d));
  blocks = register_module("blocks", PointBlocks(cfg));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)));
  lm_head = register_module("lm_head", torch::nn::Linear(d, num_tokens));
  cls_head = register_module("cls_head", torch::nn::Sequential(torch::nn::Linear(d, cls_dim), torch::nn::GELU(),
                                                                torch::nn::Linear(cls_dim, cls_dim)));
  // PB:models/Point_BERT.py MaskTransformer.__init__: trunc_normal_(std=.02) of the three tokens,
  // then self.apply(self._init_weights): trunc_normal 0.02 and zero biases for every Linear and
  // Conv1d (the patch encoder's included), LayerNorm 1 / 0.
  for (auto* t : {&cls_token, &mask_token, &cls_pos}) nn::trunc_normal_(*t, 0.02);
  nn::apply_init(*this, nn::InitRule::TruncNormal);
}

torch::Tensor BertTransformerImpl::forward(const torch::Tensor& patches, const torch::Tensor& centers, const torch::Tensor& mask) {
  auto tokens = reduce_dim(encoder(patches));  // [B, G, D]
  const int64_t B = tokens.size(0);
  if (mask.defined()) tokens = torch::where(mask.unsqueeze(-1), mask_token.to(tokens.dtype()), tokens);
  auto x = torch::cat({cls_token.expand({B, 1, -1}).to(tokens.dtype()), tokens}, 1);
  auto pos = torch::cat({cls_pos.expand({B, 1, -1}), pos_embed->forward(centers)}, 1);
  return norm(blocks(x, pos));
}

BertOptions bert_options(const Config& cfg) {
  const auto& p = cfg.pretrain;
  BertOptions o;
  o.mask_min = p.mask_ratio_min;
  o.mask_max = p.mask_ratio_max;
  o.momentum = p.momentum;
  o.temperature = p.contrast_temperature;
  o.queue_size = p.queue_size;
  o.cls_dim = p.cls_dim;
  o.token_loss = p.token_loss;
  o.mix_loss = p.mix_loss;
  o.moco_loss = p.moco_loss;
  o.tokenizer_batch_stats = p.tokenizer_batch_stats;
  return o;
}

PointBertImpl::PointBertImpl(const Config& cfg, const DvaeOptions& dvae_options)
    : o_(bert_options(cfg)), num_groups_(cfg.model.num_groups), group_size_(cfg.model.group_size) {
  transformer_q = register_module("transformer_q", BertTransformer(cfg, dvae_options.encoder_dims, dvae_options.num_tokens, o_.cls_dim));
  transformer_k = register_module("transformer_k", BertTransformer(cfg, dvae_options.encoder_dims, dvae_options.num_tokens, o_.cls_dim));
  dvae = register_module("dvae", DiscreteVae(dvae_options));
  queue = register_buffer("queue", F::normalize(torch::randn({o_.cls_dim, o_.queue_size}), F::NormalizeFuncOptions().dim(0)));
  queue_ptr = register_buffer("queue_ptr", torch::zeros({1}, torch::kLong));
  for (auto& p : transformer_k->parameters()) p.set_requires_grad(false);
  for (auto& p : dvae->parameters()) p.set_requires_grad(false);
  start_from_tokenizer();
}

void PointBertImpl::start_from_tokenizer() {
  torch::NoGradGuard guard;
  // strict: the tokenizer's encoder is the online encoder's, parameters and statistics.
  auto from = dvae->encoder->named_parameters();
  for (auto& p : transformer_q->encoder->named_parameters()) p.value().copy_(from[p.key()]);
  auto from_buffers = dvae->encoder->named_buffers();
  for (auto& b : transformer_q->encoder->named_buffers()) b.value().copy_(from_buffers[b.key()]);
  // The keys start as the online transformer (its parameters, as upstream's copy loop).
  auto q = transformer_q->parameters(), k = transformer_k->parameters();
  for (size_t i = 0; i < q.size(); ++i) k[i].copy_(q[i]);
}

void PointBertImpl::momentum_update() {
  torch::NoGradGuard guard;
  auto q = transformer_q->parameters(), k = transformer_k->parameters();
  at::_foreach_mul_(k, o_.momentum);
  at::_foreach_add_(k, q, 1.0 - o_.momentum);
}

void PointBertImpl::enqueue(const torch::Tensor& keys) {
  torch::NoGradGuard guard;
  const int64_t n = keys.size(0), K = o_.queue_size;
  if (n <= 0 || K % n != 0)
    fail("pretrain.queue_size: " + std::to_string(K) + " is not a multiple of the global batch of " + std::to_string(n) +
         " keys (Point-BERT asserts K % batch == 0): choose data.batch_size to divide it, with data.drop_last=true");
  const int64_t ptr = queue_ptr.item<int64_t>();
  queue.narrow(1, ptr, n).copy_(keys.t().to(queue.dtype()));
  queue_ptr.fill_((ptr + n) % K);
}

BertOutput PointBertImpl::forward(const torch::Tensor& points, BertDraws d) {
  BertOutput out;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), num_groups_, group_size_);
  const auto& patches = groups.neighborhoods;
  const auto& centers = groups.centers;
  const int64_t B = patches.size(0), G = patches.size(1);
  out.centers = centers;
  out.patches = patches;
  {
    torch::NoGradGuard guard;
    out.tokens = dvae->tokens(patches, centers);  // [B, G]
  }
  // The online pass with block masking.
  if (!d.mask.defined()) d.mask = draw_mask(B, G, o_.mask_min, o_.mask_max);
  out.masks.online = block_mask(centers, d.mask.ratio, d.mask.seed);
  auto xq = transformer_q(patches, centers, out.masks.online);
  // Patch mixing with the batch-flipped clouds.
  const auto dev = centers.device();
  if (!d.mix_ratio.defined()) d.mix_ratio = torch::rand({B});
  if (!d.mix_keep.defined()) d.mix_keep = torch::rand({B, G}) < d.mix_ratio.unsqueeze(1);
  auto keep = d.mix_keep.to(dev);
  auto ratio = d.mix_ratio.to(dev).to(torch::kFloat);
  auto mixed_patches = torch::where(keep.view({B, G, 1, 1}), patches, patches.flip(0));
  auto mixed_centers = torch::where(keep.view({B, G, 1}), centers, centers.flip(0));
  auto mixed_tokens = torch::where(keep, out.tokens, out.tokens.flip(0));
  if (!d.mix_mask.defined()) d.mix_mask = draw_mask(B, G, o_.mask_min, o_.mask_max);
  out.masks.mixed = block_mask(mixed_centers, d.mix_mask.ratio, d.mix_mask.seed);  // on the mixed centres, as upstream
  auto xm = transformer_q(mixed_patches, mixed_centers, out.masks.mixed);
  // The keys: momentum update, then the key pass (masked as upstream's transformer_k call).
  {
    torch::NoGradGuard guard;
    momentum_update();
    if (!d.key_mask.defined()) d.key_mask = draw_mask(B, G, o_.mask_min, o_.mask_max);
    out.masks.key = block_mask(centers, d.key_mask.ratio, d.key_mask.seed);
    out.keys = normalized(transformer_k->project(transformer_k(patches, centers, out.masks.key)));
  }
  auto zero = torch::zeros({}, xq.options().dtype(torch::kFloat));
  out.token_loss = out.mix_loss = out.moco_loss = zero;
  {
    auto [lq, tq] = masked_logits(*transformer_q, xq, out.masks.online, out.tokens);
    auto [lm, tm] = masked_logits(*transformer_q, xm, out.masks.mixed, mixed_tokens);
    if (o_.token_loss) out.token_loss = F::cross_entropy(lq, tq) + F::cross_entropy(lm, tm);
    torch::NoGradGuard guard;
    out.token_correct = lq.argmax(1).eq(tq).sum() + lm.argmax(1).eq(tm).sum();
    out.token_count = tq.size(0) + tm.size(0);
  }
  const auto queue_now = queue.clone();  // the queue as it was before this step's keys
  const double inv_t = 1.0 / o_.temperature;
  if (o_.mix_loss) {
    auto qm = normalized(transformer_q->project(xm));
    auto logits = torch::cat({qm.mm(out.keys.t().to(qm.dtype())), qm.mm(queue_now.to(qm.dtype()))}, 1) * inv_t;
    auto target = torch::arange(B, torch::TensorOptions(torch::kLong).device(dev));
    auto none = F::CrossEntropyFuncOptions().reduction(torch::kNone);
    out.mix_loss = (ratio * F::cross_entropy(logits, target, none) + (1 - ratio) * F::cross_entropy(logits, target.flip(0), none)).mean();
  }
  if (o_.moco_loss) {
    auto qn = normalized(transformer_q->project(xq));
    auto logits = torch::cat({(qn * out.keys.to(qn.dtype())).sum(1, true), qn.mm(queue_now.to(qn.dtype()))}, 1) * inv_t;
    out.moco_loss = F::cross_entropy(logits, torch::zeros({B}, torch::TensorOptions(torch::kLong).device(dev)));
  }
  out.loss = out.token_loss + out.mix_loss + out.moco_loss;
  out.draws = d;
  return out;
}

void PointBertImpl::set_training() {
  train();
  if (!o_.tokenizer_batch_stats) dvae->eval();
}

torch::Tensor PointBertImpl::targets(const torch::Tensor& patches, const torch::Tensor& centers) {
  torch::NoGradGuard guard;
  const bool was = dvae->is_training();
  std::vector<torch::Tensor> saved;
  for (const auto& b : dvae->buffers()) saved.push_back(b.clone());
  dvae->train(o_.tokenizer_batch_stats);
  auto tokens = dvae->tokens(patches, centers);
  auto now = dvae->buffers();
  for (size_t i = 0; i < saved.size(); ++i) now[i].copy_(saved[i]);
  dvae->train(was);
  return tokens;
}

std::tuple<int64_t, int64_t, double> PointBertImpl::token_accuracy(const torch::Tensor& points) {
  torch::NoGradGuard guard;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), num_groups_, group_size_);
  auto tokens = targets(groups.neighborhoods, groups.centers);
  auto mask = draw_block_mask(groups.centers, o_.mask_min, o_.mask_max);
  auto [logits, target] = masked_logits(*transformer_q, transformer_q(groups.neighborhoods, groups.centers, mask), mask, tokens);
  auto ce = F::cross_entropy(logits.to(torch::kFloat), target, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  return {logits.argmax(1).eq(target).sum().item<int64_t>(), target.size(0), ce.item<double>()};
}

PointBertImpl::Inspection PointBertImpl::inspect(const torch::Tensor& points) {
  torch::NoGradGuard guard;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), num_groups_, group_size_);
  Inspection r{groups.centers, groups.neighborhoods, groups.index, {}, {}, {}};
  r.tokens = targets(groups.neighborhoods, groups.centers);
  r.mask = draw_block_mask(groups.centers, o_.mask_min, o_.mask_max);
  auto x = transformer_q(groups.neighborhoods, groups.centers, r.mask);
  r.predicted = transformer_q->lm_head->forward(x.narrow(1, 1, x.size(1) - 1)).argmax(2);
  return r;
}

torch::Tensor PointBertImpl::features(const torch::Tensor& points) {
  torch::NoGradGuard guard;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), num_groups_, group_size_);
  return transformer_q->project(transformer_q(groups.neighborhoods, groups.centers));
}

}  // namespace ewa::models
