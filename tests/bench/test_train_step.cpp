// The benchmarks' own tests (target ewa_bench_tests, label bench): the unit tests do not link the
// benchmark library.
#include <gtest/gtest.h>

#include "bench/input.h"
#include "bench/train_step.h"
#include "config/config.h"

namespace {
using json = nlohmann::json;

ewa::Config small_vit(const std::string& kind) {
  json j = {{"model", {{"img_size", 16}, {"in_chans", 2}, {"num_classes", 5}, {"patch_size", 4}, {"embed_dim", 24},
                       {"depth", 4}, {"num_heads", 2}, {"drop_path_rate", 0.0}}},
            {"moe", {{"kind", kind}, {"num_experts", 3}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

TEST(TrainStepBench, MeasuresTheThreeVariantsOfOneModel) {
  auto cfg = small_vit("rup");  // MoE in blocks 1 and 3, N = 3, D = 24, hidden 96
  ewa::bench::TrainStepOptions o;
  o.warmup = 1;
  o.steps = 2;
  o.rounds = 1;
  o.batch_size = 4;
  auto rows = ewa::bench::bench_train_step(cfg, o);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].variant, "dense");
  EXPECT_EQ(rows[1].variant, "rup+ewa");
  EXPECT_EQ(rows[2].variant, "routed");
  const int64_t ffn = 2 * 24 * 96 + 96 + 24;  // one dense FFN
  EXPECT_EQ(rows[1].params - rows[0].params, 2 * (3 - 1) * ffn);          // two MoE blocks of 3 experts
  EXPECT_EQ(rows[2].params - rows[1].params, 2 * 3 * 24);                // plus two gates
  for (const auto& r : rows) {  // a median of timed steps lies between their fastest and slowest
    EXPECT_GT(r.ms_min, 0.0) << r.variant;
    EXPECT_GE(r.ms_median, r.ms_min) << r.variant;
    EXPECT_NEAR(r.ratio_to_dense, r.ms_median / rows[0].ms_median, 1e-12) << r.variant;
  }
  EXPECT_DOUBLE_EQ(rows[0].ratio_to_dense, 1.0);
  EXPECT_NE(ewa::bench::train_step_markdown(rows).find("| rup+ewa |"), std::string::npos);
}

TEST(TrainStepBench, MeasuresThePartSegmentationStepDenseAndEwa) {
  json j = {{"model", {{"name", "point_seg"}, {"embed_dim", 24}, {"depth", 3}, {"num_heads", 2}, {"num_groups", 8},
                       {"group_size", 4}, {"in_chans", 3}, {"num_classes", 50}, {"num_categories", 16},
                       {"seg_fp_hidden", 16}, {"seg_fp_dim", 16}, {"seg_head_hidden", 16}}},
            {"moe", {{"kind", "rup"}, {"num_experts", 3}}},
            {"data", {{"dataset", "shapenetpart"}, {"root", "unused"}, {"num_points", 64}}}};
  auto cfg = ewa::parse_config(ewa::resolve_config(j, "test"), "test");
  ewa::bench::TrainStepOptions o;
  o.warmup = 1;
  o.steps = 1;
  o.rounds = 1;
  o.batch_size = 2;
  auto rows = ewa::bench::bench_train_step(cfg, o);
  ASSERT_EQ(rows.size(), 2u);  // no routed variant for segmentation
  EXPECT_EQ(rows[1].variant, "rup+ewa");
  EXPECT_EQ(rows[1].params - rows[0].params, (3 - 1) * (2 * 24 * 96 + 96 + 24));  // MoE in block 1, N = 3
}
}  // namespace


// `ewa bench input`: every asked thread count gets a row, the batches it times are the training
// batches of the loaded split (a loader that counts them), and the step is the config's model at
// that batch size.
TEST(InputBench, TimesTheTrainingBatchesOfTheSplitAgainstTheStep) {
  auto cfg = small_vit("dense").with({{"data.batch_size", 4}});
  int64_t built = 0;
  class Counting : public ewa::data::IndexedBatchSource {
   public:
    explicit Counting(int64_t* built) : IndexedBatchSource(12, 4, true, 0), built_(built) {}
    std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, ewa::data::View view) const override {
      EXPECT_EQ(view, ewa::data::View::Training);
      ++*built_;
      return {torch::randn({4, 2, 16, 16}), torch::zeros({4}, torch::kLong) + i};
    }

   private:
    int64_t* built_;
  };
  ewa::data::TaskLoader load = [&](const ewa::Config&, ewa::data::Use use) {
    EXPECT_EQ(use, ewa::data::Use::Training);
    ewa::data::TaskData t;
    t.num_classes = 5, t.img_size = 16, t.in_chans = 2;
    t.train = std::make_unique<Counting>(&built);
    t.test = std::make_unique<Counting>(&built);
    return t;
  };
  ewa::bench::InputOptions o;
  o.batches = 3;
  o.threads = {1, 2};
  o.step_repeats = 1;
  const auto rows = ewa::bench::bench_input(cfg, load, o);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(built, 2 * (3 + 1));  // one untimed and three timed per thread count
  for (const auto& r : rows) {
    EXPECT_EQ(r.batch, 4);
    EXPECT_GT(r.batch_ms, 0.0);
    EXPECT_GT(r.step_ms, 0.0);
  }
  EXPECT_EQ(rows[0].threads, 1);
  EXPECT_EQ(rows[1].threads, 2);
  EXPECT_NE(ewa::bench::input_markdown(rows).find("| 2 | 4 |"), std::string::npos);
}
