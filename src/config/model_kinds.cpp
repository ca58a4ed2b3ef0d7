#include "config/model_kinds.h"

#include "common/error.h"
#include "common/named_table.h"
#include "config/datasets.h"

namespace ewa {
namespace {

void check_point_mae(const Config& c, const KeyFail& bad) {
  if (c.model.embed_dim % c.pretrain.decoder_num_heads != 0)
    bad("pretrain.decoder_num_heads", "must divide model.embed_dim (" + std::to_string(c.model.embed_dim) + "), got " +
                                          std::to_string(c.pretrain.decoder_num_heads));
  if (c.model.encoder_dims != 0 && c.model.encoder_dims != c.model.embed_dim)
    bad("model.encoder_dims", "point_mae needs encoder_dims = embed_dim (or 0)");
  if (c.moe.kind == MlpKind::Routed) bad("moe.kind", "point_mae pretraining supports dense or rup encoders");
}

void check_point_bert_dvae(const Config& c, const KeyFail& bad) {
  if (c.model.group_size % 4 != 0)
    bad("model.group_size", "point_bert_dvae folds every coarse point into 2 x 2 fine points: needs a multiple of 4, got " +
                                std::to_string(c.model.group_size));
  if (c.model.num_groups < 4) bad("model.num_groups", "point_bert_dvae's DGCNN takes 4 neighbouring centres: needs at least 4");
}

void check_point_bert(const Config& c, const KeyFail& bad) {
  const auto& p = c.pretrain;
  if (p.tokenizer.empty())
    bad("pretrain.tokenizer", "point_bert predicts the tokens of a trained dVAE: name its checkpoint (ewa pretrain on a "
                              "point_bert_dvae config, or Point-BERT's dvae.pth)");
  if (p.mask_ratio_min > p.mask_ratio_max)
    bad("pretrain.mask_ratio_min", "must not exceed pretrain.mask_ratio_max (" + std::to_string(p.mask_ratio_max) + ")");
  if (static_cast<int64_t>(p.mask_ratio_min * double(c.model.num_groups)) < 1 && p.token_loss)
    bad("pretrain.mask_ratio_min", "masks no patch of " + std::to_string(c.model.num_groups) +
                                       ", so the token loss would have no target: raise it");
  if (c.model.num_groups < 4) bad("model.num_groups", "point_bert's tokenizer (DGCNN over 4 neighbouring centres) needs at least 4");
  if (c.moe.kind == MlpKind::Routed) bad("moe.kind", "point_bert pretraining supports dense or rup (EWA) transformers");
  if (!p.token_loss && !p.mix_loss && !p.moco_loss)
    bad("pretrain.token_loss", "point_bert needs at least one of pretrain.token_loss, mix_loss, moco_loss");
  if (p.svm_dataset.empty() != p.svm_root.empty())
    bad(p.svm_dataset.empty() ? "pretrain.svm_dataset" : "pretrain.svm_root",
        "the SVM monitor needs both pretrain.svm_dataset and pretrain.svm_root");
  if (!p.svm_dataset.empty()) {
    bool known = false;
    for (const auto& d : dataset_table())
      known = known || (p.svm_dataset == d.name && d.point_cloud && !d.segmentation && d.num_classes > 0 && d.variants.empty());
    if (!known)
      bad("pretrain.svm_dataset", "'" + p.svm_dataset + "' is not a labelled point-cloud classification set without "
                                  "variants (e.g. modelnet40, modelnet_h5)");
  }
}

void check_point_seg(const Config& c, const KeyFail& bad) {
  if (c.model.depth % 3 != 0)
    bad("model.depth", "point_seg joins the outputs of blocks depth/3, 2 depth/3 and depth (Point-MAE: 4, 8, 12): "
                       "needs a multiple of 3, got " + std::to_string(c.model.depth));
  if (c.moe.kind == MlpKind::Routed) bad("moe.kind", "point_seg supports dense or rup (EWA) FFNs");
}

void no_checks(const Config&, const KeyFail&) {}

}  // namespace

const std::vector<ModelKind>& model_kinds() {
  // name, summary, input, task, command, variants, transformer, show views, why no view, checks
  static const std::vector<ModelKind> kinds = {
      {"vit", "a 2D image classifier (timm's VisionTransformer)", ModelInput::Images, ModelTask::Classify, "train",
       {}, true, {}, "`ewa show` draws point clouds; the 2D path has no view yet", no_checks},
      {"point_transformer", "a point-cloud classifier, Point-MAE / Point-BERT style", ModelInput::Points,
       ModelTask::Classify, "train", {"point_mae", "point_bert"}, true,
       {"--color class | patches | attention | experts | plain"}, "", no_checks},
      {"point_mae", "Point-MAE's masked-autoencoder pretraining", ModelInput::Points, ModelTask::PretrainMae,
       "pretrain", {"point_mae"}, true, {"visible | masked | reconstruction (--color mae)"}, "", check_point_mae},
      {"point_seg", "Point-MAE's part-segmentation network (a segmentation dataset such as shapenetpart)",
       ModelInput::Points, ModelTask::Segment, "train", {"point_mae"}, true,
       {"predicted parts with a legend (--color parts)"}, "", check_point_seg},
      {"point_bert_dvae", "Point-BERT's dVAE tokenizer, stage 1 of its pretraining", ModelInput::Points,
       ModelTask::PretrainDvae, "pretrain", {}, false, {"input | reconstruction"}, "", check_point_bert_dvae},
      {"point_bert", "Point-BERT's masked point modelling on a trained tokenizer (stage 2, pretrain.tokenizer)",
       ModelInput::Points, ModelTask::PretrainBert, "pretrain", {"point_bert"}, true,
       {"masked patches | predicted tokens"}, "", check_point_bert},
  };
  return kinds;
}

std::vector<std::string> model_kind_names() { return row_names(model_kinds()); }

const ModelKind& model_kind(const std::string& name) { return row_named(model_kinds(), name, "model.name", "model"); }

const ModelKind* model_kind_for(ModelTask task, ModelInput input) {
  for (const auto& k : model_kinds())
    if (k.task == task && k.input == input) return &k;
  return nullptr;
}

void require_trained_by(const Config& cfg, const std::string& subcommand) {
  const ModelKind& kind = model_kind(cfg);
  if (!kind.trained_by(subcommand))
    fail("model.name: " + kind.name + " is " + (kind.is_pretraining() ? "a pretraining model" : "not a pretraining model") +
         " (" + kind.summary + "): run `ewa " + kind.command + "` with this config");
}

std::string model_kinds_help() {
  std::string s = "Model kind (the registry, config/model_kinds.cpp):";
  const auto& kinds = model_kinds();
  for (size_t i = 0; i < kinds.size(); ++i)
    s += std::string(i == 0 ? " " : i + 1 == kinds.size() ? " or " : ", ") + kinds[i].name + " (" + kinds[i].summary +
         "; `ewa " + kinds[i].command + "`)";
  return s + ".";
}

}  // namespace ewa
