// The registry of model kinds (config/model_kinds.h): every registered kind walked through the
// commands a user runs on it (train or pretrain, eval, export, show), each either working or
// refused with the reason its entry gives; and the registry's own invariants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "config/model_kinds.h"
#include "config/schema.h"
#include "test_util.h"
#include "viz/plot.h"
#include "viz/render.h"

namespace {
using ewa::testing::run_command;
using ewa::testing::TempDir;
namespace fs = std::filesystem;

const std::string kEwa = EWA_BINARY;

TEST(ModelKinds, TheRegistryIsTheOneListOfKinds) {
  std::set<std::string> names;
  for (const auto& k : ewa::model_kinds()) {
    EXPECT_TRUE(names.insert(k.name).second) << "registered twice: " << k.name;
    EXPECT_TRUE(k.command == "train" || k.command == "pretrain") << k.name;
    EXPECT_EQ(k.is_pretraining(), k.task != ewa::ModelTask::Classify && k.task != ewa::ModelTask::Segment) << k.name;
    EXPECT_EQ(k.show_views.empty(), !k.no_show.empty()) << k.name << ": a view, or the reason it has none";
    EXPECT_TRUE(k.check) << k.name;
    EXPECT_EQ(&ewa::model_kind(k.name), &k);
  }
  // The schema's model.name choices are the registry's names.
  for (const auto& f : ewa::config_schema())
    if (f.key == "model.name") EXPECT_EQ(std::set<std::string>(f.choices.begin(), f.choices.end()), names);
  EXPECT_NE(ewa::testing::error_of([] { ewa::model_kind("pointnet"); }).find("model.name: unknown model 'pointnet' (one of vit, "),
            std::string::npos);
  // One segmenter and one classifier of point clouds (the dataset checks name them).
  ASSERT_NE(ewa::model_kind_for(ewa::ModelTask::Segment, ewa::ModelInput::Points), nullptr);
  EXPECT_TRUE(ewa::model_kind_for(ewa::ModelTask::Classify, ewa::ModelInput::Points)->is_point_classifier());
}

// Which kind a config is, is asked of the registry: no comparison of model.name with anything
// outside src/config/model_kinds.cpp.
TEST(ModelKinds, NoModelNameComparisonOutsideTheRegistry) {
  const std::regex compare(R"(model\.name\s*[!=]=|[!=]=\s*[A-Za-z_.>-]*model\.name\b)");
  int files = 0;
  for (const char* folder : {"src", "apps", "datasets", "bench"})
    for (const auto& e : fs::recursive_directory_iterator(std::string(EWA_SOURCE_DIR) + "/" + folder)) {
      const auto ext = e.path().extension();
      if ((ext != ".cpp" && ext != ".h") || e.path().filename() == "model_kinds.cpp") continue;
      ++files;
      std::ifstream in(e.path());
      int line_no = 0;
      for (std::string line; std::getline(in, line);) {
        ++line_no;
        EXPECT_FALSE(std::regex_search(line, compare)) << e.path() << ":" << line_no << ": " << line;
      }
    }
  EXPECT_GT(files, 100);
}

// Inside src/ the top floors point one way: train (the loop) -> eval -> tasks -> infer; nothing
// under src/ includes datasets/, bench/ or apps/ (docs/architecture.md).
TEST(Layers, TheTopFloorsIncludeOnlyTheFloorsBelowThem) {
  const std::vector<std::string> floors = {"train", "eval", "tasks", "infer"};
  const std::regex include(R"re(#include "([a-z_]+)/)re");
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(std::string(EWA_SOURCE_DIR) + "/src")) {
    const auto ext = e.path().extension();
    if (ext != ".cpp" && ext != ".h") continue;
    const std::string folder = e.path().parent_path().filename().string();
    const auto own = std::find(floors.begin(), floors.end(), folder);
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (!std::regex_search(line, m, include)) continue;
      const std::string target = m[1];
      ++checked;
      EXPECT_TRUE(target != "datasets" && target != "bench" && target != "apps") << e.path() << ": " << line;
      const auto theirs = std::find(floors.begin(), floors.end(), target);
      if (theirs == floors.end()) continue;  // a lower layer (config, models, io, ...)
      EXPECT_TRUE(own != floors.end() && theirs <= own) << e.path() << " (" << folder << ") includes " << target << ": " << line;
    }
  }
  EXPECT_GT(checked, 200);
}

