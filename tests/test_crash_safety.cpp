// Crash-safe training, as a user meets it: `ewa train` killed with kill -9 at any moment (also in
// the middle of writing a checkpoint) or stopped by SIGINT / SIGTERM loses at most the steps since
// its last checkpoint, and --resume then ends with weights bit-identical to a run never stopped;
// a full disk or a vanished run directory ends the run with a one-line error, the previous
// checkpoint intact.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"
#include "train/checkpoint.h"

namespace {
using ewa::testing::run_command;
using ewa::testing::TempDir;

const std::string kEwa = EWA_BINARY;

// A small ViT with RupMoE + EWA, stochastic depth and random crops (so the random state matters)
// on a 10-class IDX set: 18 steps per epoch, 2 epochs, a checkpoint every 3 steps, a log record
// every step.
struct Job {
  TempDir dir;
  Job() {
    ewa::testing::write_pattern_idx(dir.path(), 640, 100, false);
    ewa::testing::write_file(dir / "cfg.json", R"({"name": "crash",
      "model": {"patch_size": 7, "embed_dim": 64, "depth": 2, "num_heads": 2, "drop_path_rate": 0.1},
      "moe": {"kind": "rup", "blocks": "all", "num_experts": 2},
      "data": {"root": ")" + dir.path() + R"(", "batch_size": 32, "val_fraction": 0.1},
      "optim": {"warmup_epochs": 0.5},
      "train": {"epochs": 2, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 1, "checkpoint_every": 3}})");
  }
  std::string train(const std::string& name, const std::string& extra = "") const {
    return kEwa + " train --config " + (dir / "cfg.json") + " --name " + name + " " + extra;
  }
  std::string run_dir(const std::string& name) const { return dir / ("runs/" + name); }
  std::string last(const std::string& name) const { return run_dir(name) + "/last.pt"; }
  // Starts `command` in the background, waits until its log holds at least `steps` step records,
  // then runs `action` (with $pid set) and prints the command's exit status as "exit=N".
  std::string run_until(const std::string& command, const std::string& name, int steps, const std::string& action) const {
    const std::string log = run_dir(name) + "/log.jsonl";
    return "(" + command + " & pid=$!; i=0; while [ $(cat " + log + " 2>/dev/null | grep -c '\"type\":\"step\"') -lt " +
           std::to_string(steps) + " ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; " + action +
           "; wait $pid; echo exit=$?)";
  }
};

void expect_same_weights(const std::string& a_path, const std::string& b_path) {
  const auto a = ewa::train::read_checkpoint(a_path), b = ewa::train::read_checkpoint(b_path);
  EXPECT_EQ(a.step, b.step);
  ASSERT_EQ(a.model.size(), b.model.size());
  for (const auto& item : a.model) {
    const torch::Tensor* other = b.model.find(item.key());
    ASSERT_NE(other, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), *other)) << item.key() << " differs";
  }
}

