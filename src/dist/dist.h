// Multi-process data-parallel training over PyTorch's own c10d: a TCPStore rendezvous set up the
// way torchrun (or Slurm) describes the job in the environment, and a Gloo process group for
// the collectives (gradients, metrics, parameter broadcast). Built only with the Gloo headers
// (Debian's libgloo-dev; the implementation is the one inside LibTorch), EWA_HAS_GLOO.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ewa::dist {

bool built_with_gloo();
// Whether collectives on CUDA tensors can go through NCCL (CUDA builds with nccl.h).
bool built_with_nccl();

// Where this process sits in the job.
struct Env {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;  // torchrun's agent hosts the TCPStore: every rank is a client
  std::string prefix;        // store key prefix (torchrun: its restart attempt)
  std::string source = "single process";  // "torchrun", "slurm", "ewa --nproc" or "single process"
};

// torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT), else Slurm's (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR / MASTER_PORT), else a single process.
// Malformed or inconsistent values are errors naming the variable.
Env env_from_environment();

// Rows [begin, end) of a global batch of `batch` rows that rank `rank` of `world` takes: contiguous
// shares whose sizes differ by at most one, the first ranks taking the larger ones.
std::pair<int64_t, int64_t> shard(int64_t batch, int64_t rank, int64_t world);

// `ewa ... --nproc N`: runs `argv` (this program) as N local worker processes of one job
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, a free MASTER_PORT, each worker with
// cores / N torch threads), waits for all, and returns the first non-zero exit status (0 when
// every worker succeeded).
int run_local_workers(int64_t nproc, const std::vector<std::string>& argv);

class Group {
 public:
  // A single process (no communication).
  Group() = default;
  // Joins the job described by `env` (world_size > 1): rendezvous on the TCPStore, then a Gloo
  // process group. Every collective gives up after `timeout` with an error naming the ranks that
  // fell behind.
  static std::shared_ptr<Group> join(const Env& env, std::chrono::milliseconds timeout);
  ~Group();

  int64_t rank() const { return env_.rank; }
  int64_t size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const Env& env() const { return env_; }
  // The tensors this rank trains live on `device`. A GPU gets an NCCL process group (on the same
  // store) for the collectives on its tensors, as PyTorch's "cpu:gloo,cuda:nccl"; CPU tensors stay
  // on Gloo. Without NCCL in the build, GPU tensors are staged through the CPU for Gloo.
  void bind_device(const torch::Device& device);
  // Before NCCL is touched: every rank of the job needs a GPU of its own on its node (LOCAL_RANK <
  // `gpus_on_this_node`), as NCCL refuses two ranks on one GPU ("invalid usage"). Collective (over
  // Gloo), so every rank stops with the same one-line error naming the ranks without one.
  void require_gpu_per_rank(int64_t gpus_on_this_node);
  // The backends in use, for the start-up table (e.g. "Gloo").
  const std::string& backend() const { return backend_; }

  // In-place sums over ranks (CPU tensors of any floating or integer type).
  void allreduce_sum(std::vector<torch::Tensor>& tensors);
  // Every rank's rows [n_r, ...] joined in rank order, [sum n_r, ...] on every rank (PyTorch's
  // all_gather + cat, as MoCo's concat_all_gather; the shares may differ in size). Two all-reduces
  // (the sizes, then the rows in place of zeros: exact). A single process: `rows` itself.
  torch::Tensor all_gather_rows(const torch::Tensor& rows);
  // Copies rank 0's tensors into every rank's (in place; one collective per dtype).
  void broadcast(std::vector<torch::Tensor>& tensors);
  // Records that this rank reached `step` (the diagnosis of a timeout reads it).
  void heartbeat(int64_t step);
  // Largest absolute difference of `tensors` between ranks (0 when identical).
  double max_difference(const std::vector<torch::Tensor>& tensors);
  // Seconds spent waiting for gradient communication so far (GradientSync::finish).
  double comm_seconds() const { return comm_seconds_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Env env_;
  std::chrono::milliseconds timeout_{0};
  double comm_seconds_ = 0;
  bool failed_ = false;  // a collective failed: the destructor aborts NCCL instead of shutting it down
  std::string backend_ = "none";
  friend class GradientSync;
  // Runs a collective; turns c10d's failure into ewa::Error naming the lagging ranks.
  template <typename F>
  void guarded(const char* what, F&& f);
  std::string diagnose();
};

// True after a Group of several ranks was joined in this process (main ends such a process
// without running static destructors once it has reported an error: see apps/ewa.cpp).
bool joined_a_job();

// The message of require_gpu_per_rank for `local_ranks` [world] on nodes of `gpus` [world] GPUs;
// empty when every rank has a GPU of its own.
std::string gpu_per_rank_error(const std::vector<int64_t>& local_ranks, const std::vector<int64_t>& gpus);

// Data-parallel gradient averaging for a model's trainable parameters, in the manner of DDP's
// Reducer: the parameters go into buckets of about `bucket_bytes` in reverse registration order
// (the order backward produces them). Each step, every rank sends every bucket (zeros for a
// parameter it gave no gradient), in bucket order, so the collectives match. With `overlap` a
// bucket's all-reduce starts during backward, once autograd has accumulated all its gradients
// (post-hooks on the gradient accumulators) and the buckets before it have started; without it,
// all start in finish().
class GradientSync {
 public:
  GradientSync(Group& group, const std::vector<torch::Tensor>& params, bool overlap, int64_t bucket_bytes = 8 << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;
  // Before backward: this rank's gradients are scaled by `scale` (its share of the global batch).
  void begin(double scale);
  // After backward: every gradient becomes the sum over ranks of the scaled ones. A parameter
  // that no rank gave a gradient keeps none (AdamW skips it, as in a single process).
  void finish();
  int64_t num_buckets() const;
  // Buckets whose all-reduce started during the last backward (overlap only).
  int64_t started_in_backward() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ewa::dist
