// Point-BERT's dVAE tokenizer against a PyTorch model laid out like the official one
// (tests/fixtures/official_dvae.py: same weights, same Gumbel noise, outputs and losses within
// 1e-4, both ways), and its schedules against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "io/point_io.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "models/dvae.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {
using ewa::testing::max_abs_diff;
using ewa::testing::TempDir;
namespace fs = std::filesystem;

const std::string kPython = EWA_PYTHON;
const std::string kScript = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/official_dvae.py";

ewa::models::DvaeOptions small() {
  ewa::models::DvaeOptions o;
  o.num_groups = 16;
  o.group_size = 8;
  o.encoder_dims = 32;
  o.num_tokens = 64;
  o.tokens_dims = 24;
  o.decoder_dims = 32;
  return o;
}

class OfficialDvae : public ewa::testing::PythonFixtureSuite<OfficialDvae> {
 public:
  static std::string script() { return kScript; }
  static std::string prefix() { return "dvae"; }
};

// A training step's forward as upstream runs it: BatchNorm on the batch's statistics, soft codes,
// F.gumbel_softmax drawing its own noise from the default generator seeded as the fixture seeded it.
TEST_F(OfficialDvae, TrainingModeForwardGivesTheOfficialOutputsAndLosses) {
  ewa::models::DiscreteVae model(small());
  ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("dvae.pth")), {}, file("dvae.pth"));
  model->train();
  torch::manual_seed(5);  // the fixture's --seed 0 + 5
  torch::NoGradGuard guard;
  auto out = model->forward(npy("points"), 0.7, /*hard=*/false);
  EXPECT_LT(max_abs_diff(out.logits, npy("logits_train")), 1e-4);
  EXPECT_LT(max_abs_diff(out.coarse, npy("coarse_train")), 1e-4);
  EXPECT_LT(max_abs_diff(out.fine, npy("fine_train")), 1e-4);
  const auto losses = npy("losses_train");
  EXPECT_NEAR(out.recon.item<double>(), losses[0].item<double>(), 1e-4);
  EXPECT_NEAR(out.kl.item<double>(), losses[1].item<double>(), 1e-4);
  // Batch statistics, not the running ones: the eval-mode pass of the same weights differs.
  EXPECT_GT(max_abs_diff(out.logits, npy("logits")), 1e-3);
}

TEST_F(OfficialDvae, ImportedCheckpointGivesTheOfficialOutputsAndLosses) {
  ewa::models::DiscreteVae model(small());
  const auto report = ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("dvae.pth")), {}, file("dvae.pth"));
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.fresh.empty()) << report.table();
  model->eval();
  torch::NoGradGuard guard;
  auto out = model->forward(npy("points"), 0.5, false, npy("gumbel"));
  EXPECT_LT(max_abs_diff(out.logits, npy("logits")), 1e-4);
  EXPECT_LT(max_abs_diff(out.codes, npy("codes")), 1e-4);
  EXPECT_LT(max_abs_diff(out.coarse, npy("coarse")), 1e-4);
  EXPECT_LT(max_abs_diff(out.fine, npy("fine")), 1e-4);
  const auto losses = npy("losses");
  EXPECT_NEAR(out.recon.item<double>(), losses[0].item<double>(), 1e-4);
  EXPECT_NEAR(out.kl.item<double>(), losses[1].item<double>(), 1e-4);
  // Evaluation's hard sample: one-hot codes (the argmax of the noisy logits).
  auto hard = model->forward(npy("points"), 0.5, true, npy("gumbel"));
  EXPECT_LT(max_abs_diff(hard.codes, npy("codes_hard")), 1e-5);
  EXPECT_TRUE(torch::equal(hard.codes.sum(2), torch::ones_like(hard.codes.sum(2))));
  EXPECT_LT(max_abs_diff(hard.fine, npy("fine_hard")), 1e-4);
  // The tokens are the argmax of dgcnn_1's logits.
  EXPECT_TRUE(torch::equal(model->tokens(npy("points")), out.logits.argmax(2)));
}

