#include "eval/protocols.h"

#include <cmath>

#include "common/device_copy.h"
#include "common/error.h"
#include "common/random.h"
#include "train/eval_mode.h"

namespace ewa::eval {
using train::EvalMode;

namespace F = torch::nn::functional;

const char* EvalProtocol::name() const {
  switch (kind) {
    case Kind::Single: return "single";
    case Kind::Tta: return "tta";
    case Kind::Vote: return "vote";
  }
  return "?";
}

std::string EvalProtocol::label() const {
  switch (kind) {
    case Kind::Single: return "single pass, no voting";
    case Kind::Tta:
      return "test-time augmentation: logits of 1 clean + " + std::to_string(passes - 1) +
             " augmented passes averaged (not the official vote)";
    case Kind::Vote:
      return "official vote: " + std::to_string(views) +
             " views (a random data.num_points of the first data.fps_points FPS points + augmentation), logits averaged, " +
             std::to_string(repeats) + (repeats == 1 ? " repeat" : " repeats");
  }
  return "?";
}

data::View EvalProtocol::view(int64_t pass) const {
  switch (kind) {
    case Kind::Single: return data::View::Plain;
    case Kind::Tta: return pass == 0 ? data::View::Plain : data::View::Augmented;
    case Kind::Vote: return data::View::VoteView;
  }
  return data::View::Plain;
}

int64_t EvalProtocol::passes_per_batch() const {
  return kind == Kind::Vote ? views : kind == Kind::Tta ? passes : 1;
}

EvalProtocol epoch_protocol(const Config& cfg) {
  EvalProtocol p;
  if (cfg.data.votes > 1) {
    p.kind = EvalProtocol::Kind::Tta;
    p.passes = cfg.data.votes;
  }
  return p;
}

EvalProtocol protocol_named(const std::string& name, const Config& cfg, const std::string& flag) {
  EvalProtocol p;
  if (name == "single") return p;
  if (name == "tta") {
    p.kind = EvalProtocol::Kind::Tta;
    p.passes = cfg.data.votes;
    if (p.passes < 2) fail(flag + " tta: averages 1 clean and data.votes - 1 augmented passes; data.votes is " +
                           std::to_string(p.passes) + " (set it to 2 or more)");
    return p;
  }
  if (name == "vote") {
    p.kind = EvalProtocol::Kind::Vote;
    p.views = cfg.eval.vote_views;
    p.repeats = cfg.eval.vote_repeats;
    p.seed = static_cast<uint64_t>(cfg.train.seed);
    return p;
  }
  fail(flag + ": '" + name + "' is not an evaluation protocol: expected single, tta or vote");
}

std::string ProtocolResult::text() const {
  char b[256];
  if (protocol.kind == EvalProtocol::Kind::Vote) {
    std::snprintf(b, sizeof b, "vote: OA max %.4f, mean %.4f +- %.4f (sd over %zu repeats) mAcc %.4f (best repeat)", max, mean, std,
                  repeat_accuracy.size(), metrics.mean_class_accuracy);
  } else {
    std::snprintf(b, sizeof b, "OA %.4f mAcc %.4f", metrics.overall_accuracy, metrics.mean_class_accuracy);
  }
  return b;
}

nlohmann::json ProtocolResult::to_json(bool with_confusion) const {
  auto j = metrics.to_json(with_confusion);
  j["protocol"] = protocol.name();
  j["label"] = protocol.label();
  if (protocol.kind == EvalProtocol::Kind::Vote) {
    j["views"] = protocol.views;
    j["repeats"] = protocol.repeats;
    j["vote_max"] = max;
    j["vote_mean"] = mean;
    j["vote_std"] = std;
    j["vote_std_convention"] = "sample standard deviation (ddof 1) over the repeats";
    j["repeat_oa"] = repeat_accuracy;
    j["oa_is"] = "the maximum over the repeats (as upstream reports)";
  }
  return j;
}

torch::Tensor averaged_logits(models::ClassifierImpl& model, int64_t passes,
                              const std::function<torch::Tensor(int64_t pass)>& input_of) {
  torch::Tensor sum;
  for (int64_t p = 0; p < passes; ++p) {
    auto out = model.forward(input_of(p));
    sum = sum.defined() ? sum + out : out;
  }
  return sum / double(passes);
}

namespace {

// One pass of the protocol over the source: the confusion matrix and the summed loss.
ClassificationMetrics run_once(models::ClassifierImpl& model, data::BatchSource& source, int64_t num_classes,
                               torch::Device device, const EvalProtocol& protocol, dist::Group* group) {
  // Accumulated on the device and read back once, after the last batch.
  auto confusion = torch::zeros({num_classes, num_classes}, torch::TensorOptions(torch::kLong).device(device));
  auto loss_sum = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(device));
  const bool shared = group && group->size() > 1;
  for (int64_t i = 0; i < source.num_batches(); ++i) {
    if (shared && i % group->size() != group->rank()) continue;  // batches are dealt round-robin over ranks
    torch::Tensor y;
    auto logits = averaged_logits(model, protocol.passes_per_batch(), [&](int64_t pass) {
      auto [x, labels] = source.batch(i, protocol.view(pass));
      y = to_device(labels, device);
      return to_device(x, device);
    });
    loss_sum += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum)).to(torch::kDouble);
    accumulate_confusion(confusion, y, logits.argmax(1));
  }
  confusion = confusion.cpu();
  double loss = loss_sum.item<double>();
  if (shared) {
    std::vector<torch::Tensor> t = {confusion, torch::tensor({loss}, torch::kDouble)};
    group->allreduce_sum(t);
    loss = t[1].item<double>();
  }
  auto m = metrics_from_confusion(confusion);
  m.loss = source.size() > 0 ? loss / double(source.size()) : 0.0;
  return m;
}

}  // namespace

ProtocolResult evaluate_protocol(models::ClassifierImpl& model, data::BatchSource& source, int64_t num_classes,
                                 torch::Device device, const EvalProtocol& protocol, dist::Group* group) {
  torch::NoGradGuard guard;
  EvalMode eval_mode(model);
  ProtocolResult r;
  r.protocol = protocol;
  if (protocol.kind != EvalProtocol::Kind::Vote) {
    r.metrics = run_once(model, source, num_classes, device, protocol, group);
  } else {
    // Seeded, so a vote gives the same figures whenever it runs (every rank its own stream).
    const uint64_t seed = protocol.seed * 1000003ULL + 17 + (group ? uint64_t(group->rank()) : 0);
    with_cpu_seed(seed, [&] {
      for (int64_t k = 0; k < protocol.repeats; ++k) {
        auto m = run_once(model, source, num_classes, device, protocol, group);
        r.repeat_accuracy.push_back(m.overall_accuracy);
        if (k == 0 || m.overall_accuracy > r.max) {
          r.max = m.overall_accuracy;
          r.metrics = m;
        }
      }
      return 0;
    });
    double sum = 0;
    for (double a : r.repeat_accuracy) sum += a;
    r.mean = sum / double(r.repeat_accuracy.size());
    double sq = 0;
    for (double a : r.repeat_accuracy) sq += (a - r.mean) * (a - r.mean);
    r.std = r.repeat_accuracy.size() > 1 ? std::sqrt(sq / double(r.repeat_accuracy.size() - 1)) : 0.0;
  }
  return r;
}

}  // namespace ewa::eval
