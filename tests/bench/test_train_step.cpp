// The benchmarks' own tests (target ewa_bench_tests, label bench): the unit tests do not link the
// benchmark library.
#include <gtest/gtest.h>

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

