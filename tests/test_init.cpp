// Every model kind and variant starts as its upstream code leaves it. The oracle is
// tests/fixtures/official_init.py: each official module rebuilt from the official files with
// their own init calls (timm 0.4.5's trunc_normal_ itself, PyTorch's defaults), the statistics of
// every fresh tensor written as JSON. Here the same kinds are built by ewa at the same sizes and
// compared tensor by tensor: the same names and sizes, zeros and ones where upstream has them, and
// otherwise the same law (mean, standard deviation, kurtosis and the share of values beyond two
// standard deviations, each within 6 standard errors of the difference of two samples). MoE
// experts are compared expert by expert with the dense FFN they stand for. Then from a
// checkpoint: a classifier (and a segmentation network) fine-tuned from a pretraining file that
// the oracle wrote with the official module names holds the file's tensors, and the rest follows
// the same laws as from scratch.
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "models/dvae.h"
#include "models/point_bert.h"
#include "models/point_mae.h"
#include "models/point_seg.h"
#include "models/registry.h"
#include "tasks/dvae.h"
#include "tasks/segmentation.h"
#include "tasks/classify.h"
#include "test_util.h"

namespace {
using json = nlohmann::json;
using ewa::testing::TempDir;

const std::string kScript = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/official_init.py";

class OfficialInit : public ewa::testing::PythonFixtureSuite<OfficialInit> {
 public:
  static std::string script() { return kScript; }
  static std::string prefix() { return "init"; }
  static std::vector<std::string> commands(const std::string& d) { return {python() + " " + script() + " " + d}; }

