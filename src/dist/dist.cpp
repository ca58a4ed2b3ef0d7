#include "dist/dist.h"

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <map>
#include <mutex>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "common/error.h"

#ifdef EWA_HAS_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp declares its class only with it (as LibTorch was built)
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "dist/backends.h"
#endif

extern char** environ;

namespace ewa::dist {

bool built_with_gloo() {
#ifdef EWA_HAS_GLOO
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#ifdef EWA_HAS_NCCL
  return true;
#else
  return false;
#endif
}

namespace {
const char* get(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int64_t integer(const char* name, int64_t lo, int64_t hi) {
  const char* v = get(name);
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (!end || *end || x < lo || x > hi)
    fail(std::string("environment ") + name + "=" + v + ": expected an integer in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "]");
  return x;
}
}  // namespace

Env env_from_environment() {
  Env e;
  const bool torchrun = get("RANK") || get("WORLD_SIZE");
  const bool slurm = !torchrun && get("SLURM_PROCID") && get("SLURM_NTASKS");
  if (!torchrun && !slurm) return e;
  if (torchrun) {
    if (!get("RANK") || !get("WORLD_SIZE")) fail("environment: RANK and WORLD_SIZE must be set together (as torchrun does)");
    e.world_size = integer("WORLD_SIZE", 1, 1 << 16);
    e.rank = integer("RANK", 0, e.world_size - 1);
    e.local_rank = get("LOCAL_RANK") ? integer("LOCAL_RANK", 0, 1 << 16) : e.rank;
    e.source = get("EWA_NPROC_PARENT") ? "ewa --nproc" : "torchrun";
  } else {
    e.world_size = integer("SLURM_NTASKS", 1, 1 << 16);
    e.rank = integer("SLURM_PROCID", 0, e.world_size - 1);
    e.local_rank = get("SLURM_LOCALID") ? integer("SLURM_LOCALID", 0, 1 << 16) : 0;
    e.source = "slurm";
  }
  if (e.world_size > 1) {
    if (!get("MASTER_ADDR")) fail("environment MASTER_ADDR: not set (the host of rank 0, as torchrun sets it)");
    if (!get("MASTER_PORT")) fail("environment MASTER_PORT: not set (a free TCP port on MASTER_ADDR)");
    e.master_addr = get("MASTER_ADDR");
    e.master_port = static_cast<int>(integer("MASTER_PORT", 1, 65535));
  }
  if (const char* a = get("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(a) == "True" || std::string(a) == "1";
  e.prefix = std::string("ewa/attempt_") + (get("TORCHELASTIC_RESTART_COUNT") ? get("TORCHELASTIC_RESTART_COUNT") : "0") + "/";
  return e;
}

std::pair<int64_t, int64_t> shard(int64_t batch, int64_t rank, int64_t world) {
  const int64_t base = batch / world, extra = batch % world;
  const int64_t begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

namespace {
// The launcher's workers, for its signal handler (async-signal-safe: a fixed array).
constexpr int kMaxLocalWorkers = 1024;
pid_t g_workers[kMaxLocalWorkers];
std::atomic<int> g_num_workers{0};
extern "C" void forward_to_workers(int sig) {
  for (int i = 0; i < g_num_workers.load(); ++i) ::kill(g_workers[i], sig);
}
}  // namespace

int run_local_workers(int64_t nproc, const std::vector<std::string>& argv) {
  if (nproc > kMaxLocalWorkers) fail("--nproc: at most " + std::to_string(kMaxLocalWorkers) + " local workers");
  // A free port for the rendezvous: bound by the kernel, then released for rank 0's store.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (sock < 0 || ::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail("--nproc: cannot find a free TCP port on 127.0.0.1");
  const std::string port = std::to_string(ntohs(addr.sin_port));
  ::close(sock);
  const int64_t threads = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()) / nproc);
  // Everything the children need is prepared before fork (they only exec).
  // Each worker's environment: this one without the job variables, plus its own.
  const std::vector<std::string> job_vars = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                             "EWA_NPROC_PARENT", "EWA_WORKER_THREADS"};
  std::vector<std::string> inherited;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (std::find(job_vars.begin(), job_vars.end(), key) == job_vars.end()) inherited.push_back(kv);
  }
  std::vector<std::vector<std::string>> envs(nproc, inherited);
  std::vector<std::vector<char*>> envps(nproc);
  for (int64_t r = 0; r < nproc; ++r) {
    for (const auto& kv : {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(nproc),
                           std::string("MASTER_ADDR=127.0.0.1"), "MASTER_PORT=" + port, std::string("EWA_NPROC_PARENT=1"),
                           "EWA_WORKER_THREADS=" + std::to_string(threads)})
      envs[r].push_back(kv);
    for (auto& kv : envs[r]) envps[r].push_back(const_cast<char*>(kv.c_str()));
    envps[r].push_back(nullptr);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The workers get their own process group, so a Ctrl-C at the terminal reaches this launcher
  // only, which passes every SIGINT / SIGTERM on exactly once (a worker stops cleanly at the
  // first and at once at the second); a worker whose launcher dies gets SIGTERM.
  struct sigaction sa {};
  sa.sa_handler = forward_to_workers;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  const pid_t launcher = ::getpid();
  for (int64_t r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) fail("--nproc: fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(143);  // the launcher died before prctl took effect
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execve("/proc/self/exe", args.data(), envps[r].data());
      ::_exit(127);
    }
    g_workers[g_num_workers.load()] = pid;
    g_num_workers.fetch_add(1);
  }
  // A failed worker dooms the job: the others stop at their next collective (at once when the
  // peer is gone, else after the timeout) and report which rank failed.
  int first_failure = 0;
  for (int w = 0; w < g_num_workers.load(); ++w) {
    const pid_t pid = g_workers[w];
    int status = 0;
    pid_t got;
    while ((got = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (got < 0) continue;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && first_failure == 0) first_failure = code;
  }
  return first_failure;
}

#ifdef EWA_HAS_GLOO
struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;       // Gloo: CPU tensors (and CUDA ones, staged through the CPU, without NCCL)
  c10::intrusive_ptr<c10d::Backend> cuda_pg;  // NCCL: CUDA tensors of this rank's GPU (bind_device)
  torch::Device cuda_device{torch::kCPU};
  // The backend for tensors on `d`, and the device they must be on for it.
  c10d::Backend& backend(const torch::Device& d) { return d.is_cuda() && cuda_pg ? *cuda_pg : *pg; }
  torch::Device comm_device(const torch::Device& d) const { return d.is_cuda() && cuda_pg ? d : torch::Device(torch::kCPU); }
};
#else
struct Group::Impl {};
#endif

namespace {
std::atomic<bool> g_joined{false};
}  // namespace

bool joined_a_job() { return g_joined.load(); }

Group::~Group() {
#ifdef EWA_HAS_GLOO
  // As destroy_process_group(): NCCL shut down cleanly, or aborted after a failed collective (its
  // communicator may be wedged: a plain destruction can hang or crash at exit).
  if (impl_ && impl_->cuda_pg) {
    try {
      if (failed_) impl_->cuda_pg->abort();
      else impl_->cuda_pg->shutdown();
    } catch (const std::exception&) {
    }
  }
#endif
}

std::string gpu_per_rank_error(const std::vector<int64_t>& local_ranks, const std::vector<int64_t>& gpus) {
  std::vector<size_t> without;
  for (size_t r = 0; r < local_ranks.size(); ++r)
    if (local_ranks[r] >= gpus[r]) without.push_back(r);
  if (without.empty()) return "";
  const auto list = [&](auto&& item) {
    std::string s;
    for (size_t i = 0; i < without.size(); ++i)
      s += (i == 0 ? "" : i + 1 == without.size() ? " and " : ", ") + item(without[i]);
    return s;
  };
  const bool one = without.size() == 1;
  const int64_t fewest = gpus[without[0]];
  return std::string(one ? "rank " : "ranks ") + list([](size_t r) { return std::to_string(r); }) + (one ? " has no GPU of its own" : " have no GPU of their own") +
         " (LOCAL_RANK " + list([&](size_t r) { return std::to_string(local_ranks[r]); }) + " on a node with " +
         std::to_string(fewest) + (fewest == 1 ? " GPU" : " GPUs") +
         "): NCCL needs one GPU per rank; start at most as many processes per node as it has GPUs, or set "
         "train.device=cpu to train every rank on the CPU over Gloo";
}

void Group::require_gpu_per_rank(int64_t gpus_on_this_node) {
  if (size() <= 1) return;
  std::vector<torch::Tensor> t = {torch::zeros({size(), 2}, torch::kLong)};
  t[0][rank()][0] = env_.local_rank;
  t[0][rank()][1] = gpus_on_this_node;
  allreduce_sum(t);
  std::vector<int64_t> local(size()), gpus(size());
  for (int64_t r = 0; r < size(); ++r) {
    local[r] = t[0][r][0].item<int64_t>();
    gpus[r] = t[0][r][1].item<int64_t>();
  }
  const std::string error = gpu_per_rank_error(local, gpus);
  if (!error.empty()) fail("train.device: " + error);
}

std::shared_ptr<Group> Group::join(const Env& env, std::chrono::milliseconds timeout) {
  auto g = std::make_shared<Group>();
  g->env_ = env;
  g->timeout_ = timeout;
  if (env.world_size <= 1) return g;
#ifdef EWA_HAS_GLOO
  g->impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0 && !env.agent_store;
    so.numWorkers = env.agent_store ? std::nullopt : std::optional<size_t>(env.world_size);
    so.waitWorkers = false;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    g->impl_->store = c10::make_intrusive<c10d::PrefixStore>(env.prefix, tcp);
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->timeout = timeout;
    // As PyTorch: GLOO_SOCKET_IFNAME names the interface; otherwise a job on this host talks over
    // loopback and a job across hosts over the address this host's name resolves to.
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    const bool local = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
    opts->devices.push_back(iface && *iface ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
                            : local         ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                            : c10d::ProcessGroupGloo::createDefaultDevice());
    g->impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->impl_->store, static_cast<int>(env.rank),
                                                               static_cast<int>(env.world_size), opts);
    g->backend_ = "Gloo";
    g_joined = true;
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    fail("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": cannot join the job at " +
         env.master_addr + ":" + std::to_string(env.master_port) + " within " + std::to_string(timeout.count() / 1000) +
         " s (" + what + ")");
  }
