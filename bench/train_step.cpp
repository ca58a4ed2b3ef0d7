#include "bench/train_step.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>

#include <torch/cuda.h>

#include "common/precision.h"
#include "config/model_kinds.h"
#include "models/dvae.h"
#include "models/point_bert.h"
#include "models/point_mae.h"
#include "models/point_seg.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "train/fused_adamw.h"
#include "train/loop.h"
#include "train/setup.h"

namespace ewa::bench {
namespace F = torch::nn::functional;

namespace {
struct Variant {
  std::string name;
  std::shared_ptr<torch::nn::Module> model;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> loss;  // the task's training loss
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  torch::nn::Module* ewa_model = nullptr;  // whose MoE layers EWA averages (Point-BERT: the online transformer)
  Config cfg;
  std::vector<double> ms;
};

// The training loop's update (train::optimization_step), then EWA at the configured share rate.
void one_step(Variant& v, const torch::Tensor& x, const torch::Tensor& y) {
  train::optimization_step(
      v.cfg, x.device(), [&] { return train::StepOutput{v.loss(x, y), {}, x.size(0)}; }, *v.optimizer, v.params);
  if (v.cfg.moe.kind != MlpKind::Dense && v.cfg.ewa.enabled) moe::ewa_average(*v.ewa_model, v.cfg.ewa.share_rate);
  if (x.is_cuda()) torch::cuda::synchronize();  // the step's kernels finish inside its timing
}
}  // namespace

std::vector<TrainStepRow> bench_train_step(const Config& base, const TrainStepOptions& o) {
  const torch::Device device = train::select_device(base.train.device);
  std::vector<Variant> variants;
  const ModelKind& model_kind_of_base = model_kind(base);
  const bool dvae = model_kind_of_base.task == ModelTask::PretrainDvae;
  const bool bert = model_kind_of_base.task == ModelTask::PretrainBert;
  const bool pretraining = model_kind_of_base.is_pretraining(), segmentation = model_kind_of_base.is_segmenter();
  std::vector<std::tuple<std::string, MlpKind, bool>> kinds = {{"dense", MlpKind::Dense, false}};
  if (model_kind_of_base.transformer) kinds.emplace_back("rup+ewa", MlpKind::Rup, true);  // the dVAE has none
  // pretraining and segmentation have no routed encoder
  if (!pretraining && !segmentation) kinds.emplace_back("routed", MlpKind::Routed, false);
  if (!o.variants.empty()) {
    std::vector<std::tuple<std::string, MlpKind, bool>> chosen;
    for (const auto& k : kinds)
      if (std::find(o.variants.begin(), o.variants.end(), std::get<0>(k)) != o.variants.end()) chosen.push_back(k);
    kinds = chosen;
  }
  for (auto [name, kind, ewa_on] : kinds) {
    Variant v;
    v.name = name;
    v.cfg = base.with({{"moe.kind", mlp_kind_name(kind)}, {"ewa.enabled", ewa_on}});
    torch::manual_seed(0);
    if (segmentation) {  // the training loss of tasks/segmentation.cpp: every point's part, random categories
      auto seg = std::make_shared<models::PointSegImpl>(v.cfg);
      const int64_t categories = v.cfg.model.num_categories;
      v.loss = [seg, categories](const torch::Tensor& x, const torch::Tensor& y) {
        auto category = y.select(1, 0) % categories;
        auto logits = seg->forward(x, category);
        return F::cross_entropy(logits.reshape({-1, logits.size(2)}), y.reshape(-1));
      };
      v.model = seg;
    } else if (dvae) {  // Point-BERT's stage 1 at the schedules' start (temperature 1, KL weight 0)
      auto model = std::make_shared<models::DiscreteVaeImpl>(models::dvae_options(v.cfg));
      v.loss = [model](const torch::Tensor& x, const torch::Tensor&) { return model->forward(x, 1.0, false).recon; };
      v.model = model;
    } else if (bert) {  // Point-BERT's stage 2 on a random tokenizer: the training forward, then the enqueue
      auto model = std::make_shared<models::PointBertImpl>(v.cfg, models::dvae_options(v.cfg));
      v.loss = [model](const torch::Tensor& x, const torch::Tensor&) {
        auto out = model->forward(x);
        model->enqueue(out.keys.to(torch::kFloat));
        return out.loss;
      };
      v.model = model;
      v.ewa_model = model->transformer_q.ptr().get();
    } else if (pretraining) {
      auto mae = std::make_shared<models::PointMaeImpl>(v.cfg);
      v.loss = [mae](const torch::Tensor& x, const torch::Tensor&) { return mae->forward(x).loss; };
      v.model = mae;
    } else {
      auto clf = models::build_model(v.cfg);
      const double w = v.cfg.moe.aux_loss_weight;
      v.loss = [clf, w](const torch::Tensor& x, const torch::Tensor& y) {
        auto loss = F::cross_entropy(clf->forward(x), y);
        if (auto aux = clf->aux_loss(); aux.defined()) loss = loss + w * aux;
        return loss;
      };
      v.model = clf;
    }
    v.model->to(device);
    v.model->train();
    if (!v.ewa_model) v.ewa_model = v.model.get();
    for (const auto& p : v.model->parameters())  // the trained ones (Point-BERT's key transformer and tokenizer are frozen)
      if (p.requires_grad()) v.params.push_back(p);
    v.optimizer = std::make_unique<torch::optim::AdamW>(v.params, torch::optim::AdamWOptions(1e-4));
    variants.push_back(std::move(v));
  }
  const auto& m = base.model;
  auto x = pretraining ? torch::randn({o.batch_size, base.data.num_points, 3}) : models::random_input(base, o.batch_size);
  auto y = segmentation ? torch::randint(0, m.num_classes, {o.batch_size, base.data.num_points}, torch::kLong)
                       : torch::randint(0, m.num_classes, {o.batch_size}, torch::kLong);
  x = x.to(device);
  y = y.to(device);
  for (auto& v : variants)
    for (int64_t i = 0; i < o.warmup; ++i) one_step(v, x, y);
  for (int64_t r = 0; r < o.rounds; ++r) {
    for (auto& v : variants) {
      for (int64_t i = 0; i < o.steps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        one_step(v, x, y);
        v.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    }
  }
  std::vector<TrainStepRow> rows;
  for (auto& v : variants) {
    TrainStepRow row;
    row.variant = v.name;
    for (const auto& p : v.params) row.params += p.numel();
    std::sort(v.ms.begin(), v.ms.end());
    row.ms_median = v.ms[v.ms.size() / 2];
    row.ms_min = v.ms.front();
    rows.push_back(row);
  }
  for (auto& r : rows) r.ratio_to_dense = r.ms_median / rows.front().ms_median;  // to the first variant run
  return rows;
}

std::string train_step_markdown(const std::vector<TrainStepRow>& rows) {
  std::ostringstream os;
  os << "| variant | training params | median ms/step | min ms/step | vs dense |\n|---|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %lld | %.1f | %.1f | %.3fx |\n", r.variant.c_str(), (long long)r.params,
                  r.ms_median, r.ms_min, r.ratio_to_dense);
    os << line;
  }
  return os.str();
}

double dense_step_ms(const Config& cfg, int64_t batch_size, int64_t repeats) {
  TrainStepOptions step;
  step.batch_size = batch_size;
  step.warmup = 1;
  step.steps = repeats;
  step.rounds = 1;
  step.variants = {"dense"};
  return bench_train_step(cfg, step).front().ms_median;
}

}  // namespace ewa::bench
