// `ewa study` as a user runs it: runs, resumes, reports (figures read back from the runs),
// refuses a study whose settings changed under existing runs; every run's TensorBoard files
// read back with TensorBoard's own reader.
#include <cmath>
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "viz/plot.h"

namespace {
using ewa::testing::run_command;
using ewa::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kEwa = EWA_BINARY;

json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }

void write_study(const TempDir& dir, const std::string& extra_dense_set = "") {
  ewa::testing::write_file(dir / "c.json", R"({"name": "c", "model": {"patch_size": 7, "embed_dim": 16, "depth": 2, "num_heads": 2},
    "moe": {"kind": "rup", "blocks": "all", "num_experts": 2},
    "data": {"root": ")" + dir.path() + R"(", "batch_size": 50},
    "train": {"epochs": 2, "log_every": 2}})");
  ewa::testing::write_file(dir / "study.json", R"({"name": "st", "config": "c.json", "set": ["optim.lr=0.002"],
    "arms": [{"name": "dense", "set": ["moe.kind=dense)" + extra_dense_set + R"("], "baseline": true}, {"name": "ewa"},
             {"name": "ewa_half", "set": ["ewa.share_rate=0.5"]}],
    "seeds": 3, "runs_dir": ")" + (dir / "runs") + R"("})");
}

