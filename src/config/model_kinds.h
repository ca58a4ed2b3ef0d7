// The registry of model kinds: what ewa knows about each `model.name` without building it. One
// entry per kind says what it reads, which task trains it and under which subcommand, how it is
// evaluated, exported and shown, and the config checks of its own; everything else asks the
// registry (no `model.name` comparison outside it). The model classes live in src/models
// (models/registry.cpp builds a classifier by its entry's input), the tasks in src/tasks
// (tasks::run_task builds the task by its entry's task). docs/architecture.md says what a new
// kind must provide.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"

namespace ewa {

// What a kind reads.
enum class ModelInput { Points, Images };

// The task that trains a kind (tasks::run_task), which also decides how `ewa eval`, `predict`,
// `convert` and `export` treat its checkpoints.
enum class ModelTask {
  Classify,      // a classifier (tasks/classify.cpp): eval = accuracy; export = the anchor's dense layout
  Segment,       // part segmentation (tasks/segmentation.cpp): eval = mIoU; export = Point-MAE's seg layout
  PretrainMae,   // Point-MAE's masked autoencoder (tasks/point_mae.cpp): no export (fine-tune it instead)
  PretrainDvae,  // Point-BERT's dVAE tokenizer (tasks/dvae.cpp): export = {'base_model': dVAE}
  PretrainBert,  // Point-BERT's masked point modelling (tasks/point_bert.cpp): export = the Point_BERT module
};

// "<source>: key '<key>': <why>" (throws ewa::Error): how a kind's check reports a bad value.
using KeyFail = std::function<void(const std::string& key, const std::string& why)>;

struct ModelKind {
  std::string name;     // model.name
  std::string summary;  // one phrase for the config reference and errors
  ModelInput input;
  ModelTask task;
  std::string command;  // the subcommand that trains it: "train" or "pretrain"
  // model.variant values it accepts; empty = it has none (the key is ignored).
  std::vector<std::string> variants;
  bool transformer;     // has transformer blocks, so moe.* and ewa.* apply
  // What `ewa show` draws of its checkpoints (its --color views); empty = `ewa show` has no view of
  // it, and `no_show` says why.
  std::vector<std::string> show_views;
  std::string no_show;
  // Checks of the kind's own keys (called by parse_config after the common checks).
  std::function<void(const Config&, const KeyFail&)> check;

  bool trained_by(const std::string& subcommand) const { return command == subcommand; }
  bool is_classifier() const { return task == ModelTask::Classify; }
  bool is_segmenter() const { return task == ModelTask::Segment; }
  bool is_pretraining() const { return command == "pretrain"; }
  // A Point-MAE / Point-BERT point encoder whose features the SVM probe and few-shot read.
  bool is_point_classifier() const { return is_classifier() && input == ModelInput::Points; }
};

// Every kind, in the order the reference lists them.
const std::vector<ModelKind>& model_kinds();
// The entry of `name`; a one-line error naming model.name and the known kinds otherwise.
const ModelKind& model_kind(const std::string& name);
// The entry of cfg.model.name.
inline const ModelKind& model_kind(const Config& cfg) { return model_kind(cfg.model.name); }
// The kinds' names (the schema's model.name choices).
std::vector<std::string> model_kind_names();
// The kind that `task` trains on `input` (e.g. the segmenter of point clouds); null when none.
const ModelKind* model_kind_for(ModelTask task, ModelInput input);

// Stops with a one-line error unless `subcommand` trains cfg's kind ("model.name: point_mae is a
// pretraining model: run `ewa pretrain` with this config").
void require_trained_by(const Config& cfg, const std::string& subcommand);

// The config reference's text for model.name (every kind and its summary).
std::string model_kinds_help();

}  // namespace ewa
