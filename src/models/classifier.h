// Base of every classification model: forward_features -> forward_head, plus the auxiliary
// loss of routed MoE layers.
#pragma once
#include <torch/torch.h>

namespace ewa::models {

class ClassifierImpl : public torch::nn::Module {
 public:
  // Pooled features [B, D].
  virtual torch::Tensor forward_features(const torch::Tensor& x) = 0;
  // Logits [B, num_classes] from features.
  virtual torch::Tensor forward_head(const torch::Tensor& features) = 0;
  torch::Tensor forward(const torch::Tensor& x) { return forward_head(forward_features(x)); }

  // Sum of the FFN auxiliary losses of the last forward pass (0 when there are none).
  torch::Tensor aux_loss();

  // The classification head: its keys start fresh when fine-tuning for a new task.
  virtual bool is_head(const std::string& name) const = 0;
  virtual std::shared_ptr<torch::nn::Module> head_module() = 0;
  // Keys that fine-tuning may start fresh when the pretrained file lacks them or holds another
  // shape: the head, and what a pretraining model does not have (Point-MAE's cls_token, cls_pos).
  virtual bool may_start_fresh(const std::string& name) const { return is_head(name); }
  // Layer-wise learning-rate decay: embedding = 0, block i = i + 1, final norm and head =
  // num_layers() = depth + 1.
  virtual int64_t num_layers() const = 0;
  virtual int64_t layer_of(const std::string& name) const = 0;
};

// The block index of "<blocks_prefix>N.<rest>" + 1, or -1 when `name` is not in a block.
int64_t block_layer(const std::string& name, const std::string& blocks_prefix);

// AdamW weight decay applies to weight matrices only: not to biases (also the MoE's stacked
// b1/b2), norms, class tokens or position embeddings (timm's rule).
bool uses_weight_decay(const std::string& name, const torch::Tensor& param);

}  // namespace ewa::models