TEST(StudyCli, RunsResumesReportsAndRefusesChangedSettings) {
  TempDir dir;
  ewa::testing::write_pattern_idx(dir.path(), 200, 60, true);
  write_study(dir);
  const std::string study = dir / "study.json";

  auto r = run_command(kEwa + " study " + study + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("9 runs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train --config"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs/st/dense")) << "a dry run writes nothing";

  r = run_command(kEwa + " study " + study + " --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Paired differences"), std::string::npos) << r.output;
  const auto report = read_json(dir / "runs/st/study.json");
  ASSERT_EQ(report["arms"].size(), 3u);
  for (const auto& arm : report["arms"]) {
    ASSERT_EQ(arm["figures"].size(), 3u) << arm;
    double sum = 0;
    for (int seed = 0; seed < 3; ++seed) {
      const std::string run = dir / ("runs/st/" + arm["name"].get<std::string>() + "/s" + std::to_string(seed));
      const auto m = read_json(run + "/metrics.json");
      const double oa = 100 * m["protocols"]["final"]["test"]["oa"].get<double>();
      EXPECT_DOUBLE_EQ(arm["figures"][std::to_string(seed)].get<double>(), oa) << run;
      sum += oa;
      const auto cfg = read_json(run + "/config.json");
      EXPECT_EQ(cfg["train"]["seed"], seed);
      EXPECT_EQ(cfg["optim"]["lr"], 0.002);
      EXPECT_EQ(cfg["moe"]["kind"], arm["name"] == "dense" ? "dense" : "rup");
    }
    EXPECT_NEAR(arm["mean"].get<double>(), sum / 3, 1e-9);
  }
  EXPECT_EQ(report["paired"][0]["pairs"], 3);
  // Every other pair too, second minus first: ewa_half - ewa, by hand from the figures.
  ASSERT_EQ(report["paired_other"].size(), 1u);
  double diff = 0;
  for (int seed = 0; seed < 3; ++seed)
    diff += report["arms"][2]["figures"][std::to_string(seed)].get<double>() - report["arms"][1]["figures"][std::to_string(seed)].get<double>();
  EXPECT_EQ(report["paired_other"][0]["arm"], "ewa_half");
  EXPECT_EQ(report["paired_other"][0]["against"], "ewa");
  EXPECT_NEAR(report["paired_other"][0]["mean"].get<double>(), diff / 3, 1e-9);
  EXPECT_NE(r.output.find("| ewa_half - ewa | 3 |"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "runs/st/study.md"));
  if (ewa::viz::built_with_cairo()) {  // the paired plot and the curves, as PNG files cairo wrote
    for (const char* png : {"runs/st/plots/study.png", "runs/st/plots/curves.png"}) {
      const auto image = ewa::viz::read_png(dir / png);
      EXPECT_GT(image.width, 400) << png;
      EXPECT_GT(image.height, 200) << png;
    }
  }

  // TensorBoard's reader sees the scalars log.jsonl holds.
  const std::string python = EWA_PYTHON;
  if (!python.empty()) {
    const std::string run = dir / "runs/st/ewa/s0";
    auto tb = run_command(python + " " EWA_SOURCE_DIR "/tests/fixtures/read_tfevents.py " + run + "/tensorboard 2>/dev/null");
    ASSERT_EQ(tb.exit_code, 0) << tb.output << "\n(scripts/install-deps.sh installs tensorboard into the virtual environment)";
    const auto scalars = json::parse(tb.output);
    std::vector<std::pair<int64_t, double>> steps, epochs;
    std::ifstream log(run + "/log.jsonl");
    for (std::string line; std::getline(log, line);) {
      const auto rec = json::parse(line);
      if (rec["type"] == "step") steps.emplace_back(rec["step"], rec["loss"]);
      if (rec["type"] == "epoch") epochs.emplace_back(rec["step"], rec["test"]["oa"]);
    }
    ASSERT_EQ(scalars["train/loss"].size(), steps.size()) << tb.output;
    for (size_t i = 0; i < steps.size(); ++i) {
      EXPECT_EQ(scalars["train/loss"][i][0], steps[i].first);
      EXPECT_FLOAT_EQ(scalars["train/loss"][i][1].get<float>(), float(steps[i].second));
    }
    ASSERT_EQ(scalars["test/oa"].size(), epochs.size()) << tb.output;
    for (size_t i = 0; i < epochs.size(); ++i) EXPECT_FLOAT_EQ(scalars["test/oa"][i][1].get<float>(), float(epochs[i].second));
    for (const char* tag : {"train/lr", "train/share_rate", "train/ms_per_step", "epoch/train_loss", "test/macc"})
      EXPECT_TRUE(scalars.contains(tag)) << tag << ": " << tb.output;
  }

  // Everything finished: nothing runs again; a run that lost its metrics resumes from last.pt.
  const std::string s1 = dir / "runs/st/ewa/s1";
  const auto before = read_json(s1 + "/metrics.json");
  r = run_command(kEwa + " study " + study);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("9 finished, 0 to run"), std::string::npos) << r.output;
  fs::remove(s1 + "/metrics.json");
  r = run_command(kEwa + " study " + study);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming ewa seed 1"), std::string::npos) << r.output;
  EXPECT_DOUBLE_EQ(read_json(s1 + "/metrics.json")["protocols"]["final"]["test"]["oa"].get<double>(),
                   before["protocols"]["final"]["test"]["oa"].get<double>());

  // --report alone gathers what has finished.
  r = run_command(kEwa + " study " + study + " --report");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| ewa |"), std::string::npos) << r.output;

  // The study's settings changed under its runs: refused, naming the run and the key.
  write_study(dir, "\", \"optim.weight_decay=0.5");
  r = run_command(kEwa + " study " + study);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("optim.weight_decay"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("runs/st/dense/s0 was started with other settings"), std::string::npos) << r.output;
  EXPECT_EQ(ewa::testing::count_lines(r.output), 1) << r.output;
}

