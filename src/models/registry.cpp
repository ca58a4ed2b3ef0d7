#include "models/registry.h"

#include <algorithm>
#include <functional>
#include <map>

#include "common/error.h"
#include "common/random.h"
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
  const bool points = m.name == "point_transformer" || m.name == "point_seg";
  return points ? torch::randn({batch, cfg.data.num_points, m.in_chans})
                                       : torch::randn({batch, m.in_chans, m.img_size, m.img_size});
}

std::shared_ptr<ClassifierImpl> build_model(const Config& cfg) {
  static const std::map<std::string, std::function<std::shared_ptr<ClassifierImpl>(const Config&)>> registry = {
      {"vit",
       [](const Config& c) -> std::shared_ptr<ClassifierImpl> {
         if (c.model.img_size <= 0) fail("model.img_size: must be resolved from the dataset before building a vit");
         if (c.model.img_size % c.model.patch_size != 0)
           fail("model.patch_size: " + std::to_string(c.model.patch_size) + " does not divide model.img_size " +
                std::to_string(c.model.img_size));
         return std::make_shared<VitImpl>(c);
       }},
      {"point_transformer",
       [](const Config& c) -> std::shared_ptr<ClassifierImpl> {
         if (c.model.in_chans < 3) fail("model.in_chans: a point_transformer needs xyz (3) or xyz + normals (6) channels");
         return std::make_shared<PointTransformerImpl>(c);
       }},
  };
  if (cfg.model.name == "point_mae")
    fail("model.name: point_mae is the pretraining model, not a classifier: `ewa pretrain` trains it and "
         "`ewa finetune --init <its last.pt> --config <a point_transformer config>` turns it into one");
  const auto it = registry.find(cfg.model.name);
  if (it == registry.end()) fail("model.name: unknown model '" + cfg.model.name + "'");
  if (cfg.model.in_chans <= 0 || cfg.model.num_classes <= 0)
    fail("model: in_chans and num_classes must be resolved from the dataset before building");
  return it->second(cfg);
}

}  // namespace ewa::models
