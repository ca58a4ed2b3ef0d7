// EvalMode: puts a module in eval mode for a scope and restores its training flag when the scope
// ends, also when it ends by an exception (an evaluation that throws leaves the model as it was).
#pragma once
#include <torch/nn/module.h>

namespace ewa::train {

class EvalMode {
 public:
  explicit EvalMode(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) { module_.eval(); }
  ~EvalMode() { module_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace ewa::train