#else
  fail("WORLD_SIZE=" + std::to_string(env.world_size) +
       ": ewa was built without the Gloo headers, so it cannot train in several processes (install libgloo-dev and reconfigure)");
#endif
  return g;
}

void Group::bind_device(const torch::Device& device) {
  if (size() <= 1 || !device.is_cuda()) return;
#ifdef EWA_HAS_NCCL
  if (impl_->cuda_pg) {
    if (impl_->cuda_device != device)
      fail("rank " + std::to_string(rank()) + ": already bound to " + impl_->cuda_device.str() + ", not " + device.str());
    return;
  }
  guarded("NCCL set-up", [&] {
    auto store = c10::make_intrusive<c10d::PrefixStore>("nccl/", impl_->store);
    impl_->cuda_pg = detail::make_nccl(store, static_cast<int>(rank()), static_cast<int>(size()), timeout_, device.index());
  });
  impl_->cuda_device = device;
  backend_ = "NCCL for GPU tensors, Gloo for CPU ones";
#else
  backend_ = "Gloo (GPU tensors staged through the CPU: this build has no NCCL)";
#endif
}

std::string Group::diagnose() {
#ifdef EWA_HAS_GLOO
  // Every rank that sees a collective fail marks itself in the store; after a grace period the
  // ranks without a mark are the ones that died or hang.
  std::vector<int64_t> silent;
  std::vector<std::string> last;
  try {
    impl_->store->set("failed/" + std::to_string(rank()), std::vector<uint8_t>{'1'});
    const auto grace = std::min<std::chrono::milliseconds>(timeout_, std::chrono::milliseconds(3000));
    const auto until = std::chrono::steady_clock::now() + grace;
    for (;;) {
      silent.clear();
      for (int64_t r = 0; r < size(); ++r)
        if (!impl_->store->check({"failed/" + std::to_string(r)})) silent.push_back(r);
      if (silent.empty() || std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (auto r : silent) {
      const std::string key = "heartbeat/" + std::to_string(r);
      std::string step = "none";
      if (impl_->store->check({key})) {
        auto v = impl_->store->get(key);
        step = std::string(v.begin(), v.end());
      }
      last.push_back(step);
    }
  } catch (const std::exception&) {
    return "the rendezvous store of rank 0 at " + env_.master_addr + ":" + std::to_string(env_.master_port) +
           " is unreachable: rank 0 has stopped";
  }
  if (silent.empty()) return "every rank saw the failure";
  std::string out;
  for (size_t i = 0; i < silent.size(); ++i)
    out += (i ? ", " : "") + ("rank " + std::to_string(silent[i]) + " (last finished step " + last[i] + ")");
  return out + (silent.size() == 1 ? " died or hangs" : " died or hang");
#else
  return "";
#endif
}

template <typename F>
void Group::guarded(const char* what, F&& f) {
#ifdef EWA_HAS_GLOO
  try {
    f();
  } catch (const std::exception& e) {
    failed_ = true;
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    fail("rank " + std::to_string(rank()) + ": " + what + " failed (" + msg + "): " + diagnose() + " (timeout " +
         std::to_string(timeout_.count() / 1000) + " s)");
  }
#else
  f();
#endif
}

void Group::allreduce_sum(std::vector<torch::Tensor>& tensors) {
  if (size() <= 1 || tensors.empty()) return;
#ifdef EWA_HAS_GLOO
  guarded("all-reduce", [&] {  // one collective per tensor: Gloo sums a list of one dtype and shape only
    std::vector<std::vector<torch::Tensor>> one;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& t : tensors) {
      one.push_back({t.to(impl_->comm_device(t.device()))});
      works.push_back(impl_->backend(t.device()).allreduce(one.back()));
    }
    for (auto& w : works) w->wait();
    for (size_t i = 0; i < tensors.size(); ++i)
      if (!one[i][0].is_same(tensors[i])) tensors[i].copy_(one[i][0]);
  });
#endif
}

torch::Tensor Group::all_gather_rows(const torch::Tensor& rows) {
  if (size() <= 1) return rows;
  std::vector<torch::Tensor> counts = {torch::zeros({size()}, torch::kLong)};
  counts[0][rank()] = rows.size(0);
  allreduce_sum(counts);
  const int64_t offset = counts[0].narrow(0, 0, rank()).sum().item<int64_t>(), total = counts[0].sum().item<int64_t>();
  auto shape = rows.sizes().vec();
  shape[0] = total;
  std::vector<torch::Tensor> all = {torch::zeros(shape, rows.options())};
  all[0].narrow(0, offset, rows.size(0)).copy_(rows);
  allreduce_sum(all);
  return all[0];
}

#ifdef EWA_HAS_GLOO
struct GradientSync::Impl {
  Group* group = nullptr;
  bool overlap = false;
  std::vector<std::vector<torch::Tensor>> buckets;   // parameters, reverse registration order
  std::vector<int64_t> bucket_of;                    // parameter index -> bucket
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive (they hold the hooks)
  std::vector<uintptr_t> hook_keys;
  std::mutex mu;
  bool active = false;
  double scale = 1;
  std::vector<int64_t> pending;                      // gradients a bucket still waits for
  int64_t next = 0;                                  // first bucket not yet started
  int64_t started_in_backward = 0;
  std::vector<std::vector<torch::Tensor>> flats;     // per bucket, on the communication device
  std::vector<c10::intrusive_ptr<c10d::Work>> works;

  // Starts bucket b's all-reduce (the caller holds mu and keeps the bucket order).
  void start(int64_t b) {
    std::vector<torch::Tensor> parts;
    for (const auto& p : buckets[b])
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    const auto device = buckets[b][0].device();
    flats[b] = {torch::cat(parts).mul_(scale).to(group->impl_->comm_device(device))};
    works.push_back(group->impl_->backend(device).allreduce(flats[b]));
  }
  void ready(int64_t index) {
    std::lock_guard<std::mutex> lock(mu);
    if (!active) return;
    const int64_t b = bucket_of[index];
    if (--pending[b] > 0) return;
    while (next < int64_t(buckets.size()) && pending[next] == 0) {
      start(next++);
      ++started_in_backward;
    }
  }
};
#else
struct GradientSync::Impl {};
#endif

GradientSync::GradientSync(Group& group, const std::vector<torch::Tensor>& params, bool overlap, int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>()) {
#ifdef EWA_HAS_GLOO
  auto& m = *impl_;
  m.group = &group;
  m.overlap = overlap && group.size() > 1;
  std::vector<torch::Tensor> trainable;
  for (const auto& p : params)
    if (p.requires_grad()) trainable.push_back(p);
  int64_t bytes = 0;
  for (auto it = trainable.rbegin(); it != trainable.rend(); ++it) {
    if (m.buckets.empty() || bytes >= bucket_bytes || it->device() != m.buckets.back()[0].device())
      m.buckets.emplace_back(), bytes = 0;
    m.buckets.back().push_back(*it);
    bytes += it->numel() * static_cast<int64_t>(it->element_size());
  }
  m.flats.resize(m.buckets.size());
  if (!m.overlap) return;
  int64_t index = 0;
  for (size_t b = 0; b < m.buckets.size(); ++b)
    for (const auto& p : m.buckets[b]) {
      m.bucket_of.push_back(int64_t(b));
      auto acc = torch::autograd::impl::grad_accumulator(p);
      Impl* self = &m;
      m.hook_keys.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [self, index](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            self->ready(index);
            return outputs;
          })));
      m.accumulators.push_back(std::move(acc));
      ++index;
    }
