// Multi-process data-parallel training over c10d Gloo: batch shards, the per-epoch coverage of
// the data over ranks, the job environment (torchrun / Slurm), two processes against one on the
// same global batch, identical EWA experts across ranks, and a dead or hung rank ending the job
// with an error that names it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "datasets/point_datasets.h"
#include "dist/dist.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
using ewa::testing::run_command;
namespace fs = std::filesystem;
const std::string kEwa = EWA_BINARY;

TEST(Dist, ShardsAreContiguousDisjointAndBalanced) {
  for (int64_t batch = 1; batch <= 40; ++batch)
    for (int64_t world = 1; world <= 5; ++world) {
      int64_t next = 0, smallest = batch, largest = 0;
      for (int64_t r = 0; r < world; ++r) {
        auto [lo, hi] = ewa::dist::shard(batch, r, world);
        EXPECT_EQ(lo, next) << batch << " " << world << " " << r;
        next = hi;
        smallest = std::min(smallest, hi - lo), largest = std::max(largest, hi - lo);
      }
      EXPECT_EQ(next, batch);
      EXPECT_LE(largest - smallest, 1);
    }
}

TEST(Dist, EveryRankTogetherSeesEachSampleOncePerEpoch) {
  // 37 clouds whose points all equal their index; shuffled batches of 8 (the last one short).
  const int64_t n = 37;
  auto points = torch::arange(n, torch::kFloat).view({n, 1, 1}).expand({n, 4, 3}).contiguous();
  ewa::datasets::PointCloudSet set{points, torch::arange(n, torch::kLong) % 3};
  ewa::DataConfig cfg;
  cfg.num_points = 4;
  ewa::datasets::PointBatcher batches(set, cfg, 8, /*shuffle=*/true, 5);
  for (int64_t world : {1, 2, 3}) {
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      batches.start_epoch(epoch);
      std::multiset<int64_t> seen;
      for (int64_t b = 0; b < batches.num_batches(); ++b) {
        auto x = batches.batch(b, ewa::data::View::Plain).first;
        for (int64_t r = 0; r < world; ++r) {
          auto [lo, hi] = ewa::dist::shard(x.size(0), r, world);
          for (int64_t i = lo; i < hi; ++i) seen.insert(static_cast<int64_t>(x[i][0][0].item<float>()));
        }
      }
      ASSERT_EQ(static_cast<int64_t>(seen.size()), n) << world;
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
    }
  }
}

// Sets environment variables for one scope.
struct ScopedEnv {
  std::vector<std::string> names;
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (auto [k, v] : vars) {
      names.emplace_back(k);
      ::setenv(k, v, 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& k : names) ::unsetenv(k.c_str());
  }
};

TEST(Dist, JobEnvironmentFromTorchrunOrSlurm) {
  {
    auto e = ewa::dist::env_from_environment();
    EXPECT_EQ(e.world_size, 1);
    EXPECT_EQ(e.source, "single process");
  }
  {
    ScopedEnv env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29501"},
                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
    auto e = ewa::dist::env_from_environment();
    EXPECT_EQ(e.rank, 3);
    EXPECT_EQ(e.world_size, 4);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.master_addr, "node7");
    EXPECT_EQ(e.master_port, 29501);
    EXPECT_TRUE(e.agent_store);
    EXPECT_EQ(e.prefix, "ewa/attempt_2/");
    EXPECT_EQ(e.source, "torchrun");
  }
  {
    ScopedEnv env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "1234"}});
    auto e = ewa::dist::env_from_environment();
    EXPECT_EQ(e.rank, 5);
    EXPECT_EQ(e.world_size, 8);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.source, "slurm");
  }
  auto error = [](std::initializer_list<std::pair<const char*, const char*>> vars) {
    ScopedEnv env(vars);
    return ewa::testing::error_of([] { ewa::dist::env_from_environment(); });
  };
  EXPECT_NE(error({{"RANK", "0"}}).find("RANK and WORLD_SIZE must be set together"), std::string::npos);
  EXPECT_NE(error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("RANK=2: expected an integer in [0, 1]"), std::string::npos);
  EXPECT_NE(error({{"RANK", "0"}, {"WORLD_SIZE", "two"}}).find("WORLD_SIZE=two"), std::string::npos);
  EXPECT_NE(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR: not set"), std::string::npos);
  EXPECT_NE(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "99999"}}).find("MASTER_PORT=99999"),
            std::string::npos);
}

