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
};

// AdamW weight decay applies to weight matrices only: not to biases (also the MoE's stacked
// b1/b2), norms, class tokens or position embeddings (timm's rule).
bool uses_weight_decay(const std::string& name, const torch::Tensor& param);

}  // namespace ewa::models
