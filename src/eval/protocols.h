// The evaluation protocols of a classifier (docs/protocols.md), one implementation used by
// `ewa train` (every epoch and after the last), `ewa eval` and `ewa predict`:
//   single  one pass over the first data.num_points of each test cloud's FPS order (images as
//           they are), no augmentation: Point-MAE's validate(); ewa's default report.
//   tta     test-time augmentation: logits averaged over 1 clean and passes - 1 augmented passes of
//           the same points (data.votes; what ewa called voting before the official vote existed).
//   vote    the official vote (Point-MAE / Point-BERT test_vote): `views` views of each cloud, each
//           a random num_points of its first data.fps_points FPS points (one subset per batch) with
//           the training augmentation, logits averaged; the whole vote repeated `repeats` times.
//           Upstream reports the maximum over the repeats; ewa reports it with the mean and the
//           sample standard deviation (ddof 1) of the repeats, so the luck in the maximum shows.
// "best on test", the fourth figure, is a choice among epochs (the loop tracks it), not a way to
// run a model. Every figure carries its protocol's label.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/batch_source.h"
#include "dist/dist.h"
#include "models/classifier.h"
#include "eval/metrics.h"

namespace ewa::eval {

struct EvalProtocol {
  enum class Kind { Single, Tta, Vote };
  Kind kind = Kind::Single;
  int64_t passes = 1;                // tta
  int64_t views = 10, repeats = 1;   // vote
  uint64_t seed = 0;                 // vote: the subsets and augmentations are drawn from this seed

  const char* name() const;          // "single", "tta", "vote"
  std::string label() const;         // e.g. "single pass, no voting"
  // The view (data/batch_source.h) of pass `pass` of this protocol.
  data::View view(int64_t pass) const;
  int64_t passes_per_batch() const;  // single 1, tta passes, vote views
};

// What every epoch of training evaluates with: tta when data.votes > 1, else single.
EvalProtocol epoch_protocol(const Config& cfg);
// `name` ("single", "tta", "vote") with its counts from the config (data.votes; eval.vote_views,
// eval.vote_repeats; train.seed); an unknown name is an error naming `flag`.
EvalProtocol protocol_named(const std::string& name, const Config& cfg, const std::string& flag);

struct ProtocolResult {
  EvalProtocol protocol;
  ClassificationMetrics metrics;        // single / tta; vote: the repeat of the highest accuracy
  std::vector<double> repeat_accuracy;  // vote: overall accuracy of every repeat
  double max = 0, mean = 0, std = 0;    // vote: over the repeats (std with ddof 1; 0 for one repeat)

  std::string text() const;             // "OA 0.9350 mAcc 0.9350" or "vote: OA max 0.9400, mean 0.9331 +- 0.0021 (sd over 10 repeats) mAcc 0.9400 (best repeat)"
  nlohmann::json to_json(bool with_confusion = false) const;
};

// Mean logits of `passes` forward passes of `model` (eval mode and no-grad are the caller's);
// `input_of(p)` gives the input of pass p.
torch::Tensor averaged_logits(models::ClassifierImpl& model, int64_t passes,
                              const std::function<torch::Tensor(int64_t pass)>& input_of);

// Evaluates `model` on `source` with `protocol`; `num_classes` sizes the confusion matrix (the
// model's outputs). With a group of several ranks each rank evaluates every size()-th batch and
// the counts are summed over ranks (the same result on all).
ProtocolResult evaluate_protocol(models::ClassifierImpl& model, data::BatchSource& source, int64_t num_classes,
                                 torch::Device device, const EvalProtocol& protocol, dist::Group* group = nullptr);

}  // namespace ewa::eval
