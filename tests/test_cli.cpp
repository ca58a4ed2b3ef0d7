// The ewa program as a user runs it: bad input gives one line on stderr and a non-zero exit;
// train -> convert -> eval works end to end.
#include <gtest/gtest.h>

#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {
using ewa::testing::TempDir;
using ewa::testing::run_command;
namespace fs = std::filesystem;

const std::string kEwa = EWA_BINARY;

void write_config(const std::string& path, const std::string& data_root, const std::string& runs,
                  const std::string& extra = "") {
  ewa::testing::write_file(path, R"({"name": "cli", "model": {"patch_size": 7, "embed_dim": 16, "depth": 2, "num_heads": 2},
    "moe": {"kind": "rup", "blocks": "all", "num_experts": 2},
    "data": {"root": ")" + data_root + R"(", "batch_size": 50},
    "train": {"epochs": 1, "runs_dir": ")" + runs + R"(", "log_every": 2})" + extra + "}");
}

// One "ewa: error: ..." line and exit code 1.
void expect_one_line_error(const ewa::testing::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("ewa: error: ", 0), 0u) << r.output;
  EXPECT_EQ(ewa::testing::count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
}

TEST(Cli, HelpListsOptionsWithDefaults) {
  auto r = run_command(kEwa + " bench train-step --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--steps"), std::string::npos);
  EXPECT_NE(r.output.find("20"), std::string::npos) << r.output;  // the default is shown
  EXPECT_EQ(run_command(kEwa + " train --help").exit_code, 0);
  // --version: the version, then what this build was built with (the optional libraries).
  const auto on = [](bool b) { return std::string(b ? "on" : "off"); };
  const auto version = run_command(kEwa + " --version").output;
  EXPECT_EQ(version.rfind("ewa 0.1.0\nbuilt with: CUDA kernels ", 0), 0u) << version;
  EXPECT_NE(version.find(", HDF5 " + on(ewa::datasets::built_with_hdf5()) + ", PCL " + on(ewa::io::built_with_pcl()) +
                         ", Open3D " + on(ewa::io::built_with_open3d()) + ", "),
            std::string::npos)
      << version;
}

TEST(Cli, FlagErrorsAreOneLineWithExitCodeOne) {
  // Flag errors read like every other error, not the parser library's text and exit codes.
  expect_one_line_error(run_command(kEwa + " train --no-such-flag"), "--no-such-flag");
  expect_one_line_error(run_command(kEwa), "A subcommand is required");
  expect_one_line_error(run_command(kEwa + " frobnicate"), "unknown command 'frobnicate' (commands: train, ");
  expect_one_line_error(run_command(kEwa + " bench ops --k 0"), "--k: expected an integer >= 1, got '0'");
  expect_one_line_error(run_command(kEwa + " bench ops --repeats many"), "--repeats");
  expect_one_line_error(run_command(kEwa + " train --config"), "--config");
  expect_one_line_error(run_command(kEwa + " --threads x train"), "--threads");
}

TEST(Cli, SimdLevelFromTheEnvironment) {
  // EWA_SIMD lowers the kernels' instruction set (the bench header says which ran); a value that
  // is not a level is refused before anything runs.
  auto r = run_command("EWA_SIMD=baseline " + kEwa + " bench ops --sizes 64 --repeats 1 --k 4");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SIMD baseline (of "), std::string::npos) << r.output;
  // Every build compares our kernels with plain LibTorch formulations of the same ops, which must
  // pick the same FPS samples and find the same neighbour distances.
  EXPECT_NE(r.output.find("| fps | 64 | 8 | LibTorch ops | cpu, "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("8/8 indices as ewa on cpu"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("distances within 0.0e+00 of ewa on cpu"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("neighbourhoods within 0.0e+00 of ewa on cpu"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Open3D |") != std::string::npos, ewa::io::built_with_open3d()) << r.output;
  expect_one_line_error(run_command("EWA_SIMD=sse9 " + kEwa + " bench ops --sizes 64 --repeats 1"),
                        "EWA_SIMD='sse9': expected baseline, avx2 or avx512");
}

TEST(Cli, BadConfigsStopWithTheKeyNamed) {
  TempDir dir;
  ewa::testing::write_file(dir / "unknown.json", R"({"ewa": {"share": 0.3}})");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "unknown.json")), "unknown key 'ewa.share'");
  ewa::testing::write_file(dir / "type.json", R"({"train": {"epochs": "ten"}})");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "type.json")), "'train.epochs': expected an integer");
  expect_one_line_error(run_command(kEwa + " train --set ewa.share_rate=0.9"), "'ewa.share_rate'");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "absent.json")), "cannot open");
}

TEST(Cli, MissingDataAndUnwritableRunDirectory) {
  TempDir dir;
  write_config(dir / "c.json", dir / "no-data", dir / "runs");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "c.json")), "does not exist");
  ewa::testing::write_pattern_idx(dir / "", 100, 20, true);
  ewa::testing::write_file(dir / "blocker", "x");
  write_config(dir / "c2.json", dir.path(), dir / "blocker");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "c2.json")), "run directory");
  // A truncated image file.
  TempDir broken;
  ewa::testing::write_pattern_idx(broken.path(), 100, 20, false);
  std::filesystem::resize_file(broken / "train-images-idx3-ubyte", 5000);
  write_config(dir / "c3.json", broken.path(), dir / "runs");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "c3.json")), "truncated");
}

