// Few-shot classification on ModelNet40 (docs/protocols.md; PROTOCOLS.md 3): one training run per
// fold of the released ModelNetFewshot sets (<root>/<way>way_<shot>shot/<fold>.pkl), each
// evaluated every epoch on the fold's 20 test clouds per class, and the mean and spread over the
// folds of the final-epoch and of the best-epoch accuracy (the maintainers report the best
// epoch's mean +- std over 10 folds; they do not say which std: ewa gives the sample standard
// deviation, ddof 1, and the population one, ddof 0, beside it).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "train/loop.h"

namespace ewa::tasks {

struct FewShotFold {
  int64_t fold = 0;
  double final_oa = 0, best_oa = 0;
  int64_t best_epoch = 0;
  std::string run_dir;
  bool reused = false;  // read from an earlier run's metrics.json instead of trained
};

struct Spread {
  double mean = 0, sd = 0, sd_population = 0;
};

struct FewShotSummary {
  int64_t way = 0, shot = 0;
  std::vector<FewShotFold> folds;
  Spread final_oa, best_oa;  // in [0, 1]
  nlohmann::json to_json() const;
};

// Mean, sample sd (ddof 1; 0 for one value) and population sd (ddof 0) of `values`.
Spread spread_of(const std::vector<double>& values);

// Trains `cfg` (a modelnet_fewshot config) on each of `folds` of the way-shot task as the run
// <name>_<way>w<shot>s_fold<k> under train.runs_dir. A fold whose run directory already holds
// metrics.json is read, not trained again; one holding only last.pt is resumed. Writes
// <runs_dir>/<name>_<way>w<shot>s_summary.json.
FewShotSummary run_fewshot(Config cfg, int64_t way, int64_t shot, const std::vector<int64_t>& folds,
                           const data::TaskLoader& load_data, const train::Reporter& report);

}  // namespace ewa::tasks
