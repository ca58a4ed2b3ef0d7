// Experiment configuration: JSON file -> validated, resolved JSON -> typed structs.
// Every key, its default and meaning lives in config/schema.cpp (docs/config.md): the structs
// below take their defaults from there, and a Config is always parsed from its JSON (change one
// with Config::with, never field by field).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ewa {

enum class MlpKind { Dense, Rup, Routed };

struct ModelConfig {
  ModelConfig();  // the schema's defaults (config/schema.cpp: the one place they are written)
  std::string name{}, variant{}, init{};
  int64_t num_groups{}, group_size{}, encoder_dims{}, head_hidden{};
  double head_dropout{};
  int64_t img_size{}, in_chans{}, num_classes{}, patch_size{};
  int64_t embed_dim{}, depth{}, num_heads{};
  double mlp_ratio{};
  bool qkv_bias{};
  double drop_rate{}, attn_drop_rate{}, drop_path_rate{};
  int64_t num_categories{}, seg_fp_hidden{}, seg_fp_dim{}, seg_head_hidden{};  // point_seg
};

struct MoeConfig {
  MoeConfig();  // the schema's defaults
  MlpKind kind{};
  std::vector<int64_t> blocks;  // resolved block indices that get the MoE
  int64_t num_experts{}, top_k{};
  double capacity_factor{}, eval_capacity_factor{}, aux_loss_weight{};
};

struct EwaConfig {
  EwaConfig();  // the schema's defaults
  bool enabled{};
  double share_rate{};
  std::string schedule{};
  int64_t ramp_steps{}, until_step{};
};

struct DataConfig {
  DataConfig();  // the schema's defaults
  std::string dataset{}, root{}, variant{}, cache_dir{}, pipeline{};
  int64_t batch_size{}, eval_batch_size{}, train_limit{}, train_per_class{}, test_limit{}, random_crop_padding{};
  int64_t num_points{}, votes{}, fps_points{}, source_points{};
  int64_t way{}, shot{}, fold{};  // modelnet_fewshot
  double val_fraction{}, scale_low{}, scale_high{}, translate{}, jitter{};
  bool hflip{}, use_normals{}, rotate_up{}, normalize{}, drop_last{};
  int64_t image_size{};  // image folders
  double crop_pct{}, rrc_scale_min{};
  std::string interpolation{};
  // Images, training (timm's recipe): Mixup / CutMix of each batch, random erasing of each image.
  double mixup{}, cutmix{}, mixup_prob{}, mixup_switch_prob{}, reprob{};
  std::string remode{};
  int64_t recount{};

  bool is_point_cloud() const;
};

struct OptimConfig {
  OptimConfig();  // the schema's defaults
  double lr{}, min_lr{}, weight_decay{}, beta1{}, beta2{};
  double warmup_epochs{}, label_smoothing{}, grad_clip{};
  std::string schedule{};   // "step_cosine" or "timm_epoch" (Point-MAE / Point-BERT)
  double warmup_lr_init{};  // timm_epoch
  int64_t cosine_epochs{};  // timm_epoch: t_initial; 0 = train.epochs
};

struct EvalConfig {
  EvalConfig();  // the schema's defaults
  int64_t vote_views{}, vote_repeats{}, every{};
  bool final_vote{}, save_best_on_test{};
};

struct PretrainConfig {
  PretrainConfig();  // the schema's defaults
  double mask_ratio{};
  std::string mask_type{}, loss{};
  int64_t decoder_depth{}, decoder_num_heads{}, reconstructions{};
  int64_t num_tokens{}, tokens_dims{}, decoder_dims{}, kl_delay{}, kl_ramp{}, temperature_ramp{};  // point_bert_dvae
  double kl_weight{}, temperature_start{}, temperature_end{};
  std::string tokenizer{}, svm_dataset{}, svm_root{};  // point_bert
  double mask_ratio_min{}, mask_ratio_max{}, momentum{}, contrast_temperature{};
  int64_t queue_size{}, cls_dim{};
  bool token_loss{}, mix_loss{}, moco_loss{}, tokenizer_batch_stats{};
};

struct FinetuneConfig {
  FinetuneConfig();  // the schema's defaults
  std::string init{};
  bool allow_missing{}, freeze_encoder{};
  double layer_decay{};
};

struct TrainConfig {
  TrainConfig();  // the schema's defaults
  int64_t epochs{}, seed{}, log_every{}, threads{};
  std::string runs_dir{}, device{}, precision{};
  bool overlap_allreduce{}, tensorboard{};
  double ema_decay{};
  int64_t bucket_mb{};
  int64_t checkpoint_every{};
};

// JSON <-> struct for the sections that map one to one (key names equal field names).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelConfig, name, variant, init, num_groups, group_size, encoder_dims, head_hidden,
                                   head_dropout, img_size, in_chans, num_classes, patch_size, embed_dim, depth,
                                   num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate,
                                   num_categories, seg_fp_hidden, seg_fp_dim, seg_head_hidden)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EwaConfig, enabled, share_rate, schedule, ramp_steps, until_step)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DataConfig, dataset, root, variant, cache_dir, pipeline, batch_size, eval_batch_size,
                                   train_limit, train_per_class, test_limit, random_crop_padding, num_points, votes, fps_points,
                                   source_points, way, shot, fold, val_fraction, scale_low, scale_high, translate,
                                   jitter, hflip, use_normals, rotate_up, normalize, drop_last, image_size, crop_pct,
                                   rrc_scale_min, interpolation, mixup, cutmix, mixup_prob, mixup_switch_prob, reprob,
                                   remode, recount)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OptimConfig, lr, min_lr, weight_decay, beta1, beta2, warmup_epochs, label_smoothing,
                                   grad_clip, schedule, warmup_lr_init, cosine_epochs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EvalConfig, vote_views, vote_repeats, every, final_vote, save_best_on_test)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PretrainConfig, mask_ratio, mask_type, loss, decoder_depth, decoder_num_heads,
                                   reconstructions, num_tokens, tokens_dims, decoder_dims, kl_delay, kl_ramp,
                                   temperature_ramp, kl_weight, temperature_start, temperature_end, tokenizer,
                                   svm_dataset, svm_root, mask_ratio_min, mask_ratio_max, momentum,
                                   contrast_temperature, queue_size, cls_dim, token_loss, mix_loss, moco_loss,
                                   tokenizer_batch_stats)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FinetuneConfig, init, allow_missing, freeze_encoder, layer_decay)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainConfig, epochs, seed, log_every, threads, runs_dir, device, precision,
                                   overlap_allreduce, tensorboard, ema_decay, bucket_mb, checkpoint_every)

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

  // This config with `changes` (dotted key -> value) made in its JSON, each checked against the
  // schema, and every field parsed again from it, so the fields and the JSON cannot disagree.
  Config with(const std::map<std::string, nlohmann::json>& changes) const;
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

// A config's own keys (a file read with its bases, a checkpoint's config, a study's arm) with
// "dotted.key=value" overrides (--set) applied to them, then resolved once and parsed: a
// `--set model.preset=small` fills the size keys the keys do not give, as the same preset written
// in the file would. `source` names where the keys came from, for error messages.
Config config_from_keys(const nlohmann::json& keys, const std::vector<std::string>& overrides, const std::string& source);

// A config file (or the defaults when `path` is empty) with its overrides: config_from_keys of
// read_config_file(path). What every command that takes --config reads.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

const char* mlp_kind_name(MlpKind kind);

}  // namespace ewa
