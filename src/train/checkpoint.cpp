#include "train/checkpoint.h"

#include <set>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "common/text.h"

namespace ewa::train {
namespace {
using io::PyRef;
using Kind = io::PyValue::Kind;

// AdamW's state as PyTorch's optimizer.state_dict(): parameters numbered in group order.
PyRef optimizer_state(const torch::optim::AdamW& optimizer) {
  PyRef state = io::py_dict(), groups = io::py_list();
  int64_t index = 0;
  for (const auto& g : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(g.options());
    PyRef group = io::py_dict(), params = io::py_list();
    group->set("lr", io::py_float(o.lr()));
    group->set("betas", io::py_list({io::py_float(std::get<0>(o.betas())), io::py_float(std::get<1>(o.betas()))}));
    group->set("eps", io::py_float(o.eps()));
    group->set("weight_decay", io::py_float(o.weight_decay()));
    group->set("amsgrad", io::py_bool(o.amsgrad()));
    for (const auto& p : g.params()) {
      params->items.push_back(io::py_int(index));
      const auto it = optimizer.state().find(p.unsafeGetTensorImpl());
      if (it != optimizer.state().end()) {
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        PyRef entry = io::py_dict();
        entry->set("step", io::py_int(s.step()));
        entry->set("exp_avg", io::py_tensor(s.exp_avg().detach().cpu().clone()));
        entry->set("exp_avg_sq", io::py_tensor(s.exp_avg_sq().detach().cpu().clone()));
        if (s.max_exp_avg_sq().defined()) entry->set("max_exp_avg_sq", io::py_tensor(s.max_exp_avg_sq().detach().cpu().clone()));
        state->dict.emplace_back(io::py_int(index), entry);
      }
      ++index;
    }
    group->set("params", params);
    groups->items.push_back(group);
  }
  PyRef out = io::py_dict();
  out->set("state", state);
  out->set("param_groups", groups);
  return out;
}

}  // namespace

torch::OrderedDict<std::string, torch::Tensor> state_dict(torch::nn::Module& model) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out.insert(p.key(), p.value().detach().to(torch::kCPU).clone());
  for (const auto& b : model.named_buffers()) out.insert(b.key(), b.value().detach().to(torch::kCPU).clone());
  return out;
}

Checkpoint make_checkpoint(torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                           const nlohmann::json& config, int64_t step, int64_t epoch) {
  Checkpoint c;
  c.config = config;
  c.step = step;
  c.epoch = epoch;
  c.model = state_dict(model);
  if (const auto* adamw = dynamic_cast<const torch::optim::AdamW*>(optimizer)) c.optimizer = optimizer_state(*adamw);
  c.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  if (torch::cuda::is_available())
    for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d)
      c.rng_cuda.push_back(at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d))).get_state());
  return c;
}

void load_model_state(torch::nn::Module& model, const Checkpoint& ckpt, const std::string& path) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  auto check = [&](const std::string& name, torch::Tensor target) {
    expected.insert(name);
    const torch::Tensor* src = ckpt.model.find(name);
    if (!src) {
      problems.push_back("missing " + name);
      return;
    }
    if (src->sizes() != target.sizes()) {
      problems.push_back(name + " is " + shape_str(src->sizes()) + " in the checkpoint but " + shape_str(target.sizes()) +
                         " in the model");
      return;
    }
    torch::NoGradGuard guard;
    target.copy_(*src);
  };
  for (const auto& p : model.named_parameters()) check(p.key(), p.value());
  for (const auto& b : model.named_buffers()) check(b.key(), b.value());
  for (const auto& item : ckpt.model)
    if (!expected.count(item.key())) problems.push_back("unexpected " + item.key());
  if (!problems.empty()) {
    std::string msg = "checkpoint " + path + ": does not match the model architecture (" + std::to_string(problems.size()) +
                      " differences: ";
    for (size_t i = 0; i < problems.size() && i < 3; ++i) msg += (i ? "; " : "") + problems[i];
    fail(msg + (problems.size() > 3 ? "; ...)" : ")"));
  }
}