// A tiny config of each kind (a kind registered without one fails the walk below).
std::map<std::string, std::string> tiny_configs(const std::string& dir) {
  const std::string runs = R"("train": {"epochs": 1, "runs_dir": ")" + dir + R"(/runs", "log_every": 100})";
  const std::string synth = R"("data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + dir +
                            R"(/synth", "num_points": 64, "batch_size": 16, "drop_last": true})";
  const std::string moe = R"("moe": {"kind": "rup", "blocks": "all", "num_experts": 2}, "ewa": {"enabled": true})";
  return {
      {"vit", R"({"name": "vit", "model": {"name": "vit", "patch_size": 7, "embed_dim": 16, "depth": 2, "num_heads": 2}, )" +
                  moe + R"(, "data": {"root": ")" + dir + R"(/images", "batch_size": 50}, )" + runs + "}"},
      {"point_transformer", R"({"name": "point_transformer", "model": {"name": "point_transformer", "embed_dim": 32,
         "depth": 2, "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 32}, )" + moe + ", " + synth + ", " + runs + "}"},
      {"point_mae", R"({"name": "point_mae", "model": {"name": "point_mae", "embed_dim": 32, "depth": 2, "num_heads": 2,
         "num_groups": 8, "group_size": 8}, "pretrain": {"decoder_depth": 1, "decoder_num_heads": 2, "reconstructions": 0}, )" +
                        moe + ", " + synth + ", " + runs + "}"},
      {"point_seg", R"({"name": "point_seg", "model": {"name": "point_seg", "embed_dim": 32, "depth": 3, "num_heads": 2,
         "num_groups": 16, "group_size": 8, "seg_fp_hidden": 32, "seg_fp_dim": 32, "seg_head_hidden": 32}, )" + moe +
                        R"(, "data": {"dataset": "shapenetpart", "root": ")" + dir + R"(/parts", "num_points": 128,
         "batch_size": 8}, )" + runs + "}"},
      {"point_bert_dvae", R"({"name": "point_bert_dvae", "model": {"name": "point_bert_dvae", "num_groups": 8, "group_size": 8,
         "encoder_dims": 32}, "moe": {"kind": "dense"}, "pretrain": {"num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16}, )" +
                              synth + ", " + runs + "}"},
      {"point_bert", R"({"name": "point_bert", "model": {"name": "point_bert", "variant": "point_bert", "embed_dim": 32,
         "depth": 2, "num_heads": 2, "num_groups": 8, "group_size": 8, "encoder_dims": 32}, )" + moe + R"(,
         "pretrain": {"tokenizer": ")" + dir + R"(/runs/point_bert_dvae/last.pt", "num_tokens": 32, "tokens_dims": 16,
         "decoder_dims": 16, "cls_dim": 16, "queue_size": 32}, )" + synth + ", " + runs + "}"},
  };
}

TEST(ModelKinds, EveryKindTrainsEvaluatesExportsAndShows) {
  TempDir dir;
  fs::create_directories(dir / "images");
  ewa::testing::write_pattern_idx(dir / "images", 100, 50, true);
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 4 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kEwa + " data synth-parts -o " + (dir / "parts") +
                  " --train-per-category 2 --val-per-category 1 --test-per-category 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // A point file to show.
  const std::string cloud = dir / "cloud.xyz";
  ewa::testing::write_file(cloud, ewa::testing::cloud_text(torch::rand({300, 3}) * 2 - 1, " "));
  const char* display = std::getenv("DISPLAY");
  const bool render = ewa::viz::built_with_rendering() && ewa::viz::built_with_cairo() &&
                      ((display && *display) || std::system("command -v Xvfb >/dev/null 2>&1") == 0);

  const auto configs = tiny_configs(dir.path());
  // The dVAE first: point_bert reads its checkpoint as its tokenizer.
  std::vector<const ewa::ModelKind*> order;
  for (const auto& k : ewa::model_kinds())
    if (k.task == ewa::ModelTask::PretrainDvae) order.insert(order.begin(), &k);
    else order.push_back(&k);
  for (const ewa::ModelKind* kind : order) {
    SCOPED_TRACE(kind->name);
    ASSERT_TRUE(configs.count(kind->name)) << "no tiny config for the registered kind " << kind->name;
    const std::string config = dir / (kind->name + ".json");
    ewa::testing::write_file(config, configs.at(kind->name));
    // The other subcommand refuses it, naming the right one.
    const std::string other = kind->command == "train" ? "pretrain" : "train";
    r = run_command(kEwa + " " + other + " --config " + config);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("run `ewa " + kind->command + "` with this config"), std::string::npos) << r.output;

    r = run_command(kEwa + " " + kind->command + " --config " + config);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string last = dir / ("runs/" + kind->name + "/last.pt");
    ASSERT_TRUE(fs::exists(last));

    r = run_command(kEwa + " eval " + last);
    if (kind->is_classifier() || kind->is_segmenter()) {
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_NE(r.output.find(kind->is_segmenter() ? "mIoU" : " OA "), std::string::npos) << r.output;
    } else {
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_NE(r.output.find("eval measures classifiers and part segmenters; this is a " + kind->name), std::string::npos)
          << r.output;
    }

    const std::string exported = dir / (kind->name + "_export.pth");
    r = run_command(kEwa + " export " + last + " -o " + exported);
    if (kind->task == ewa::ModelTask::PretrainMae) {
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_NE(r.output.find("fine-tune it into a classifier first"), std::string::npos) << r.output;
    } else {
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_TRUE(fs::exists(exported)) << r.output;
    }

    const std::string png = dir / (kind->name + ".png");
    if (kind->show_views.empty()) {
      r = run_command(kEwa + " show " + last + " " + cloud + " --png " + png);
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_NE(r.output.find(kind->no_show), std::string::npos) << r.output;
    } else if (render) {
      const std::string color = kind->task == ewa::ModelTask::PretrainMae ? " --color mae"
                                : kind->is_segmenter()                    ? " --category Mug"
                                                                          : "";
      r = run_command("env -u DISPLAY " + kEwa + " show " + last + " " + cloud + color + " --png " + png + " --size 96x96");
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_TRUE(fs::exists(png)) << r.output;
    }
  }
  if (!render) std::printf("note: no Open3D rendering (or no Xvfb): the kinds' show views not drawn\n");
}

}  // namespace
