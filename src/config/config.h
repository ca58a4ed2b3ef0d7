// Experiment configuration: JSON file -> validated, resolved JSON -> typed structs.
// Every key, its default and meaning lives in config/schema.cpp (docs/config.md).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ewa {

enum class MlpKind { Dense, Rup, Routed };

struct ModelConfig {
  std::string name = "vit", variant = "point_mae";
  int64_t num_groups = 64, group_size = 32, encoder_dims = 0, head_hidden = 256;
  double head_dropout = 0.5;
  int64_t img_size = 0, in_chans = 0, num_classes = 0, patch_size = 4;
  int64_t embed_dim = 192, depth = 12, num_heads = 3;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  double drop_rate = 0, attn_drop_rate = 0, drop_path_rate = 0.1;
};

struct MoeConfig {
  MlpKind kind = MlpKind::Rup;
  std::vector<int64_t> blocks;  // resolved block indices that get the MoE
  int64_t num_experts = 4, top_k = 1;
  double capacity_factor = 1.25, eval_capacity_factor = 2.0, aux_loss_weight = 0.01;
};

struct EwaConfig {
  bool enabled = true;
  double share_rate = 0.3;
  std::string schedule = "constant";
  int64_t ramp_steps = 0, until_step = -1;
};

struct DataConfig {
  std::string dataset = "fashion_mnist", root, variant, cache_dir, pipeline = "fixed";
  int64_t batch_size = 128, eval_batch_size = 500, train_limit = 0, test_limit = 0, random_crop_padding = 2;
  int64_t num_points = 1024, votes = 1, fps_points = 0, source_points = 0;
  int64_t way = 0, shot = 0, fold = -1;  // modelnet_fewshot
  double val_fraction = 0, scale_low = 2.0 / 3.0, scale_high = 1.5, translate = 0.2, jitter = 0;
  bool hflip = false, use_normals = false, rotate_up = false, normalize = true, drop_last = true;

  bool is_point_cloud() const;
};

struct OptimConfig {
  double lr = 1e-3, min_lr = 1e-5, weight_decay = 0.05, beta1 = 0.9, beta2 = 0.999;
  double warmup_epochs = 1, label_smoothing = 0.1, grad_clip = 1.0;
  std::string schedule = "step_cosine";  // or "timm_epoch" (Point-MAE / Point-BERT)
  double warmup_lr_init = 1e-6;          // timm_epoch
  int64_t cosine_epochs = 0;             // timm_epoch: t_initial; 0 = train.epochs
};

struct EvalConfig {
  int64_t vote_views = 10, vote_repeats = 10;
  bool final_vote = false, save_best_on_test = false;
};

struct PretrainConfig {
  double mask_ratio = 0.6;
  std::string mask_type = "rand", loss = "cdl2";
  int64_t decoder_depth = 4, decoder_num_heads = 6, reconstructions = 4;
};

struct FinetuneConfig {
  std::string init;
  bool allow_missing = false, freeze_encoder = false;
  double layer_decay = 1.0;
};

struct TrainConfig {
  int64_t epochs = 10, seed = 0, log_every = 50, threads = 0;
  std::string runs_dir = "runs", device = "auto", precision = "fp32";
  bool overlap_allreduce = true;
  int64_t bucket_mb = 8;
  int64_t checkpoint_every = 500;
};

struct Config {
  std::string name, description;
  ModelConfig model;
  MoeConfig moe;
  EwaConfig ewa;
  DataConfig data;
  OptimConfig optim;
  PretrainConfig pretrain;
  FinetuneConfig finetune;
  TrainConfig train;
  EvalConfig eval;
  nlohmann::json json;  // the resolved configuration these fields came from
};

// A config file's own keys with its chain of bases merged in: a file may name another as
// "base" (a path relative to it) and give only the keys it changes; objects merge key by key,
// the nearer file winning (as mmcv / Pointcept configs compose). Throws ewa::Error naming the
// file: not a file, invalid JSON, a missing base, a cycle of bases.
nlohmann::json read_config_file(const std::string& path);

// Reads (with its bases) and resolves a JSON config file. Throws ewa::Error naming the file and key.
nlohmann::json load_config_file(const std::string& path);

// Applies "dotted.key=value" to `cfg` (value parsed as JSON, else taken as a string).
// Throws ewa::Error for a malformed assignment or an unknown key.
void apply_override(nlohmann::json& cfg, const std::string& assignment);

// Validates `user` (a full or partial config) against the schema and fills defaults and the
// model preset. `source` names where it came from, for error messages.
nlohmann::json resolve_config(const nlohmann::json& user, const std::string& source);

// Typed view of a resolved config, with cross-key checks (share rate <= (N-1)/N, heads divide
// the width, MoE block indices within depth ...).
Config parse_config(const nlohmann::json& resolved, const std::string& source);

const char* mlp_kind_name(MlpKind kind);

}  // namespace ewa