TEST_F(OfficialDvae, ExportLoadsStrictlyInTheOfficialModelWithOurOutputs) {
  ewa::models::DiscreteVae model(small());
  ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("dvae.pth")), {}, file("dvae.pth"));
  model->eval();
  TempDir tmp;
  fs::copy(file("points.npy"), tmp / "points.npy");
  fs::copy(file("gumbel.npy"), tmp / "gumbel.npy");
  ewa::io::write_torch_state_dict(tmp / "ours.pth", ewa::io::to_official_layout(ewa::train::state_dict(*model)), 300);
  auto r = ewa::testing::run_command(kPython + " " + kScript + " check " + tmp.path() + " " + (tmp / "ours.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  torch::NoGradGuard guard;
  auto ours = model->forward(npy("points"), 0.5, false, npy("gumbel")).fine;
  EXPECT_LT(max_abs_diff(ewa::io::read_npy(tmp / "check_fine.npy"), ours), 1e-4);
}

TEST(DvaeSchedules, HandComputedValues) {
  using ewa::models::dvae_kl_weight;
  using ewa::models::dvae_temperature;
  // KL weight: 0 before iteration 10000; 0.1 * (1 - cos(pi t)) / 2 on the way; 0.1 after.
  EXPECT_EQ(dvae_kl_weight(0), 0.0);
  EXPECT_EQ(dvae_kl_weight(9999), 0.0);
  EXPECT_NEAR(dvae_kl_weight(10000), 0.0, 1e-15);
  EXPECT_NEAR(dvae_kl_weight(60000), 0.05, 1e-12);                                       // half way
  EXPECT_NEAR(dvae_kl_weight(35000), 0.1 * (1 - std::cos(M_PI / 4)) / 2, 1e-12);          // a quarter
  EXPECT_NEAR(dvae_kl_weight(110000), 0.1, 1e-15);
  EXPECT_EQ(dvae_kl_weight(200000), 0.1);
  // Temperature: 1 -> 0.0625 over 100000 iterations.
  EXPECT_NEAR(dvae_temperature(0), 1.0, 1e-15);
  EXPECT_NEAR(dvae_temperature(50000), (1.0 + 0.0625) / 2, 1e-12);
  EXPECT_NEAR(dvae_temperature(100000), 0.0625, 1e-15);
  EXPECT_EQ(dvae_temperature(100001), 0.0625);
}

TEST(DvaeModel, EveryOfficialKeyAndShape) {
  ewa::models::DiscreteVae model(small());
  const auto params = model->named_parameters();
  // Official shapes: Conv2d [out, in, 1, 1], Conv1d [out, in, 1]; the mini-PointNet's Linear
  // layers map onto Conv1d weights through the importer.
  EXPECT_EQ(params.find("dgcnn_1.layer1.0.weight")->sizes(), (std::vector<int64_t>{256, 256, 1, 1}));
  EXPECT_EQ(params.find("dgcnn_1.layer5.0.weight")->sizes(), (std::vector<int64_t>{64, 2304, 1}));
  EXPECT_EQ(params.find("dgcnn_1.layer5.1.weight")->sizes(), (std::vector<int64_t>{64}));  // GroupNorm
  EXPECT_EQ(params.find("dgcnn_2.input_trans.weight")->sizes(), (std::vector<int64_t>{128, 24, 1}));
  EXPECT_EQ(params.find("codebook")->sizes(), (std::vector<int64_t>{64, 24}));
  EXPECT_EQ(params.find("decoder.mlp.4.weight")->sizes(), (std::vector<int64_t>{3 * 2, 1024}));
  EXPECT_EQ(params.find("decoder.final_conv.0.weight")->sizes(), (std::vector<int64_t>{512, 32 + 5, 1}));
  EXPECT_EQ(params.find("dgcnn_1.layer1.0.bias"), nullptr);  // no bias before GroupNorm
  // A group size that does not fold 2 x 2 is refused.
  auto o = small();
  o.group_size = 10;
  EXPECT_THROW(ewa::models::DiscreteVae{o}, ewa::Error);
}

}  // namespace