// A small point transformer on synthetic shapes (no augmentation: scale 1, no translation).
void write_job(const TempDir& dir, const std::string& moe) {
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 6 --test-per-class 3 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ewa::testing::write_file(dir / "c.json", R"({"name": "d", "model": {"name": "point_transformer", "embed_dim": 32, "depth": 2,
    "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 32, "drop_path_rate": 0.0},
    "moe": )" + moe + R"(, "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") +
                               R"(", "num_points": 64, "batch_size": 12, "eval_batch_size": 7, "scale_low": 1.0,
    "scale_high": 1.0, "translate": 0.0}, "train": {"epochs": 2, "log_every": 2, "threads": 1, "device": "cpu"}})");
}

// A small ViT on IDX gratings: LayerNorm only (no batch statistics), no dropout, no drop path,
// no augmentation, so one process and several see exactly the same global batches.
void write_vit_job(const TempDir& dir) {
  ewa::testing::write_pattern_idx(dir.path(), 90, 30, false);
  ewa::testing::write_file(dir / "v.json", R"({"name": "d", "model": {"name": "vit", "patch_size": 7, "embed_dim": 32, "depth": 2,
    "num_heads": 2, "drop_path_rate": 0.0}, "moe": {"kind": "dense"},
    "data": {"dataset": "fashion_mnist", "root": ")" + dir.path() + R"(", "batch_size": 20, "eval_batch_size": 7,
    "random_crop_padding": 0, "hflip": false}, "optim": {"label_smoothing": 0.0},
    "train": {"epochs": 2, "log_every": 2, "threads": 1, "device": "cpu"}})");
}

bool have_gloo() { return ewa::dist::built_with_gloo(); }