 protected:
  static json stats(const std::string& kind) {
    std::ifstream in(file(kind + ".json"));
    return json::parse(in);
  }
};

// The sizes official_init.py builds by default.
constexpr int64_t kDim = 96, kDepth = 2, kHeads = 4, kGroupSize = 16, kClasses = 10, kEncoderDims = 64;

ewa::Config config(const json& model, const json& data, const json& extra = json::object()) {
  json j = {{"model", model}, {"data", data}};
  j.merge_patch(extra);
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

json point_model(const std::string& name, const std::string& variant) {
  return {{"name", name},        {"variant", variant}, {"in_chans", 3},         {"num_classes", kClasses},
          {"embed_dim", kDim},   {"depth", kDepth},    {"num_heads", kHeads},   {"num_groups", 16},
          {"group_size", kGroupSize}, {"qkv_bias", false}, {"head_hidden", 256}, {"drop_path_rate", 0.1}};
}

const json kPointData = {{"dataset", "modelnet_h5"}, {"root", "/nonexistent"}, {"num_points", 256}};

ewa::Config classifier_config(const std::string& variant, const std::string& moe, const std::string& init = "upstream") {
  auto m = point_model("point_transformer", variant);
  m["init"] = init;
  if (variant == "point_bert") m["encoder_dims"] = kEncoderDims;
  return config(m, kPointData, {{"moe", {{"kind", moe}, {"num_experts", 3}, {"blocks", "all"}}}});
}

ewa::Config bert_config(const std::string& moe) {
  auto m = point_model("point_bert", "point_bert");
  m["encoder_dims"] = kEncoderDims;
  return config(m, {{"dataset", "shapenet55"}, {"root", "unused"}, {"num_points", 256}},
                {{"moe", {{"kind", moe}, {"num_experts", 3}, {"blocks", "all"}}},
                 {"pretrain", {{"tokenizer", "unused"}, {"num_tokens", 128}, {"tokens_dims", 64}, {"decoder_dims", 64},
                               {"cls_dim", 128}, {"queue_size", 256}}}});
}

// The oracle's name of one of our tensors; `stacked`: ours stacks the experts along dim 0, each
// expert compared with the dense FFN tensor of that name.
struct OfficialName {
  std::string name;
  bool stacked = false;
};
OfficialName official_name(const std::string& ours) {
  static const std::vector<std::pair<std::string, std::string>> experts = {
      {"mlp.w1", "mlp.fc1.weight"}, {"mlp.b1", "mlp.fc1.bias"}, {"mlp.w2", "mlp.fc2.weight"}, {"mlp.b2", "mlp.fc2.bias"}};
  for (const auto& [suffix, official] : experts)
    if (ours.size() > suffix.size() && ours.compare(ours.size() - suffix.size(), suffix.size(), suffix) == 0)
      return {ours.substr(0, ours.size() - suffix.size()) + official, true};
  return {ours, false};
}

// `t` follows the law of the oracle's tensor `ref`.
void expect_same_law(const torch::Tensor& tensor, const json& ref, const std::string& what) {
  auto t = tensor.detach().to(torch::kDouble).flatten();
  const int64_t n = t.numel();
  ASSERT_EQ(n, ref["numel"].get<int64_t>()) << what << ": size";
  const bool zero = t.eq(0).all().item<bool>(), one = t.eq(1).all().item<bool>();
  EXPECT_EQ(zero, ref["zero"].get<bool>()) << what << ": all zero";
  EXPECT_EQ(one, ref["one"].get<bool>()) << what << ": all one";
  if (ref["zero"].get<bool>() || ref["one"].get<bool>() || n < 2) return;
  const double sd_ref = ref["std"], mean_ref = ref["mean"];
  const double mean = t.mean().item<double>(), sd = t.std().item<double>();
  // Standard errors of a difference of two independent samples' mean and standard deviation
  // (the latter for a kurtosis up to 3: sd * sqrt((k - 1) / 4n) each).
  EXPECT_NEAR(mean, mean_ref, 6.0 * sd_ref * std::sqrt(2.0 / double(n)) + 1e-9) << what << ": mean";
  EXPECT_NEAR(sd, sd_ref, 6.0 * sd_ref * std::sqrt(1.0 / double(n)) + 1e-9) << what << ": standard deviation";
  if (n < 1000) return;
  const auto z = (t - mean) / sd;
  const double kurt = z.pow(4).mean().item<double>(), tail = z.abs().gt(2.0).to(torch::kDouble).mean().item<double>();
  // Normal: kurtosis 3 (SE sqrt(24 / n)), 4.55% beyond 2 sd; uniform: 1.8 and none; a normal
  // cut at 2 sd: 2.36 and none.
  EXPECT_NEAR(kurt, ref["kurtosis"].get<double>(), 6.0 * std::sqrt(48.0 / double(n))) << what << ": kurtosis";
  EXPECT_NEAR(tail, ref["tail"].get<double>(), 6.0 * std::sqrt(2.0 * 0.0455 / double(n)) + 1e-9) << what << ": beyond 2 sd";
}

// Every float tensor of `module` (parameters and buffers) against `oracle`, and every oracle
// tensor present; `skip(name)` (our names and the oracle's) leaves out tensors the oracle has no
// counterpart of (a routed MoE's gate) or that a checkpoint gave.
void expect_module_matches(torch::nn::Module& module, const json& oracle, const std::string& kind,
                           const std::function<bool(const std::string&)>& skip = [](const std::string&) { return false; }) {
  std::set<std::string> seen;
  auto check = [&](const std::string& name, const torch::Tensor& t) {
    if (!t.is_floating_point() || skip(name)) return;
    const auto [official, stacked] = official_name(name);
    ASSERT_TRUE(oracle.contains(official)) << kind << ": " << name << " has no upstream counterpart";
    seen.insert(official);
    if (!stacked) {
      expect_same_law(t, oracle[official], kind + " " + name);
    } else {
      for (int64_t e = 0; e < t.size(0); ++e)
        expect_same_law(t[e], oracle[official], kind + " " + name + " expert " + std::to_string(e));
    }
  };
  for (const auto& p : module.named_parameters()) check(p.key(), p.value());
  for (const auto& b : module.named_buffers()) check(b.key(), b.value());
  for (const auto& item : oracle.items())
    EXPECT_TRUE(seen.count(item.key()) || skip(item.key())) << kind << ": upstream's " << item.key() << " is not in ewa's model";
}

bool is_gate(const std::string& name) { return name.find(".mlp.gate.") != std::string::npos; }

TEST_F(OfficialInit, ClassifiersStartAsTheOfficialRunnersLeaveThem) {
  for (const char* moe : {"dense", "rup", "routed"}) {
    SCOPED_TRACE(moe);
    torch::manual_seed(1);
    auto pm = ewa::models::build_model(classifier_config("point_mae", moe));
    expect_module_matches(*pm, stats("pm_cls"), "pm_cls", is_gate);
    auto pm_tn = ewa::models::build_model(classifier_config("point_mae", moe, "trunc_normal"));
    expect_module_matches(*pm_tn, stats("pm_cls_init_weights"), "pm_cls_init_weights", is_gate);
    auto pb = ewa::models::build_model(classifier_config("point_bert", moe));
    expect_module_matches(*pb, stats("pb_cls"), "pb_cls", is_gate);
  }
}

TEST_F(OfficialInit, PretrainingModelsStartAsUpstreamBuildsThem) {
  for (const char* moe : {"dense", "rup"}) {
    SCOPED_TRACE(moe);
    torch::manual_seed(2);
    auto m = point_model("point_mae", "point_mae");
    ewa::models::PointMae mae(config(m, {{"dataset", "shapenet55"}, {"root", "unused"}, {"num_points", 256}},
                                     {{"moe", {{"kind", moe}, {"num_experts", 3}, {"blocks", "all"}}},
                                      {"pretrain", {{"decoder_depth", 2}, {"decoder_num_heads", 4}}}}));
    expect_module_matches(*mae, stats("pm_pretrain"), "pm_pretrain");

    const auto cfg = bert_config(moe);
    ewa::models::PointBert bert(cfg, ewa::models::dvae_options(cfg));
    expect_module_matches(*bert, stats("pb_pretrain"), "pb_pretrain");
    // transformer_k starts as a copy of transformer_q (PB:models/Point_BERT.py:441-443).
    auto q = bert->transformer_q->named_parameters();
    for (const auto& p : bert->transformer_k->named_parameters())
      EXPECT_TRUE(torch::equal(p.value(), q[p.key()])) << "transformer_k." << p.key();
  }
  ewa::models::DvaeOptions o;
  o.num_groups = 16, o.group_size = kGroupSize, o.encoder_dims = kEncoderDims, o.num_tokens = 128, o.tokens_dims = 64,
  o.decoder_dims = 64;
  ewa::models::DiscreteVae dvae(o);
  expect_module_matches(*dvae, stats("dvae"), "dvae");
}

TEST_F(OfficialInit, SegmentationAndVitStartAsUpstreamBuildsThem) {
  for (const char* moe : {"dense", "rup"}) {
    SCOPED_TRACE(moe);
    auto m = point_model("point_seg", "point_mae");
    m["depth"] = 3;
    m["num_categories"] = 4;
    m["num_classes"] = kClasses;
    m["seg_fp_hidden"] = 384;
    m["seg_fp_dim"] = 256;
    m["seg_head_hidden"] = 128;
    ewa::models::PointSeg seg(config(m, {{"dataset", "shapenetpart"}, {"root", "unused"}, {"num_points", 256}},
                                     {{"moe", {{"kind", moe}, {"num_experts", 3}, {"blocks", "all"}}}}));
    expect_module_matches(*seg, stats("pm_seg"), "pm_seg");  // the oracle's segmentation depth is 3
  }
  for (const char* moe : {"dense", "rup", "routed"}) {
    SCOPED_TRACE(moe);
    auto vit = ewa::models::build_model(config({{"name", "vit"}, {"in_chans", 3}, {"num_classes", kClasses}, {"img_size", 28},
                                                {"patch_size", 7}, {"embed_dim", kDim}, {"depth", kDepth}, {"num_heads", kHeads}},
                                               {{"dataset", "fashion_mnist"}, {"root", "/nonexistent"}},
                                               {{"moe", {{"kind", moe}, {"num_experts", 3}, {"blocks", "all"}}}}));
    expect_module_matches(*vit, stats("vit"), "vit", is_gate);
  }
}

// Fine-tuning from a pretraining file written by the official modules: every tensor the file
// gives equals it, the others (the head, Point-MAE's cls_token / cls_pos, the segmentation
// network's decoder) follow the from-scratch law.
TEST_F(OfficialInit, FromACheckpointTheRestStartsAsFromScratch) {
  auto loaded_from = [](const std::string& path, const std::string& prefix) {
    std::map<std::string, torch::Tensor> out;
    for (const auto& item : ewa::io::read_state_dict(path).tensors) {
      std::string k = item.key();
      if (k.rfind("module.", 0) == 0) k = k.substr(7);
      if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = item.value();
    }
    return out;
  };
  struct Case {
    std::string variant, file, prefix, oracle;
  };
  for (const auto& c : {Case{"point_mae", "pm_pretrain.pth", "MAE_encoder.", "pm_cls"},
                        Case{"point_bert", "pb_pretrain.pth", "transformer_q.", "pb_cls"}}) {
    for (const char* moe : {"dense", "rup"}) {
      SCOPED_TRACE(c.variant + " " + moe);
      auto cfg = classifier_config(c.variant, moe).with({{"finetune.init", file(c.file)}});
      auto model = ewa::models::build_model(cfg);
      const auto report = ewa::tasks::init_from_pretrained(*model, cfg);
      EXPECT_TRUE(report.missing.empty()) << report.table();
      const auto file_tensors = loaded_from(file(c.file), c.prefix);
      std::set<std::string> loaded;
      auto check_loaded = [&](const std::string& name, const torch::Tensor& t) {
        const auto [official, stacked] = official_name(name);
        const auto it = file_tensors.find(official);
        if (it == file_tensors.end() || official.rfind("cls_head.", 0) == 0) return false;
        auto want = it->second.reshape(stacked ? t[0].sizes() : t.sizes());
        if (!stacked) {
          EXPECT_TRUE(torch::equal(t, want)) << name;
        } else {
          for (int64_t e = 0; e < t.size(0); ++e) EXPECT_TRUE(torch::equal(t[e], want)) << name << " expert " << e;
        }
        return true;
      };
      // Our names and the oracle's (an expert tensor's dense counterpart) of every loaded tensor.
      auto note = [&](const std::string& name, const torch::Tensor& t) {
        if (check_loaded(name, t)) loaded.insert({name, official_name(name).name});
      };
      for (const auto& p : model->named_parameters()) note(p.key(), p.value());
      for (const auto& b : model->named_buffers()) note(b.key(), b.value());
      EXPECT_FALSE(loaded.count("cls_head_finetune.0.weight"));
      EXPECT_TRUE(loaded.count("blocks.blocks.1.attn.qkv.weight"));
      // Point-MAE's pretraining has no class token: cls_token / cls_pos stay fresh (trunc_normal).
      EXPECT_EQ(loaded.count("cls_token"), c.variant == "point_bert" ? 1u : 0u);
      expect_module_matches(*model, stats(c.oracle), c.oracle, [&](const std::string& n) { return loaded.count(n) > 0; });
    }
  }
  auto m = point_model("point_seg", "point_mae");
  m["depth"] = 3, m["num_categories"] = 4, m["seg_fp_hidden"] = 384, m["seg_fp_dim"] = 256, m["seg_head_hidden"] = 128;
  auto cfg = config(m, {{"dataset", "shapenetpart"}, {"root", "unused"}, {"num_points", 256}},
                    {{"moe", {{"kind", "dense"}}}, {"finetune", {{"init", file("pm_pretrain_seg.pth")}}}});
  ewa::models::PointSeg seg(cfg);
  const auto report = ewa::tasks::init_segmentation(*seg, cfg);
  EXPECT_TRUE(report.missing.empty()) << report.table();
  const auto file_tensors = loaded_from(file("pm_pretrain_seg.pth"), "MAE_encoder.");
  std::set<std::string> loaded;
  auto note = [&](const std::string& name, const torch::Tensor& t) {
    if (const auto it = file_tensors.find(name); it != file_tensors.end()) {
      EXPECT_TRUE(torch::equal(t, it->second.reshape(t.sizes()))) << name;
      loaded.insert(name);
    }
  };
  for (const auto& p : seg->named_parameters()) note(p.key(), p.value());
  for (const auto& b : seg->named_buffers()) note(b.key(), b.value());
  EXPECT_TRUE(loaded.count("blocks.blocks.2.mlp.fc1.weight"));
  EXPECT_TRUE(loaded.count("encoder.second_conv.1.running_var"));
  EXPECT_FALSE(loaded.count("convs1.weight"));
  expect_module_matches(*seg, stats("pm_seg"), "pm_seg", [&](const std::string& n) { return loaded.count(n) > 0; });
}

}  // namespace
