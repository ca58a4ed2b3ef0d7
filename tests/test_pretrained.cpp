// Import of official Point-MAE / Point-BERT checkpoints and export back, against a PyTorch
// model laid out like the official code (tests/fixtures/official_point_models.py): same logits
// (to 1e-4), strict loading of our exports, EWA experts starting as the pretrained FFN, and one-line
// errors for bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "config/config.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "models/point_transformer.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "test_util.h"
#include "tasks/classify.h"
#include "infer/load.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
namespace fs = std::filesystem;

const std::string kPython = EWA_PYTHON;
const std::string kScript = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/official_point_models.py";

// The fixture's sizes: D 48, depth 2, 3 heads, 16 groups of 8, 256 points, 5 classes.
ewa::Config small_config(const std::string& variant, const json& extra = json::object()) {
  json j = {{"model", {{"name", "point_transformer"}, {"variant", variant}, {"embed_dim", 48}, {"depth", 2},
                       {"num_heads", 3}, {"num_groups", 16}, {"group_size", 8}, {"qkv_bias", false}, {"head_hidden", 256}}},
            {"moe", {{"kind", "dense"}}},
            {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 256}}}};
  j.merge_patch(extra);
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

class OfficialCheckpoints
    : public ewa::testing::PythonFixtureSuite<OfficialCheckpoints, ::testing::TestWithParam<std::string>> {
 public:
  static std::string script() { return kScript; }
  static std::string prefix() { return "official"; }
  static std::vector<std::string> commands(const std::string& d) {  // one directory per variant
    std::vector<std::string> out;
    for (const char* v : {"point_mae", "point_bert"})
      out.push_back(python() + " " + kScript + " make " + d + "/" + v + " --variant " + v);
    return out;
  }

 protected:
  std::string file(const std::string& name) const { return dir() + "/" + GetParam() + "/" + name; }
  std::string variant_dir() const { return dir() + "/" + GetParam(); }
};

torch::Tensor logits_of(ewa::models::ClassifierImpl& model, const torch::Tensor& points) {
  torch::NoGradGuard guard;
  model.eval();
  return model.forward(points);
}

TEST_P(OfficialCheckpoints, ImportedClassifierGivesTheOfficialLogits) {
  const auto points = ewa::io::read_npy(file("points.npy"));
  const auto expected = ewa::io::read_npy(file("logits.npy"));
  for (const char* name : {"classifier.pth", "classifier_plain.pth"}) {
    const auto weights = ewa::io::read_state_dict(file(name));
    auto cfg = ewa::infer::resolve_for_weights(small_config(GetParam()), weights);
    EXPECT_EQ(cfg.model.num_classes, 5);
    EXPECT_EQ(cfg.model.in_chans, 3);
    auto [model, report] = ewa::infer::load_classifier(cfg, weights, file(name));
    EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.fresh.empty()) << report.table();
    const auto got = logits_of(*model, points);
    torch::NoGradGuard guard;
    EXPECT_LT((model->forward_features(points) - ewa::io::read_npy(file("features.npy"))).abs().max().item<double>(), 1e-4);
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-4) << name << "\n" << got << expected;
  }
}