// Two ranks as two threads of this process: each builds the same small network, runs its own
// batch through it and syncs the gradients. Oracle: the sum over ranks of scale * gradient,
// computed without communication; parameters unused on one rank get the other's gradient, a
// parameter unused everywhere keeps none.
void gradient_sync_case(bool overlap) {
  SCOPED_TRACE(overlap ? "overlap" : "after backward");
  const int port = 22000 + (::getpid() + (overlap ? 1 : 0)) % 20000;
  torch::manual_seed(3);
  auto make = [] {
    torch::manual_seed(11);
    // Registration order; buckets take them in reverse, so the unused layer 0 is in the last one.
    return std::vector<torch::nn::Linear>{torch::nn::Linear(2, 2), torch::nn::Linear(6, 40), torch::nn::Linear(40, 30),
                                          torch::nn::Linear(30, 2), torch::nn::Linear(6, 2)};
  };
  std::vector<torch::Tensor> inputs = {torch::randn({5, 6}), torch::randn({3, 6})};
  const std::vector<double> scales = {5.0 / 8.0, 3.0 / 8.0};
  // Rank r's loss: the chain 1-2-3 always, layer 4 only on rank 0, layer 0 never.
  auto loss_of = [&](std::vector<torch::nn::Linear>& net, int r) {
    auto h = net[3](torch::relu(net[2](torch::relu(net[1](inputs[r])))));
    auto loss = h.pow(2).mean();
    if (r == 0) loss = loss + net[4](inputs[r]).sum();
    return loss;
  };
  // Oracle.
  std::vector<std::vector<torch::Tensor>> expected;
  {
    std::vector<torch::Tensor> sum;
    for (int r = 0; r < 2; ++r) {
      auto net = make();
      loss_of(net, r).backward();
      int k = 0;
      for (auto& l : net)
        for (auto& p : l->parameters()) {
          auto g = p.grad().defined() ? p.grad() * scales[r] : torch::zeros_like(p);
          if (r == 0) sum.push_back(g);
          else sum[k] += g;
          ++k;
        }
    }
    expected.push_back(sum);
  }
  // Both ranks' networks are built here, before the threads start: make() seeds torch's global
  // generator, which two threads must not share.
  std::vector<std::vector<torch::nn::Linear>> nets = {make(), make()};
  std::vector<std::vector<torch::Tensor>> got(2);
  std::vector<int64_t> buckets(2), in_backward(2);
  std::vector<std::string> errors(2);
  auto rank_main = [&](int r) {
    try {
      ewa::dist::Env env;
      env.rank = r;
      env.world_size = 2;
      env.master_port = port;
      env.prefix = "t/";
      auto group = ewa::dist::Group::join(env, std::chrono::milliseconds(30000));
      auto& net = nets[r];
      std::vector<torch::Tensor> params;
      for (auto& l : net)
        for (auto& p : l->parameters()) params.push_back(p);
      ewa::dist::GradientSync sync(*group, params, overlap, /*bucket_bytes=*/256);
      buckets[r] = sync.num_buckets();
      for (int step = 0; step < 2; ++step) {  // twice: the hooks and counters reset each step
        for (auto& p : params) p.mutable_grad() = torch::Tensor();
        sync.begin(scales[r]);
        loss_of(net, r).backward();
        sync.finish();
      }
      in_backward[r] = sync.started_in_backward();
      for (auto& p : params) got[r].push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    } catch (const std::exception& e) {
      errors[r] = e.what();
    }
  };
  std::thread t1(rank_main, 1);
  rank_main(0);
  t1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_EQ(buckets[0], 4);  // 256-byte buckets: layer 4 + 3, 2, 1, 0
  // Rank 0 starts the first three during backward (the last waits for layer 0, which gets no
  // gradient); rank 1 none, as layer 4 in its first bucket gets none there.
  EXPECT_EQ(in_backward[0], overlap ? 3 : 0);
  EXPECT_EQ(in_backward[1], 0);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(got[r].size(), expected[0].size());
    for (size_t k = 0; k < got[r].size(); ++k) {
      if (k < 2) {  // layer 0: no rank used it
        EXPECT_FALSE(got[r][k].defined()) << "parameter " << k;
        continue;
      }
      ASSERT_TRUE(got[r][k].defined()) << "rank " << r << " parameter " << k;
      EXPECT_TRUE(torch::allclose(got[r][k], expected[0][k], 1e-5, 1e-6)) << "rank " << r << " parameter " << k;
    }
  }
}

TEST(Dist, GradientSyncSumsScaledGradientsOverRanksWithAndWithoutOverlap) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  gradient_sync_case(true);
  gradient_sync_case(false);
}

