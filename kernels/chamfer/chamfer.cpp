// Argument checks, dispatch and autograd for the Chamfer distance (see chamfer.h).
#include "kernels/chamfer/chamfer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

namespace ewa::kernels {
namespace {

void check_inputs(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.defined() && a.dim() == 3 && a.size(2) == 3 && a.size(1) >= 1,
              "chamfer: argument 'a' must be [B, N, 3] with N >= 1, got ", a.sizes());
  TORCH_CHECK(b.defined() && b.dim() == 3 && b.size(2) == 3 && b.size(1) >= 1,
              "chamfer: argument 'b' must be [B, M, 3] with M >= 1, got ", b.sizes());
  TORCH_CHECK(a.size(0) == b.size(0), "chamfer: batch sizes differ: a ", a.size(0), ", b ", b.size(0));
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat,
              "chamfer: arguments 'a' and 'b' must be float32, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "chamfer: 'a' and 'b' are on different devices");
}

// {dist_a, idx_a, dist_b, idx_b} of contiguous a, b.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> nearest(const at::Tensor& a, const at::Tensor& b) {
  const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
  auto dist_a = at::empty({B, N}, a.options()), dist_b = at::empty({B, M}, a.options());
  auto idx_a = at::empty({B, N}, a.options().dtype(at::kLong)), idx_b = at::empty({B, M}, a.options().dtype(at::kLong));
  if (a.is_cuda()) {
#ifdef EWA_WITH_CUDA
    chamfer_nearest_cuda(a, b, dist_a, idx_a, dist_b, idx_b);
    return {dist_a, idx_a, dist_b, idx_b};
#else
    TORCH_CHECK(false, "chamfer: ewa was built without CUDA; got a CUDA tensor");
#endif
  }
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float *da = dist_a.data_ptr<float>(), *db = dist_b.data_ptr<float>();
  int64_t *ia = idx_a.data_ptr<int64_t>(), *ib = idx_b.data_ptr<int64_t>();
  at::parallel_for(0, 2 * B, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c = t / 2;
      if (t % 2 == 0) chamfer_nearest_cpu(pa + c * N * 3, N, pb + c * M * 3, M, da + c * N, ia + c * N);
      else chamfer_nearest_cpu(pb + c * M * 3, M, pa + c * N * 3, N, db + c * M, ib + c * M);
    }
  });
  return {dist_a, idx_a, dist_b, idx_b};
}

// Autograd node: (a, b) -> (dist_a, dist_b).
struct ChamferFunction : public torch::autograd::Function<ChamferFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                                                const at::Tensor& b) {
    auto ac = a.contiguous(), bc = b.contiguous();
    auto [dist_a, idx_a, dist_b, idx_b] = nearest(ac, bc);
    ctx->save_for_backward({ac, bc, idx_a, idx_b});
    return {dist_a, dist_b};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &b = saved[1], &idx_a = saved[2], &idx_b = saved[3];
    auto ga = grads[0].defined() ? grads[0].contiguous() : at::zeros_like(idx_a, a.options());
    auto gb = grads[1].defined() ? grads[1].contiguous() : at::zeros_like(idx_b, b.options());
    auto grad_a = at::zeros_like(a), grad_b = at::zeros_like(b);
    const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
    if (a.is_cuda()) {
#ifdef EWA_WITH_CUDA
      chamfer_backward_cuda(a, b, idx_a, idx_b, ga, gb, grad_a, grad_b);
      return {grad_a, grad_b};
#endif
    }
    const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
    const float *pga = ga.data_ptr<float>(), *pgb = gb.data_ptr<float>();
    const int64_t *ia = idx_a.data_ptr<int64_t>(), *ib = idx_b.data_ptr<int64_t>();
    float *gra = grad_a.data_ptr<float>(), *grb = grad_b.data_ptr<float>();
    // Each cloud pair writes only its own rows, so clouds run in parallel.
    at::parallel_for(0, B, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        chamfer_backward_cpu(pa + c * N * 3, N, pb + c * M * 3, ia + c * N, pga + c * N, gra + c * N * 3, grb + c * M * 3);
        chamfer_backward_cpu(pb + c * M * 3, M, pa + c * N * 3, ib + c * M, pgb + c * M, grb + c * M * 3, gra + c * N * 3);
      }
    });
    return {grad_a, grad_b};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> chamfer_nearest(const at::Tensor& a, const at::Tensor& b) {
  check_inputs(a, b);
  at::NoGradGuard guard;
  return nearest(a.contiguous(), b.contiguous());
}

at::Tensor chamfer_distance_l2(const at::Tensor& a, const at::Tensor& b) {
  check_inputs(a, b);
  auto d = ChamferFunction::apply(a, b);
  return d[0].mean() + d[1].mean();
}

at::Tensor chamfer_distance_l1(const at::Tensor& a, const at::Tensor& b) {
  check_inputs(a, b);
  auto d = ChamferFunction::apply(a, b);
  return (d[0].clamp_min(1e-12).sqrt().mean() + d[1].clamp_min(1e-12).sqrt().mean()) / 2;
}

}  // namespace ewa::kernels