namespace {
// Stage 1 from the command line: `ewa pretrain` on a point_bert_dvae config trains through the one
// loop, its test reconstruction falls, and the schedules reach the run's log.
TEST(DvaeCli, PretrainReducesTheReconstructionAndLogsTheSchedules) {
  TempDir dir;
  auto r = ewa::testing::run_command(std::string(EWA_BINARY) + " data synth -o " + (dir / "synth") +
                                     " --train-per-class 8 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ewa::testing::write_file(dir / "dvae.json", R"({"base": ")" + std::string(EWA_SOURCE_DIR) + R"(/configs/synth_dvae.json",
    "name": "dvae", "model": {"num_groups": 8, "group_size": 8, "encoder_dims": 32},
    "pretrain": {"num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16, "kl_delay": 2, "kl_ramp": 4, "temperature_ramp": 4},
    "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") + R"(", "num_points": 128, "batch_size": 16},
    "optim": {"lr": 0.002}, "train": {"epochs": 4, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 100}})");
  r = ewa::testing::run_command(std::string(EWA_BINARY) + " pretrain -c " + (dir / "dvae.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("point_bert_dvae groups=8x8, encoder 32, 32 tokens x 16, decoder 16"), std::string::npos) << r.output;
  std::ifstream log(dir / "runs/dvae/log.jsonl");
  std::vector<nlohmann::json> epochs;
  for (std::string line; std::getline(log, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "epoch") epochs.push_back(j);
  }
  ASSERT_EQ(epochs.size(), 4u);
  EXPECT_LT(epochs.back()["test"]["chamfer"].get<double>(), epochs.front()["test"]["chamfer"].get<double>());
  // 4 steps per epoch (64 clouds, batch 16): after epoch 1 (step 3 was the last begun) the KL
  // weight is 0.1 (1 - cos(pi / 4)) / 2, the temperature at step 3 of its 4-step ramp.
  EXPECT_NEAR(epochs[0]["test"]["kl_weight"].get<double>(), ewa::models::dvae_kl_weight(3, 0, 0.1, 4, 2), 1e-9);
  EXPECT_NEAR(epochs[0]["test"]["temperature"].get<double>(), ewa::models::dvae_temperature(3, 1.0, 0.0625, 4), 1e-9);
  EXPECT_NEAR(epochs.back()["test"]["kl_weight"].get<double>(), 0.1, 1e-12);
  EXPECT_TRUE(fs::exists(dir / "runs/dvae/last.pt"));
  // Exported in Point-BERT's layout, the checkpoint loads back into our model tensor for tensor.
  r = ewa::testing::run_command(std::string(EWA_BINARY) + " export " + (dir / "runs/dvae/last.pt") + " -o " + (dir / "dvae.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(point_bert_dvae)"), std::string::npos) << r.output;
  const auto exported = ewa::io::read_state_dict(dir / "dvae.pth");
  EXPECT_EQ(exported.origin.find("'base_model'") != std::string::npos, true) << exported.origin;
  EXPECT_EQ(exported.tensors.find("encoder.first_conv.0.weight")->dim(), 3);  // Conv1d [out, in, 1]
  ewa::models::DvaeOptions o;
  o.num_groups = 8, o.group_size = 8, o.encoder_dims = 32, o.num_tokens = 32, o.tokens_dims = 16, o.decoder_dims = 16;
  ewa::models::DiscreteVae back(o);
  const auto report = ewa::io::load_pretrained(*back, exported, {}, dir / "dvae.pth");
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.table();
  const auto trained = ewa::train::read_checkpoint(dir / "runs/dvae/last.pt");
  EXPECT_TRUE(torch::equal(back->codebook, trained.model.find("codebook")->to(torch::kFloat)));
}
}  // namespace