// More ranks on a node than it has GPUs: NCCL would fail with "invalid usage" (two ranks on one
// GPU). The check runs over Gloo before NCCL, so every rank stops with the same error. Three
// ranks as threads, on "nodes" of 1, 2 and 2 GPUs by their own count.
TEST(Dist, RanksWithoutAGpuOfTheirOwnStopEveryRankBeforeNccl) {
  EXPECT_EQ(ewa::dist::gpu_per_rank_error({0, 1, 0, 1}, {2, 2, 2, 2}), "");  // 2 nodes x 2 GPUs
  EXPECT_EQ(ewa::dist::gpu_per_rank_error({0, 1}, {1, 1}),
            "rank 1 has no GPU of its own (LOCAL_RANK 1 on a node with 1 GPU): NCCL needs one GPU per rank; start at "
            "most as many processes per node as it has GPUs, or set train.device=cpu to train every rank on the CPU over Gloo");
  EXPECT_EQ(ewa::dist::gpu_per_rank_error({0, 1, 2, 0}, {1, 1, 1, 3}).substr(0, 70),
            "ranks 1 and 2 have no GPU of their own (LOCAL_RANK 1 and 2 on a node w");
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  const int port = 23000 + ::getpid() % 20000;
  std::vector<std::string> errors(3);
  auto rank_main = [&](int r, int64_t local, int64_t gpus) {
    try {
      ewa::dist::Env env;
      env.rank = r;
      env.world_size = 3;
      env.local_rank = local;
      env.master_port = port;
      env.prefix = "g/";
      auto group = ewa::dist::Group::join(env, std::chrono::milliseconds(30000));
      group->require_gpu_per_rank(gpus);
    } catch (const std::exception& e) {
      errors[r] = e.what();
    }
  };
  std::thread t1(rank_main, 1, 1, 1), t2(rank_main, 2, 0, 2);  // rank 1: second process on a 1-GPU node
  rank_main(0, 0, 1);
  t1.join();
  t2.join();
  for (int r = 0; r < 3; ++r)
    EXPECT_EQ(errors[r].rfind("train.device: rank 1 has no GPU of its own (LOCAL_RANK 1 on a node with 1 GPU)", 0), 0u)
        << "rank " << r << ": " << errors[r];
}

// On a GPU machine: `--nproc` of one more rank than there are GPUs is refused by that check, at
// once, with exit code 1 and our one-line error on every rank (no NCCL error, no crash at exit).
TEST(DistCli, MoreRanksThanGpusIsRefusedBeforeNcclIsTouched) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  TempDir dir;
  write_vit_job(dir);
  const int64_t n = static_cast<int64_t>(torch::cuda::device_count()) + 1;
  auto r = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "runs") +
                       " --set train.device=cuda --nproc " + std::to_string(n));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("has no GPU of its own"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("NCCL error"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("crashed"), std::string::npos) << r.output;
  const auto count = [&](const std::string& needle) {
    int64_t c = 0;
    for (size_t at = r.output.find(needle); at != std::string::npos; at = r.output.find(needle, at + 1)) ++c;
    return c;
  };
  EXPECT_EQ(count("ewa: error: "), n) << r.output;  // one line per rank, each the same
  EXPECT_EQ(count("has no GPU of its own"), n) << r.output;
}

// Two GPUs: two NCCL ranks train as Gloo does (the same weights on both ranks).
TEST(DistCli, TwoNcclRanksOnTwoGpusTrainBitIdenticalWeights) {
  if (!have_gloo() || !ewa::dist::built_with_nccl()) GTEST_SKIP() << "built without Gloo or NCCL";
  if (!torch::cuda::is_available() || torch::cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs";
  TempDir dir;
  write_vit_job(dir);
  auto r = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "runs") +
                       " --set train.device=cuda --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("NCCL for GPU tensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("weights bit-identical across ranks"), std::string::npos) << r.output;
}