// One spelling per idea: every command that writes a named output takes -o/--output, and the
// commands that read a split validate --split alike.
TEST(Cli, OneSpellingOfOutputAndSplitAcrossCommands) {
  for (const std::string cmd : {"convert", "export", "data synth", "data synth-files", "pretrain", "gallery"}) {
    auto r = run_command(kEwa + " " + cmd + " --help");
    ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("-o,--output"), std::string::npos) << cmd << ": " << r.output;
  }
  for (const std::string cmd : {"eval", "gallery"}) {
    auto r = run_command(kEwa + " " + cmd + " --help");
    EXPECT_NE(r.output.find("--split TEXT:{train,val,test}"), std::string::npos) << cmd << ": " << r.output;
  }
  for (const std::string cmd : {"eval", "predict"}) {
    auto r = run_command(kEwa + " " + cmd + " --help");
    for (const char* flag : {"--protocol", "--votes", "--views"})
      EXPECT_NE(r.output.find(flag), std::string::npos) << cmd << " lacks " << flag;
  }
}

TEST(Cli, TrainConvertEvalEndToEnd) {
  TempDir dir;
  ewa::testing::write_pattern_idx(dir.path(), 300, 100, true);
  write_config(dir / "c.json", dir.path(), dir / "runs");
  auto r = run_command(kEwa + " train --config " + (dir / "c.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("final test OA"), std::string::npos) << r.output;
  const std::string last = dir / "runs/cli/last.pt";

  r = run_command(kEwa + " convert " + last + " -o " + (dir / "dense.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("converted 2 MoE layers"), std::string::npos) << r.output;
  auto dense = ewa::train::read_checkpoint(dir / "dense.pt");
  EXPECT_EQ(dense.kind, "dense");
  EXPECT_EQ(dense.config["moe"]["kind"], "dense");
  EXPECT_NE(dense.model.find("blocks.0.mlp.fc1.weight"), nullptr);

  auto moe_eval = run_command(kEwa + " eval " + last);
  auto dense_eval = run_command(kEwa + " eval " + (dir / "dense.pt"));
  ASSERT_EQ(moe_eval.exit_code, 0) << moe_eval.output;
  ASSERT_EQ(dense_eval.exit_code, 0) << dense_eval.output;
  auto oa = [](const std::string& s) { return s.substr(s.find(" OA "), 24); };
  EXPECT_EQ(oa(moe_eval.output), oa(dense_eval.output));

  // eval's protocol flags are predict's: --votes sets data.votes and makes tta the default.
  r = run_command(kEwa + " eval " + last + " --votes 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("logits of 1 clean + 2 augmented passes averaged"), std::string::npos) << r.output;
  // --split train reads every training sample in stored order (none dropped); val needs a validation split.
  r = run_command(kEwa + " eval " + last + " --split train");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" train: OA "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(300 samples"), std::string::npos) << r.output;
  expect_one_line_error(run_command(kEwa + " eval " + last + " --split val"), "--split val: fashion_mnist");
  expect_one_line_error(run_command(kEwa + " eval " + last + " --split training"), "--split");

  // A checkpoint of another architecture.
  ewa::testing::write_file(dir / "wide.json", R"({"model": {"patch_size": 7, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "moe": {"kind": "dense"}, "data": {"root": ")" + dir.path() + R"("}})");
  expect_one_line_error(run_command(kEwa + " eval " + last + " --config " + (dir / "wide.json")),
                        "have another shape than the model's");
  // Resume from a checkpoint of another architecture.
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "wide.json") + " --name other --set train.runs_dir=" +
                                    (dir / "runs") + " --resume " + last),
                        "does not match the model architecture");
  // A second train into the same run directory is refused, the checkpoint untouched.
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "c.json")), "already holds a checkpoint");
  expect_one_line_error(run_command(kEwa + " eval " + (dir / "c.json")), "unsupported weights file extension '.json'");
}

}  // namespace

namespace {
TEST(Cli, PointCloudSynthTrainConvertEvalEndToEnd) {
  TempDir dir;
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 6 --test-per-class 3 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 72 clouds of 256 points"), std::string::npos) << r.output;
  ewa::testing::write_file(dir / "p.json", R"({"name": "pts",
    "model": {"name": "point_transformer", "embed_dim": 16, "depth": 2, "num_heads": 2, "num_groups": 8, "group_size": 8,
              "head_hidden": 16},
    "moe": {"kind": "rup", "blocks": "all", "num_experts": 2},
    "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") + R"(", "num_points": 64, "batch_size": 12,
             "votes": 2},
    "train": {"epochs": 1, "runs_dir": ")" + (dir / "runs") + R"("}})");
  r = run_command(kEwa + " train --config " + (dir / "p.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("test-time augmentation: logits of 1 clean + 1 augmented passes averaged"), std::string::npos)
      << r.output;  // test-time augmentation is labelled
  r = run_command(kEwa + " convert " + (dir / "runs/pts/last.pt") + " -o " + (dir / "dense.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("converted 2 MoE layers"), std::string::npos) << r.output;
  // Single-pass evaluation of the MoE and of the dense model agree exactly.
  auto a = run_command(kEwa + " eval " + (dir / "runs/pts/last.pt") + " --set data.votes=1");
  auto b = run_command(kEwa + " eval " + (dir / "dense.pt") + " --set data.votes=1");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  auto oa = [](const std::string& s) { return s.substr(s.find(" OA "), 24); };
  EXPECT_EQ(oa(a.output), oa(b.output));
  // Bad input: more neighbours than points; a dataset folder without its files.
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "p.json") + " --set model.group_size=65"),
                        "'model.group_size': must not exceed data.num_points (64)");
  fs::create_directories(dir / "empty");
  expect_one_line_error(run_command(kEwa + " train --config " + (dir / "p.json") + " --name other --set data.root=" + (dir / "empty")),
                        ewa::datasets::built_with_hdf5() ? "train_files.txt: cannot open file" : "has no class folders");
}
}  // namespace
