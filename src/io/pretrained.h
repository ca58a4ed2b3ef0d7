// Initialising a model from pretrained weights (fine-tuning) and writing a model in the official
// layouts (export). Source files come through io::read_state_dict, so ewa checkpoints, official
// Point-MAE / Point-BERT .pth files and timm state dicts (.pth, .safetensors) all load here.
//
// Key names are normalised first, as the official loaders do: a leading "module." (DataParallel)
// is dropped; "MAE_encoder." (Point-MAE pretraining) and "base_model." prefixes are stripped; when
// the file holds Point-BERT's "transformer_q." encoder, only it is kept (without the prefix and
// without its cls_head) and everything else counts as unused.
// Shapes are matched as the official code's modules store them: a Conv1d weight [out, in, 1]
// loads into our Linear [out, in]. A MoE layer of the model whose file holds a dense FFN gets
// that FFN copied into every expert (EWA fine-tuning starts with equal experts); a MoE layer whose
// file holds another number of experts starts every expert as the mean of the file's; a dense FFN
// of the model whose file holds MoE experts gets their mean (the collapse of docs/method.md).
// A ViT's pos_embed for another image size (timm's 224 px weights on 32 px images) is resampled
// bicubically on its grid; the patch size itself must match.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "io/state_dict.h"

namespace ewa::io {

struct LoadOptions {
  bool allow_missing = false;  // backbone keys absent from the file keep their initialisation
  // Keys that may stay fresh, absent or of another shape: the classification head (a new task),
  // Point-MAE's cls_token / cls_pos (not pretrained); a routed MoE's gate always may.
  std::function<bool(const std::string&)> may_be_fresh = [](const std::string&) { return false; };
  // The file holds the model's own module layout (a whole Point-BERT pretraining module, say):
  // only a "module." prefix is removed, no fine-tuning key rule applies.
  bool own_layout = false;
  // What the error for missing tensors tells the user to do (fine-tuning: the finetune.allow_missing
  // setting, which it honours); empty: that the file does not hold the whole model.
  std::string missing_hint;
};

// The model a weights file holds, judged by its key layout ("module." ignored): name is a
// model.name (point_transformer, point_seg, point_mae, point_bert_dvae, point_bert, vit), variant
// point_mae / point_bert for point_transformer, `what` a phrase for messages ("Point-BERT's dVAE
// tokenizer") and `example` a config of that kind under configs/. All empty when the layout is
// none of the known ones.
struct ImpliedModel {
  std::string name, variant, what, example;
};
ImpliedModel implied_model(const StateDict& sd);

struct LoadReport {
  std::string path, origin;
  std::vector<std::string> loaded;      // model keys copied as they are (after renaming/reshaping)
  std::vector<std::string> expanded;    // MoE expert tensors filled from a dense FFN
  std::vector<std::string> averaged;    // dense FFN tensors from the mean of MoE experts
  std::vector<std::string> resampled;   // a ViT pos_embed interpolated to another grid
  std::vector<std::string> fresh;       // head (and gate) keys left at their initialisation
  std::vector<std::string> missing;     // backbone keys absent from the file
  std::vector<std::string> unexpected;  // file keys the model does not use
  std::vector<std::string> mismatched; // "name: file [..], model [..]"
  // One table: a line per category with its count and the first names (grouped by prefix).
  std::string table() const;
};

// Renames the keys of an official or ewa state dict to ewa's model names (see above). Keys that
// the renaming drops (Point-BERT's momentum encoder, dVAE, ...) go to `dropped`. `own_layout`:
// only "module." is removed (LoadOptions::own_layout).
torch::OrderedDict<std::string, torch::Tensor> normalize_keys(const torch::OrderedDict<std::string, torch::Tensor>& in,
                                                              std::vector<std::string>* dropped = nullptr,
                                                              bool own_layout = false);

// Copies `sd` into `model` (parameters and buffers, BatchNorm statistics included). Throws
// ewa::Error with one line naming the file and the first differences when a backbone key has
// another shape, or is missing and options.allow_missing is false.
LoadReport load_pretrained(torch::nn::Module& model, const StateDict& sd, const LoadOptions& options,
                           const std::string& path);

// The official layout of our dense point models' weights: the mini-PointNet's (and Point-MAE's
// increase_dim) Linear weights [out, in] become Conv1d weights [out, in, 1]; names are unchanged
// (they already are the official ones). Throws ewa::Error if a MoE layer is left (convert first).
torch::OrderedDict<std::string, torch::Tensor> to_official_layout(const torch::OrderedDict<std::string, torch::Tensor>& model);

}  // namespace ewa::io