TEST(DistCli, TwoGlooProcessesTrainTheSameWeightsAsOneProcess) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  TempDir dir;
  write_vit_job(dir);
  auto one = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto two = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "two") + " --nproc 2");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("processes  2 ranks (ewa --nproc, Gloo"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("weights bit-identical across ranks"), std::string::npos) << two.output;
  EXPECT_EQ(ewa::testing::count_lines(two.output), ewa::testing::count_lines(one.output) + 2) << two.output;  // rank 0 only
  auto a = ewa::train::read_checkpoint(dir / "one/d/last.pt"), b = ewa::train::read_checkpoint(dir / "two/d/last.pt");
  ASSERT_EQ(a.model.size(), b.model.size());
  double worst = 0;
  for (const auto& item : a.model)
    worst = std::max(worst, (item.value().to(torch::kDouble) - b.model[item.key()].to(torch::kDouble)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-4);  // the same steps; only the order of float sums differs
  // Evaluation reduced over ranks: the same test accuracy and confusion matrix as one process.
  auto ma = json::parse(std::ifstream(dir / "one/d/metrics.json")), mb = json::parse(std::ifstream(dir / "two/d/metrics.json"));
  EXPECT_EQ(ma["test"]["confusion"], mb["test"]["confusion"]);
  EXPECT_EQ(mb["distributed"]["world_size"], 2);
  EXPECT_EQ(mb["distributed"]["max_weight_difference_between_ranks"], 0.0);
  EXPECT_GT(mb["distributed"]["gradient_allreduce_ms_per_step"].get<double>(), 0.0);
  EXPECT_EQ(mb["distributed"]["overlap_allreduce"], true);
  // All-reduce after backward instead of during it: the same sums, so the same weights exactly.
  auto after = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "after") +
                           " --nproc 2 --set train.overlap_allreduce=false");
  ASSERT_EQ(after.exit_code, 0) << after.output;
  EXPECT_NE(after.output.find("all-reduced after backward"), std::string::npos) << after.output;
  auto d = ewa::train::read_checkpoint(dir / "after/d/last.pt");
  for (const auto& item : b.model) EXPECT_TRUE(torch::equal(item.value(), d.model[item.key()])) << item.key();

  // Resume with another world size: two processes for epoch 1, one for epoch 2 ends where one
  // process alone ended (no augmentation or dropout: the stream of batches is the same).
  auto half = run_command(kEwa + " train --config " + (dir / "v.json") + " --set train.runs_dir=" + (dir / "mix") +
                          " --set train.epochs=1 --nproc 2");
  ASSERT_EQ(half.exit_code, 0) << half.output;
  auto rest = run_command(kEwa + " train --resume " + (dir / "mix/d/last.pt") + " --set train.epochs=2");
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  auto c = ewa::train::read_checkpoint(dir / "mix/d/last.pt");
  worst = 0;
  for (const auto& item : a.model)
    worst = std::max(worst, (item.value().to(torch::kDouble) - c.model[item.key()].to(torch::kDouble)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-4);
}

