#include "models/registry.h"

#include <algorithm>

#include "common/error.h"
#include "common/random.h"
#include "config/model_kinds.h"
#include "models/point_transformer.h"
#include "models/vit.h"
#include "moe/routed_moe.h"
#include "moe/rup_moe.h"

namespace ewa::models {

std::shared_ptr<nn::FeedForwardImpl> make_feed_forward(const Config& cfg, int64_t block_index, int64_t dim,
                                                       int64_t hidden, double drop) {
  const auto& b = cfg.moe.blocks;
  const bool is_moe = cfg.moe.kind != MlpKind::Dense && std::find(b.begin(), b.end(), block_index) != b.end();
  // Built on the block's own stream, so the rest of the model draws the same initial values
  // whatever this FFN is (the pairing of `ewa study`'s arms).
  const uint64_t seed = derive_seed(static_cast<uint64_t>(cfg.train.seed), Stream::kFfnInit, uint64_t(block_index));
  auto ffn = with_cpu_seed(seed, [&]() -> std::shared_ptr<nn::FeedForwardImpl> {
    if (!is_moe) return std::make_shared<nn::MlpImpl>(nn::MlpOptions(dim, hidden).drop(drop));
    auto options = moe::ExpertsOptions(dim, hidden, cfg.moe.num_experts).drop(drop);
    if (cfg.moe.kind == MlpKind::Rup) return std::make_shared<moe::RupMoEImpl>(options);
    return std::make_shared<moe::RoutedMoEImpl>(options, moe::RoutingOptions()
                                                             .top_k(cfg.moe.top_k)
                                                             .capacity_factor(cfg.moe.capacity_factor)
                                                             .eval_capacity_factor(cfg.moe.eval_capacity_factor));
  });
  ffn->init_seed = seed;
  return ffn;
}

torch::Tensor random_input(const Config& cfg, int64_t batch) {
  const auto& m = cfg.model;
  const bool points = model_kind(cfg).input == ModelInput::Points;
  return points ? torch::randn({batch, cfg.data.num_points, m.in_chans})
                                       : torch::randn({batch, m.in_chans, m.img_size, m.img_size});
}

std::shared_ptr<ClassifierImpl> build_model(const Config& cfg) {
  const ModelKind& kind = model_kind(cfg);
  if (!kind.is_classifier())
    fail("model.name: " + kind.name + " is " + kind.summary + ", not a classifier" +
         (kind.task == ModelTask::PretrainMae || kind.task == ModelTask::PretrainBert
              ? ": `ewa finetune --init <its last.pt> --config <a point_transformer config>` turns it into one"
              : std::string()));
  if (cfg.model.in_chans <= 0 || cfg.model.num_classes <= 0)
    fail("model: in_chans and num_classes must be resolved from the dataset before building");
  if (kind.input == ModelInput::Images) {  // timm's VisionTransformer
    if (cfg.model.img_size <= 0) fail("model.img_size: must be resolved from the dataset before building a vit");
    if (cfg.model.img_size % cfg.model.patch_size != 0)
      fail("model.patch_size: " + std::to_string(cfg.model.patch_size) + " does not divide model.img_size " +
           std::to_string(cfg.model.img_size));
    return std::make_shared<VitImpl>(cfg);
  }
  if (cfg.model.in_chans < 3) fail("model.in_chans: a point_transformer needs xyz (3) or xyz + normals (6) channels");
  return std::make_shared<PointTransformerImpl>(cfg);
}

}  // namespace ewa::models