void load_training_state(torch::optim::AdamW& optimizer, const Checkpoint& ckpt, const std::string& path) {
  const auto bad = [&](const std::string& what) { fail("checkpoint " + path + ": optimizer state " + what); };
  if (ckpt.legacy_optimizer)
    fail("checkpoint " + path + ": written by an older ewa (optimizer in LibTorch's archive format), so it cannot be "
         "resumed; its weights still load (--init)");
  if (!ckpt.optimizer) fail("checkpoint " + path + ": has no optimizer state (a converted model cannot be resumed)");
  const PyRef groups = ckpt.optimizer->get("param_groups"), state = ckpt.optimizer->get("state");
  if (!groups || groups->kind != Kind::List || !state || state->kind != Kind::Dict)
    bad("is not {'state': dict, 'param_groups': list}");
  if (groups->items.size() != optimizer.param_groups().size())
    bad("has " + std::to_string(groups->items.size()) + " parameter groups, this model's optimizer " +
        std::to_string(optimizer.param_groups().size()) + " (does not match this model's parameters)");
  std::vector<torch::Tensor> params;  // in the checkpoint's numbering
  for (size_t g = 0; g < groups->items.size(); ++g) {
    const PyRef saved = groups->items[g];
    auto& group = optimizer.param_groups()[g];
    const PyRef ids = saved->kind == Kind::Dict ? saved->get("params") : nullptr;
    if (!ids || ids->kind != Kind::List || ids->items.size() != group.params().size())
      bad("group " + std::to_string(g) + " does not match this model's parameters");
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    const PyRef lr = saved->get("lr"), wd = saved->get("weight_decay");
    if (lr && lr->kind == Kind::Float) o.lr(lr->f);
    if (wd && wd->kind == Kind::Float) o.weight_decay(wd->f);
    for (const auto& p : group.params()) params.push_back(p);
  }
  optimizer.state().clear();
  for (const auto& [k, v] : state->dict) {
    if (k->kind != Kind::Int || k->i < 0 || k->i >= static_cast<int64_t>(params.size()) || v->kind != Kind::Dict)
      bad("names a parameter that this model's optimizer does not have");
    const torch::Tensor& p = params[static_cast<size_t>(k->i)];
    auto tensor = [&](const char* name, bool required) -> torch::Tensor {
      const PyRef t = v->get(name);
      if (!t && !required) return {};
      if (!t || t->kind != Kind::Tensor || t->tensor.sizes() != p.sizes())
        bad("of parameter " + std::to_string(k->i) + ": '" + name + "' is not a tensor of its shape " + shape_str(p.sizes()));
      return t->tensor.to(p.options());
    };
    const PyRef step = v->get("step");
    if (!step || step->kind != Kind::Int) bad("of parameter " + std::to_string(k->i) + " has no integer 'step'");
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step->i);
    s->exp_avg(tensor("exp_avg", true));
    s->exp_avg_sq(tensor("exp_avg_sq", true));
    if (auto m = tensor("max_exp_avg_sq", false); m.defined()) s->max_exp_avg_sq(m);
    optimizer.state()[p.unsafeGetTensorImpl()] = std::move(s);
  }
  if (ckpt.rng_cpu) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(*ckpt.rng_cpu);
  }
  // GPU generators: restored for the GPUs present (a run resumed on fewer GPUs restores those).
  if (!ckpt.rng_cuda.empty() && torch::cuda::is_available()) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(ckpt.rng_cuda.size()), static_cast<int64_t>(torch::cuda::device_count()));
    for (int64_t d = 0; d < n; ++d) {
      at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d)));
      gen.set_state(ckpt.rng_cuda[d]);
    }
  }
}

}  // namespace ewa::train