#endif
}

GradientSync::~GradientSync() {
#ifdef EWA_HAS_GLOO
  for (size_t i = 0; i < impl_->accumulators.size(); ++i) impl_->accumulators[i]->del_post_hook(impl_->hook_keys[i]);
#endif
}

int64_t GradientSync::num_buckets() const {
#ifdef EWA_HAS_GLOO
  return int64_t(impl_->buckets.size());
#else
  return 0;
#endif
}

int64_t GradientSync::started_in_backward() const {
#ifdef EWA_HAS_GLOO
  return impl_->started_in_backward;
#else
  return 0;
#endif
}

void GradientSync::begin(double scale) {
#ifdef EWA_HAS_GLOO
  auto& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  m.scale = scale;
  m.next = 0;
  m.started_in_backward = 0;
  m.works.clear();
  m.pending.clear();
  for (const auto& b : m.buckets) m.pending.push_back(int64_t(b.size()));
  m.active = m.overlap && m.group->size() > 1;
#endif
}

void GradientSync::finish() {
#ifdef EWA_HAS_GLOO
  auto& m = *impl_;
  Group& g = *m.group;
  if (g.size() <= 1 || m.buckets.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> got_any;
  g.guarded("gradient all-reduce", [&] {
    std::lock_guard<std::mutex> lock(m.mu);
    m.active = false;
    while (m.next < int64_t(m.buckets.size())) m.start(m.next++);
    // Which parameters got a gradient on some rank: the others stay without one.
    std::vector<float> got;
    for (const auto& b : m.buckets)
      for (const auto& p : b) got.push_back(p.grad().defined() ? 1.f : 0.f);
    const auto device = m.buckets[0][0].device();
    got_any = {torch::tensor(got).to(g.impl_->comm_device(device))};
    m.works.push_back(g.impl_->backend(device).allreduce(got_any));
    for (auto& w : m.works) w->wait();
  });
  const auto any_cpu = got_any[0].cpu();
  auto any = any_cpu.accessor<float, 1>();
  int64_t k = 0;
  for (size_t i = 0; i < m.buckets.size(); ++i) {
    int64_t offset = 0;
    for (const auto& p : m.buckets[i]) {
      auto sum = m.flats[i][0].narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(sum);
      else if (any[k] > 0) p.mutable_grad() = sum.to(p.device(), /*non_blocking=*/false, /*copy=*/true);
      offset += p.numel();
      ++k;
    }
  }
  m.works.clear();
  g.comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#endif
}

void Group::broadcast(std::vector<torch::Tensor>& tensors) {
  if (size() <= 1 || tensors.empty()) return;
#ifdef EWA_HAS_GLOO
  guarded("broadcast", [&] {
    // One collective per dtype: the tensors of a dtype travel flattened together.
    std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
    for (auto& t : tensors) by_type[t.scalar_type()].push_back(t);
    for (auto& [type, ts] : by_type) {
      std::vector<torch::Tensor> parts;
      for (const auto& t : ts) parts.push_back(t.reshape({-1}));
      const auto device = ts[0].device();
      std::vector<torch::Tensor> flat = {torch::cat(parts).to(impl_->comm_device(device))};
      impl_->backend(device).broadcast(flat)->wait();
      int64_t offset = 0;
      for (auto& t : ts) {
        t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  });
#endif
}

void Group::heartbeat(int64_t step) {
  if (size() <= 1) return;
#ifdef EWA_HAS_GLOO
  const std::string v = std::to_string(step);
  guarded("heartbeat", [&] { impl_->store->set("heartbeat/" + std::to_string(rank()), std::vector<uint8_t>(v.begin(), v.end())); });
#endif
}

double Group::max_difference(const std::vector<torch::Tensor>& tensors) {
  if (size() <= 1 || tensors.empty()) return 0;
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(torch::kDouble).cpu());
  auto hi = torch::cat(flat), lo = hi.clone();
#ifdef EWA_HAS_GLOO
  guarded("consistency check", [&] {
    std::vector<torch::Tensor> a = {hi}, b = {lo};
    c10d::AllreduceOptions max_op, min_op;
    max_op.reduceOp = c10d::ReduceOp::MAX;
    min_op.reduceOp = c10d::ReduceOp::MIN;
    impl_->pg->allreduce(a, max_op)->wait();
    impl_->pg->allreduce(b, min_op)->wait();
  });
#endif
  return (hi - lo).abs().max().item<double>();
}

}  // namespace ewa::dist