TEST(DistCli, TorchrunOfTheVirtualEnvironmentStartsTheJob) {
  const std::string python = EWA_PYTHON;
  const std::string torchrun = python.empty() ? "" : (fs::path(python).parent_path() / "torchrun").string();
  if (!have_gloo() || torchrun.empty() || !fs::exists(torchrun)) GTEST_SKIP() << "no Gloo headers or no torchrun";
  TempDir dir;
  write_job(dir, R"({"kind": "rup", "blocks": [1], "num_experts": 2})");
  auto r = run_command(torchrun + " --no-python --nproc-per-node 2 --master-port " + std::to_string(21000 + ::getpid() % 20000) +
                       " " + kEwa + " train --config " + (dir / "c.json") + " --set train.runs_dir=" + (dir / "runs"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("processes  2 ranks (torchrun, Gloo"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("weights bit-identical across ranks"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "runs/d/last.pt"));
}

TEST(DistCli, EwaExpertsStayIdenticalAcrossRanks) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  TempDir dir;
  write_job(dir, R"({"kind": "rup", "blocks": [0, 1], "num_experts": 3})");
  auto r = run_command(kEwa + " train --config " + (dir / "c.json") + " --set train.runs_dir=" + (dir / "runs") + " --nproc 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("processes: 3 ranks; weights bit-identical across ranks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("EWA on"), std::string::npos);
  // The checkpoint's experts are those every rank holds; the run evaluates like any other.
  auto ckpt = ewa::train::read_checkpoint(dir / "runs/d/last.pt");
  EXPECT_EQ(ckpt.epoch, 2);
}

// Point-BERT's stage 2 on two processes: every rank enqueues the keys of both (the pointer moves by
// the global batch, 16, per step, not by a rank's 8), and the weights stay identical.
TEST(DistCli, PointBertQueueTakesTheKeysOfEveryRank) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  TempDir dir;
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 8 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string data = R"("data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") +
                           R"(", "num_points": 128, "batch_size": 16}, "train": {"epochs": 1, "runs_dir": ")" + (dir / "runs") +
                           R"(", "log_every": 100, "threads": 1})";
  ewa::testing::write_file(dir / "dvae.json", R"({"base": ")" + std::string(EWA_SOURCE_DIR) + R"(/configs/synth_dvae.json",
    "name": "dvae", "model": {"num_groups": 8, "group_size": 8, "encoder_dims": 32},
    "pretrain": {"num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16}, )" + data + "}");
  r = run_command(kEwa + " pretrain -c " + (dir / "dvae.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ewa::testing::write_file(dir / "bert.json", R"({"base": ")" + std::string(EWA_SOURCE_DIR) + R"(/configs/synth_pointbert.json",
    "name": "bert", "model": {"embed_dim": 32, "depth": 1, "num_heads": 2, "num_groups": 8, "group_size": 8, "encoder_dims": 32},
    "pretrain": {"tokenizer": ")" + (dir / "runs/dvae/last.pt") + R"(", "num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16,
                 "cls_dim": 16, "queue_size": 48, "svm_dataset": "", "svm_root": ""}, )" + data + "}");
  r = run_command(kEwa + " pretrain -c " + (dir / "bert.json") + " --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("processes: 2 ranks; weights bit-identical across ranks"), std::string::npos) << r.output;
  const auto ckpt = ewa::train::read_checkpoint(dir / "runs/bert/last.pt");
  EXPECT_EQ(ckpt.model.find("queue_ptr")->item<int64_t>(), (4 * 16) % 48);  // 4 steps of 16 keys
}

// Starts rank 0 and rank 1 by hand (as torchrun would), stops rank 1 with `signal` once rank 0
// has logged a step, and returns rank 0's exit code and output.
ewa::testing::CommandResult job_with_failing_rank(const TempDir& dir, const std::string& signal, int timeout_s) {
  const std::string cmd = kEwa + " train --config " + (dir / "c.json") + " --set train.epochs=300 --dist-timeout " +
                          std::to_string(timeout_s);
  ewa::testing::write_file(dir / "job.sh", "export WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$1\n"
                                           "RANK=1 " + cmd + " --set train.runs_dir=" + (dir / "r1") + " > " + (dir / "out1") + " 2>&1 &\n"
                                           "P1=$!\n"
                                           "RANK=0 " + cmd + " --set train.runs_dir=" + (dir / "r0") + " > " + (dir / "out0") + " 2>&1 &\n"
                                           "P0=$!\n"
                                           "for i in $(seq 300); do grep -q 'step 4/' " + (dir / "out0") + " && break; sleep 0.1; done\n"
                                           "kill -" + signal + " $P1\n"
                                           "wait $P0; RC=$?\n"
                                           "kill -9 $P1 2>/dev/null; wait $P1 2>/dev/null\n"
                                           "cat " + (dir / "out0") + "; exit $RC\n");
  const int port = 20000 + (::getpid() % 20000);
  return run_command("bash " + (dir / "job.sh") + " " + std::to_string(port));
}

TEST(DistCli, AKilledRankEndsTheOthersWithAnErrorNamingIt) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  TempDir dir;
  write_job(dir, R"({"kind": "dense"})");
  auto r = job_with_failing_rank(dir, "KILL", 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // Whichever collective rank 0 was in (gradients, stop flag, logged loss: all-reduce; BatchNorm
  // statistics: broadcast) fails, and the error names rank 1.
  EXPECT_NE(r.output.find("ewa: error: rank 0: "), std::string::npos) << r.output;
  EXPECT_TRUE(r.output.find("all-reduce failed (") != std::string::npos ||
              r.output.find("broadcast failed (") != std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("rank 1 (last finished step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("died or hangs"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("crashed with"), std::string::npos) << r.output;  // no crash at exit after the failure
}

TEST(DistCli, AHungRankEndsTheOthersAfterTheTimeout) {
  if (!have_gloo()) GTEST_SKIP() << "built without the Gloo headers";
  TempDir dir;
  write_job(dir, R"({"kind": "dense"})");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = job_with_failing_rank(dir, "STOP", 3);  // SIGSTOP: rank 1 hangs without dying
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // Gloo words it "Timed out ..." or "Application timeout caused pair closure", by where it waited.
  EXPECT_TRUE(r.output.find("Timed out") != std::string::npos || r.output.find("timeout caused") != std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("ewa: error: rank 0: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 (last finished step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(timeout 3 s)"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("crashed with"), std::string::npos) << r.output;
  EXPECT_LT(s, 60);
}

}  // namespace

namespace {
// CI's check of the GPU script's preparation step: the folder it writes lets CMake find every
// dependency a bare GPU image lacks, with the system's own paths switched off.
TEST(GpuCheck, PrepareWritesAFolderCMakeFindsEverythingIn) {
  if (!fs::exists("/usr/include/gloo") || !fs::exists("/usr/src/googletest/CMakeLists.txt"))
    GTEST_SKIP() << "no /usr/include/gloo or /usr/src/googletest: the preparation runs where scripts/install-deps.sh "
                    "ran (on a bare GPU image this test is the one thing it cannot do)";
  TempDir dir;
  const std::string src = EWA_SOURCE_DIR;
  auto r = run_command("bash " + src + "/scripts/gpu-check.sh prepare " + (dir / "deps"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gpu-check: prepared"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "deps/src/googletest/CMakeLists.txt"));
  fs::create_directories(dir / "probe");
  ewa::testing::write_file(dir / "probe/CMakeLists.txt", R"(cmake_minimum_required(VERSION 3.20)
project(probe C CXX)
set(D ")" + (dir / "deps") + R"(")
find_package(nlohmann_json 3 REQUIRED CONFIG PATHS ${D} NO_DEFAULT_PATH)
find_package(CLI11 REQUIRED CONFIG PATHS ${D} NO_DEFAULT_PATH)
find_path(GLOO gloo/algorithm.h PATHS ${D}/include NO_DEFAULT_PATH REQUIRED)
find_path(ZINC zlib.h PATHS ${D}/include NO_DEFAULT_PATH REQUIRED)
find_library(ZLIB_A NAMES libz.a PATHS ${D}/lib NO_DEFAULT_PATH REQUIRED)
get_target_property(J nlohmann_json::nlohmann_json INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(C CLI11::CLI11 INTERFACE_INCLUDE_DIRECTORIES)
message(STATUS "probe: json=${J} cli=${C} gloo=${GLOO} zlib=${ZLIB_A}")
)");
  r = run_command("cmake -S " + (dir / "probe") + " -B " + (dir / "probe/b"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("probe: json=" + (dir / "deps/include")), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cli=" + (dir / "deps/include")), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("gloo=" + (dir / "deps/include")), std::string::npos) << r.output;
  // A folder that was never prepared is refused by name before anything is built.
  r = run_command("bash " + src + "/scripts/gpu-check.sh run " + (dir / "nothing"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("is not prepared"), std::string::npos) << r.output;
}

// The check's step runner (its `selftest`: made-up steps that pass, fail, time out and are
// skipped): a failing step does not stop the ones after it, and the table reports each.
TEST(GpuCheck, EveryStepRunsWhateverFailsAndTheTableReportsEach) {
  auto r = run_command("bash " + std::string(EWA_SOURCE_DIR) + "/scripts/gpu-check.sh selftest");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row : {"| passes | ok |", "| fails | FAILED (exit 3) |", "| slow | TIMEOUT (1 s) |",
                          "| after_fails | skipped (needs fails) |", "| still_runs | ok | 0 | value 1.5",
                          "| cut_to_the_deadline | TIMEOUT (",
                          "| past_the_deadline | skipped (no time left before GPU_CHECK_DEADLINE) |"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  EXPECT_LT(r.output.find("| fails |"), r.output.find("| still_runs |"));
}
}  // namespace