TEST_P(OfficialCheckpoints, ExportLoadsStrictlyInTheOfficialModelWithOurLogits) {
  const auto weights = ewa::io::read_state_dict(file("classifier.pth"));
  auto cfg = ewa::infer::resolve_for_weights(small_config(GetParam()), weights);
  auto [model, report] = ewa::infer::load_classifier(cfg, weights, file("classifier.pth"));
  const auto points = ewa::io::read_npy(file("points.npy"));
  const auto ours = logits_of(*model, points);
  TempDir tmp;
  const std::string out = tmp / "exported.pth";
  ewa::io::write_torch_state_dict(out, ewa::io::to_official_layout(ewa::moe::collapse_to_dense(*model)), 3);
  auto r = ewa::testing::run_command(kPython + " " + kScript + " check " + variant_dir() + " " + out + " --logits " +
                                     (tmp / "check_logits.npy") + " --variant " + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto theirs = ewa::io::read_npy(tmp / "check_logits.npy");
  EXPECT_LT((theirs - ours).abs().max().item<double>(), 1e-4);
  // Our own export reads back as well (top-level 'base_model', epoch kept).
  const auto back = ewa::io::read_state_dict(out);
  EXPECT_EQ(back.tensors.size(), weights.tensors.size());
}

TEST_P(OfficialCheckpoints, FineTuningStartsFromThePretrainedEncoderWithExpertsEqualToItsFfn) {
  const auto weights = ewa::io::read_state_dict(file("pretrain.pth"));
  const auto classifier = ewa::io::read_state_dict(file("classifier.pth"));
  // EWA fine-tuning: RupMoE in block 1, a new 7-class head.
  auto cfg = small_config(GetParam(), {{"moe", {{"kind", "rup"}, {"blocks", json::array({1})}, {"num_experts", 4}}},
                                       {"model", {{"num_classes", 7}, {"in_chans", 3}}},
                                       {"finetune", {{"init", file("pretrain.pth")}}}});
  torch::manual_seed(0);
  auto model = ewa::models::build_model(cfg);
  const auto report = ewa::tasks::init_from_pretrained(*model, cfg);
  EXPECT_EQ(report.expanded.size(), 4u) << report.table();  // w1, b1, w2, b2 of block 1
  EXPECT_TRUE(report.missing.empty()) << report.table();
  EXPECT_FALSE(report.fresh.empty());                        // the head
  for (const auto& k : report.fresh)
    EXPECT_TRUE(k.rfind("cls_head_finetune.", 0) == 0 || k == "cls_token" || k == "cls_pos") << k;
  EXPECT_FALSE(report.unexpected.empty());                   // decoder / momentum encoder
  const auto prefix = std::string(GetParam() == "point_bert" ? "module." : "module.");
  auto src = [&](const std::string& k) { return classifier.tensors[prefix + k]; };
  auto params = model->named_parameters();
  for (int64_t e = 0; e < 4; ++e) {
    EXPECT_TRUE(torch::equal(params["blocks.blocks.1.mlp.w1"][e], src("blocks.blocks.1.mlp.fc1.weight")));
    EXPECT_TRUE(torch::equal(params["blocks.blocks.1.mlp.b2"][e], src("blocks.blocks.1.mlp.fc2.bias")));
  }
  EXPECT_TRUE(torch::equal(params["encoder.first_conv.0.weight"], src("encoder.first_conv.0.weight").squeeze(-1)));
  EXPECT_TRUE(torch::equal(model->named_buffers()["encoder.first_conv.1.running_var"],
                           src("encoder.first_conv.1.running_var")));
  // The backbone computes what the official classifier's backbone computes: same pooled features.
  auto [reference, r2] = ewa::infer::load_classifier(ewa::infer::resolve_for_weights(small_config(GetParam()), classifier),
                                                     classifier, file("classifier.pth"));
  const auto points = ewa::io::read_npy(file("points.npy"));
  torch::NoGradGuard guard;
  if (GetParam() == "point_mae") {  // Point-MAE pretraining has no class token: fine-tuning starts it fresh
    EXPECT_NE(std::find(report.fresh.begin(), report.fresh.end(), "cls_pos"), report.fresh.end());
    params["cls_token"].copy_(reference->named_parameters()["cls_token"]);
    params["cls_pos"].copy_(reference->named_parameters()["cls_pos"]);
  }
  model->eval();
  EXPECT_LT((model->forward_features(points) - reference->forward_features(points)).abs().max().item<double>(), 1e-5);
}

TEST_P(OfficialCheckpoints, BadCheckpointsGiveOneLineErrors) {
  TempDir tmp;
  using ewa::testing::error_of;
  // Truncated.
  std::ifstream in(file("classifier.pth"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ewa::testing::write_file(tmp / "cut.pth", bytes.substr(0, bytes.size() / 2));
  auto msg = error_of([&] { ewa::io::read_state_dict(tmp / "cut.pth"); });
  EXPECT_NE(msg.find(tmp / "cut.pth"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a readable torch.save file"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // Not a weights file at all.
  ewa::testing::write_file(tmp / "notes.pth", "hello");
  EXPECT_NE(error_of([&] { ewa::io::read_state_dict(tmp / "notes.pth"); }).find("not a readable"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::io::read_state_dict(tmp / "missing.pth"); }).find("does not exist"), std::string::npos);
  const auto weights = ewa::io::read_state_dict(file("classifier.pth"));
  // Wrong architecture: one block more than the file has.
  auto deeper = ewa::infer::resolve_for_weights(small_config(GetParam(), {{"model", {{"depth", 3}}}}), weights);
  msg = error_of([&] { ewa::infer::load_classifier(deeper, weights, "f.pth"); });
  EXPECT_NE(msg.find("f.pth: lacks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blocks.blocks.2."), std::string::npos) << msg;
  // Wrong shapes: a wider model.
  auto wider = ewa::infer::resolve_for_weights(small_config(GetParam(), {{"model", {{"embed_dim", 96}}}}), weights);
  msg = error_of([&] { ewa::infer::load_classifier(wider, weights, "f.pth"); });
  EXPECT_NE(msg.find("another shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("file [1, 1, 48], model [1, 1, 96]"), std::string::npos) << msg;
  // A missing key: refused unless allowed.
  auto partial = weights;
  partial.tensors.erase("module.norm.weight");
  auto cfg = ewa::infer::resolve_for_weights(small_config(GetParam()), weights);
  msg = error_of([&] { ewa::infer::load_classifier(cfg, partial, "p.pth"); });
  EXPECT_NE(msg.find("lacks 1 tensors the model needs (norm.weight)"), std::string::npos) << msg;
  auto model = ewa::models::build_model(cfg);
  ewa::io::LoadOptions allow;
  allow.allow_missing = true;
  EXPECT_EQ(ewa::io::load_pretrained(*model, partial, allow, "p.pth").missing, std::vector<std::string>{"norm.weight"});
}

TEST_P(OfficialCheckpoints, CommandLineEvaluatesAndExportsAnOfficialFile) {
  // `ewa convert` imports the official file into an ewa checkpoint with --config; `ewa export`
  // writes it back; both need no Python.
  TempDir tmp;
  json cfg = {{"name", "imp"},
              {"model", {{"name", "point_transformer"}, {"variant", GetParam()}, {"embed_dim", 48}, {"depth", 2},
                         {"num_heads", 3}, {"num_groups", 16}, {"group_size", 8}, {"qkv_bias", false}}},
              {"moe", {{"kind", "dense"}}},
              {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 256}}}};
  ewa::testing::write_file(tmp / "c.json", cfg.dump());
  const std::string ewa_bin = EWA_BINARY;
  auto r = ewa::testing::run_command(ewa_bin + " convert " + file("classifier.pth") + " --config " + (tmp / "c.json") +
                                     " -o " + (tmp / "imported.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loaded"), std::string::npos) << r.output;
  r = ewa::testing::run_command(ewa_bin + " export " + (tmp / "imported.pt") + " -o " + (tmp / "back.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto back = ewa::io::read_safetensors(tmp / "back.safetensors");
  const auto original = ewa::io::read_state_dict(file("classifier.pth"));
  ASSERT_EQ(back.size(), original.tensors.size());
  for (const auto& item : back)
    EXPECT_TRUE(torch::equal(item.value(), original.tensors["module." + item.key()])) << item.key();
  // `ewa eval` of the released-style file on a dataset, in one command (needs HDF5 for the data).
  if (ewa::datasets::built_with_hdf5()) {
    fs::create_directories(tmp / "data");
    auto labels = torch::arange(10, torch::kLong) % 5;
    ewa::datasets::write_h5_clouds(tmp / "data/ply_data_train0.h5", torch::randn({10, 300, 3}), labels);
    ewa::datasets::write_h5_clouds(tmp / "data/ply_data_test0.h5", torch::randn({10, 300, 3}), labels);
    ewa::testing::write_file(tmp / "data/train_files.txt", "data/ply_data_train0.h5\n");
    ewa::testing::write_file(tmp / "data/test_files.txt", "data/ply_data_test0.h5\n");
    r = ewa::testing::run_command(ewa_bin + " eval " + file("classifier.pth") + " --config " + (tmp / "c.json") +
                                  " --set data.root=" + (tmp / "data") + " --set data.cache_dir=" + (tmp / "cache"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("test: OA "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("(10 samples, dense model, single pass, no voting)"), std::string::npos) << r.output;
  }
  // A bad file through the CLI: one line on stderr, exit code 1.
  ewa::testing::write_file(tmp / "bad.pth", "garbage");
  r = ewa::testing::run_command(ewa_bin + " eval " + (tmp / "bad.pth") + " --config " + (tmp / "c.json"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(ewa::testing::count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("bad.pth"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Variants, OfficialCheckpoints, ::testing::Values("point_mae", "point_bert"));

TEST(Safetensors, ReadsAHandWrittenFileAndRoundTrips) {
  TempDir tmp;
  // Header by hand: a F32 [2, 2] and a F16 [3] tensor, offsets into the data block.
  const std::string header =
      R"({"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}})";
  std::string bytes;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += header;
  const float a[4] = {1.5f, -2.f, 3.25f, 0.f};
  bytes.append(reinterpret_cast<const char*>(a), 16);
  const uint16_t h[3] = {0x3c00, 0xc000, 0x3800};  // 1, -2, 0.5 in IEEE half
  bytes.append(reinterpret_cast<const char*>(h), 6);
  ewa::testing::write_file(tmp / "x.safetensors", bytes);
  auto t = ewa::io::read_safetensors(tmp / "x.safetensors");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.keys()[0], "a");  // file order
  EXPECT_TRUE(torch::equal(t["a"], torch::tensor({1.5f, -2.f, 3.25f, 0.f}).view({2, 2})));
  EXPECT_TRUE(torch::equal(t["b"].to(torch::kFloat), torch::tensor({1.f, -2.f, 0.5f})));
  ewa::io::write_safetensors(tmp / "y.safetensors", t);
  auto u = ewa::io::read_safetensors(tmp / "y.safetensors");
  EXPECT_TRUE(torch::equal(u["a"], t["a"]) && torch::equal(u["b"], t["b"]));
  // Corrupt: offsets past the end, a truncated header.
  ewa::testing::write_file(tmp / "z.safetensors", bytes.substr(0, bytes.size() - 3));
  EXPECT_NE(ewa::testing::error_of([&] { ewa::io::read_safetensors(tmp / "z.safetensors"); }).find("tensor 'b'"),
            std::string::npos);
  ewa::testing::write_file(tmp / "w.safetensors", bytes.substr(0, 20));
  EXPECT_NE(ewa::testing::error_of([&] { ewa::io::read_safetensors(tmp / "w.safetensors"); }).find("header length"),
            std::string::npos);
}

}  // namespace