TEST(CrashSafety, KillNineAtAnyMomentThenResumeIsBitIdentical) {
  Job job;
  ASSERT_EQ(run_command(job.train("whole")).exit_code, 0);
  // Killed after 5 steps of epoch 1 (checkpoint at step 3) and after 4 steps of epoch 2.
  for (const auto& [name, steps] : std::vector<std::pair<std::string, int>>{{"early", 5}, {"late", 22}}) {
    SCOPED_TRACE(name);
    auto r = run_command(job.run_until(job.train(name), name, steps, "kill -9 $pid"));
    ASSERT_NE(r.output.find("exit=137"), std::string::npos) << r.output;
    const auto ckpt = ewa::train::read_checkpoint(job.last(name));
    EXPECT_GE(ckpt.step, 3);
    EXPECT_LT(ckpt.step, 36);
    r = run_command(job.train(name, "--resume " + job.last(name)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
    expect_same_weights(job.last("whole"), job.last(name));
  }
}

TEST(CrashSafety, KilledWhileWritingACheckpointKeepsThePreviousOne) {
  Job job;
  ASSERT_EQ(run_command(job.train("whole")).exit_code, 0);
  // The third checkpoint (step 9) is cut off halfway by SIGKILL: last.pt is still step 6's.
  auto r = run_command("EWA_TEST_KILL_DURING_CHECKPOINT=3 " + job.train("cut"));
  EXPECT_EQ(r.exit_code, 137) << r.output;
  const auto ckpt = ewa::train::read_checkpoint(job.last("cut"));
  EXPECT_EQ(ckpt.step, 6);
  EXPECT_EQ(ckpt.progress.value("position", -1), 6);
  bool half_written = false;  // the killed writer's temporary file
  for (const auto& f : std::filesystem::directory_iterator(job.run_dir("cut")))
    half_written = half_written || f.path().filename().string().rfind("last.pt.tmp.", 0) == 0;
  EXPECT_TRUE(half_written);
  r = run_command(job.train("cut", "--resume " + job.last("cut")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_weights(job.last("whole"), job.last("cut"));
  for (const auto& f : std::filesystem::directory_iterator(job.run_dir("cut")))  // removed by the resumed run
    EXPECT_EQ(f.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << f.path();
}

TEST(CrashSafety, SigtermAndSigintCheckpointAndExitWithTheSignalsCode) {
  Job job;
  ASSERT_EQ(run_command(job.train("whole")).exit_code, 0);
  for (const auto& [sig, code] : std::vector<std::pair<std::string, int>>{{"TERM", 143}, {"INT", 130}}) {
    SCOPED_TRACE(sig);
    const std::string name = "stop_" + sig;
    auto r = run_command(job.run_until(job.train(name), name, 5, "kill -" + sig + " $pid"));
    EXPECT_NE(r.output.find("exit=" + std::to_string(code)), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("ewa: stopped by SIG" + sig + " after step "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("run the same command with --resume " + job.last(name)), std::string::npos) << r.output;
    // The checkpoint is of the step the run stopped after, not an older one.
    const auto ckpt = ewa::train::read_checkpoint(job.last(name));
    EXPECT_GE(ckpt.step, 5);
    EXPECT_NE(r.output.find("after step " + std::to_string(ckpt.step) + " "), std::string::npos) << r.output;
    r = run_command(job.train(name, "--resume " + job.last(name)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_same_weights(job.last("whole"), job.last(name));
  }
}

TEST(CrashSafety, FullDiskEndsWithAnErrorAndThePreviousCheckpointIntact) {
  Job job;
  ASSERT_EQ(run_command(job.train("disk", "--set train.epochs=1")).exit_code, 0);
  const auto size = std::filesystem::file_size(job.last("disk"));
  // A file-size limit of a quarter of the checkpoint (ulimit -f counts 512- or 1024-byte blocks):
  // the log still grows, the next checkpoint cannot be written.
  const std::string limit = std::to_string(size / 4 / 1024);
  auto r = run_command("ulimit -f " + limit + " && " + job.train("disk", "--resume " + job.last("disk")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("ewa: error: cannot write " + job.last("disk") + ":"), r.output.find("ewa: error:")) << r.output;
  EXPECT_NE(r.output.find("ewa: error: cannot write " + job.last("disk") + ":"), std::string::npos) << r.output;
  const auto ckpt = ewa::train::read_checkpoint(job.last("disk"));
  EXPECT_EQ(ckpt.step, 18);  // epoch 1's
  for (const auto& f : std::filesystem::directory_iterator(job.run_dir("disk")))
    EXPECT_EQ(f.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << f.path();
}

TEST(CrashSafety, VanishedRunDirectoryIsAnError) {
  Job job;
  // Renamed away in one step (rm -rf alone races with the files the run keeps creating), then removed.
  const std::string gone = job.run_dir("gone");
  auto r = run_command(job.run_until(job.train("gone"), "gone", 4, "mv " + gone + " " + gone + ".moved && rm -rf " + gone + ".moved"));
  EXPECT_NE(r.output.find("exit=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ewa: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(gone + "/"), std::string::npos) << r.output;
}

}  // namespace
