#include "tasks/fewshot.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "tasks/run_task.h"

namespace ewa::tasks {
namespace fs = std::filesystem;

Spread spread_of(const std::vector<double>& v) {
  Spread s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x / double(v.size());
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(sq / double(v.size() - 1)) : 0.0;
  s.sd_population = std::sqrt(sq / double(v.size()));
  return s;
}

nlohmann::json FewShotSummary::to_json() const {
  nlohmann::json folds_json = nlohmann::json::array();
  for (const auto& f : folds)
    folds_json.push_back({{"fold", f.fold}, {"final_oa", f.final_oa}, {"best_on_test_oa", f.best_oa},
                          {"best_on_test_epoch", f.best_epoch}, {"run_dir", f.run_dir}});
  auto spread = [](const Spread& s) {
    return nlohmann::json{{"mean", s.mean}, {"sd", s.sd}, {"sd_population", s.sd_population}};
  };
  return {{"way", way},
          {"shot", shot},
          {"folds", folds_json},
          {"final", spread(final_oa)},
          {"best_on_test", spread(best_oa)},
          {"sd_convention", "sd: sample standard deviation (ddof 1) over the folds; sd_population: ddof 0"},
          {"best_on_test_note", "each fold's best epoch on its own test clouds, as the maintainers report few-shot results"}};
}

namespace {
FewShotFold read_fold(const std::string& dir, int64_t fold) {
  std::ifstream in(dir + "/metrics.json");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(in);
    const auto& p = m.at("protocols");
    FewShotFold f;
    f.fold = fold;
    f.run_dir = dir;
    f.final_oa = p.at("final").at("test").at("oa").get<double>();
    f.best_oa = p.at("best_on_test").at("test").at("oa").get<double>();
    f.best_epoch = p.at("best_on_test").at("epoch").get<int64_t>();
    return f;
  } catch (const nlohmann::json::exception& e) {
    fail(dir + "/metrics.json: not the metrics of a finished run (" + std::string(e.what()) +
         "); remove the run directory to train the fold again");
  }
}
}  // namespace

FewShotSummary run_fewshot(Config cfg, int64_t way, int64_t shot, const std::vector<int64_t>& folds,
                           const data::TaskLoader& load_data, const Reporter& report) {
  if (cfg.data.dataset != "modelnet_fewshot")
    fail("data.dataset: `ewa fewshot` trains the released few-shot folds (modelnet_fewshot), the config names '" +
         cfg.data.dataset + "'");
  if (folds.empty()) fail("--folds: no fold given");
  FewShotSummary summary;
  summary.way = way;
  summary.shot = shot;
  const std::string task = std::to_string(way) + "w" + std::to_string(shot) + "s";
  const std::string base = cfg.name;
  for (const int64_t fold : folds) {
    nlohmann::json j = cfg.json;
    j["name"] = base + "_" + task + "_fold" + std::to_string(fold);
    j["data"]["way"] = way;
    j["data"]["shot"] = shot;
    j["data"]["fold"] = fold;
    const Config fold_cfg = parse_config(j, "fold " + std::to_string(fold));
    const std::string dir = (fs::path(fold_cfg.train.runs_dir) / fold_cfg.name).string();
    FewShotFold f;
    if (fs::exists(dir + "/metrics.json")) {
      f = read_fold(dir, fold);
      f.reused = true;
      report("fold " + std::to_string(fold) + ": finished before, read from " + dir + "/metrics.json");
    } else {
      const std::string last = dir + "/last.pt";
      report("fold " + std::to_string(fold) + ": " + (fs::exists(last) ? "resuming " + last : "training " + dir));
      run_task(fold_cfg, load_data, TrainOptions(fs::exists(last) ? last : ""), report);
      f = read_fold(dir, fold);
    }
    char line[256];
    std::snprintf(line, sizeof line, "fold %lld: final OA %.4f, best on test %.4f (epoch %lld)", (long long)fold, f.final_oa,
                  f.best_oa, (long long)f.best_epoch);
    report(line);
    summary.folds.push_back(f);
  }
  std::vector<double> finals, bests;
  for (const auto& f : summary.folds) {
    finals.push_back(f.final_oa);
    bests.push_back(f.best_oa);
  }
  summary.final_oa = spread_of(finals);
  summary.best_oa = spread_of(bests);
  const std::string path = (fs::path(cfg.train.runs_dir) / (base + "_" + task + "_summary.json")).string();
  write_text_atomically(path, summary.to_json().dump(2) + "\n");
  report("summary: " + path);
  return summary;
}

}  // namespace ewa::tasks