TEST(StudyCli, BadStudyFilesAreOneLineErrors) {
  TempDir dir;
  auto check = [&](const std::string& body, const std::string& needle) {
    ewa::testing::write_file(dir / "s.json", body);
    auto r = run_command(kEwa + " study " + (dir / "s.json"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(ewa::testing::count_lines(r.output), 1) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  };
  ewa::testing::write_file(dir / "c.json", R"({"model": {"embed_dim": 16}})");
  check("{", "not valid JSON");
  check(R"({"config": "c.json", "seeds": 3})", "field 'arms'");
  check(R"({"config": "c.json", "arms": [{"name": "a"}, {"name": "a"}], "seeds": 3})", "used twice");
  check(R"({"config": "c.json", "arms": [{"name": "a"}, {"name": "b"}], "seeds": 1})", "field 'seeds'");
  check(R"({"config": "c.json", "arms": [{"name": "a"}, {"name": "b"}], "seeds": 3, "metrc": "final"})", "unknown field 'metrc'");
  check(R"({"config": "none.json", "arms": [{"name": "a"}, {"name": "b"}], "seeds": 3})", "none.json is not a file");
  check(R"({"config": "c.json", "arms": [{"name": "a", "set": ["moe.kindd=dense"]}, {"name": "b"}], "seeds": 3})", "arm 'a'");
  check(R"({"config": "c.json", "arms": [{"name": "a/b"}, {"name": "b"}], "seeds": 3})", "names a folder");
}

// The study files docs/results.md was made with (configs/studies/) stay valid as the configs
// and their keys change: every arm's config resolves and every run is listed, none started.
TEST(StudyCli, ShippedStudyFilesResolve) {
  TempDir dir;  // the working directory, so the user's runs/ is not read
  int files = 0;
  for (const auto& entry : fs::directory_iterator(std::string(EWA_SOURCE_DIR) + "/configs/studies")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    const auto study = read_json(entry.path().string());
    const int seeds = study["seeds"].is_number() ? study["seeds"].get<int>() : static_cast<int>(study["seeds"].size());
    const int planned = seeds * static_cast<int>(study["arms"].size());
    auto r = run_command("cd " + dir.path() + " && " + kEwa + " study " + entry.path().string() + " --dry-run");
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.output;
    EXPECT_NE(r.output.find(std::to_string(planned) + " runs"), std::string::npos) << entry.path() << "\n" << r.output;
    int to_run = 0;
    for (size_t at = r.output.find(": to run"); at != std::string::npos; at = r.output.find(": to run", at + 1)) ++to_run;
    EXPECT_EQ(to_run, planned) << r.output;
    EXPECT_FALSE(fs::exists(dir / "runs")) << "a dry run writes nothing";
  }
  EXPECT_GE(files, 5);
}

}  // namespace

namespace {

TEST(StudyCli, SlurmJobArrayRunsOnARealSingleNodeCluster) {
  // A private cluster (munged, slurmctld, slurmd on their own socket and ports) on this machine.
  TempDir dir, cluster;
  const std::string script = EWA_SOURCE_DIR "/tests/slurm/cluster.sh";
  auto up = run_command(script + " start " + cluster.path());
  if (up.exit_code == 77) GTEST_SKIP() << "no Slurm cluster on this machine: " << up.output;
  ASSERT_EQ(up.exit_code, 0) << up.output;
  struct Stop {
    std::string cmd;
    ~Stop() { run_command(cmd); }
  } stop{script + " stop " + cluster.path()};
  const std::string env = "SLURM_CONF=" + cluster.path() + "/slurm.conf PATH=$PATH:/usr/sbin ";

  ewa::testing::write_pattern_idx(dir.path(), 100, 40, true);
  write_study(dir);
  ewa::testing::write_file(dir / "study.json", R"({"name": "sl", "config": "c.json",
    "arms": [{"name": "dense", "set": ["moe.kind=dense"], "baseline": true}, {"name": "ewa"}],
    "seeds": 2, "budget": {"epochs": 1}, "runs_dir": ")" + (dir / "runs") + R"("})");
  auto r = run_command(env + kEwa + " study " + (dir / "study.json") + " --launcher slurm --cpus-per-task 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("4 array tasks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("submitted: job "), std::string::npos) << r.output;
  // Wait for the array to leave the queue (4 tiny runs).
  for (int i = 0; i < 300; ++i) {
    const auto q = run_command(env + "squeue -h -o %i");
    if (q.exit_code == 0 && q.output.find_first_not_of(" \n") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  for (const char* run : {"dense/s0", "dense/s1", "ewa/s0", "ewa/s1"})
    EXPECT_TRUE(fs::exists(dir / ("runs/sl/" + std::string(run) + "/metrics.json")))
        << run << ": " << run_command("cat " + (dir / "runs/sl/slurm/task-*.out") + " " + (dir / "runs/sl/logs/*.log")).output;
  r = run_command(kEwa + " study " + (dir / "study.json") + " --report");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("runs: 4 of 4 finished"), std::string::npos) << r.output;
  // Everything has run: nothing more to submit.
  r = run_command(env + kEwa + " study " + (dir / "study.json") + " --launcher slurm");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("every run has finished"), std::string::npos) << r.output;
}

}  // namespace
