// ewa: train, pretrain, fine-tune, evaluate, convert, export and benchmark vision transformers with Experts Weights
// Averaging. Thin main: subcommands live in apps/cmd_*.cpp.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include <c10/util/Exception.h>

#include <torch/version.h>

#include "apps/commands.h"
#include "common/error.h"
#include "common/runtime.h"
#include "common/signals.h"
#include "config/datasets.h"
#include "config/schema.h"
#include "config/sources.h"
#include "data/batch_source.h"
#include "datasets/hdf5.h"
#include "dist/dist.h"
#include "eval/svm_probe.h"
#include "io/image_file.h"
#include "io/point_io.h"
#include "kernels/common/simd.h"
#include "train/checkpoint.h"
#include "viz/plot.h"

namespace ewa::app {

// The exit of a failed command. A process of a multi-process job ends without running static
// destructors once its error is out: after a failed collective the communication libraries'
// own teardown (NCCL's above all) can hang or crash, which would turn our one-line error and exit
// code 1 into a crash report. Our own state is already written or cleaned up by then.
int finish(int code) {
  if (code != 0 && dist::joined_a_job()) {
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(code);
  }
  return code;
}

// `ewa --version`: the version and what this build can do (the optional libraries it was built
// with), so a bug report or a script can tell the variants apart.
std::string version_text() {
  const auto on = [](bool b) { return b ? "on" : "off"; };
  bool cuda = false;
#ifdef EWA_WITH_CUDA
  cuda = true;
#endif
  return std::string("ewa 0.1.0\nbuilt with: CUDA kernels ") + on(cuda) + ", HDF5 " + on(datasets::built_with_hdf5()) + ", PCL " +
         on(io::built_with_pcl()) + ", Open3D " + on(io::built_with_open3d()) + ", cairo " + on(viz::built_with_cairo()) +
         ", liblinear " + on(eval::built_with_liblinear()) + ", PNG " + on(io::built_with_png()) + ", JPEG " +
         on(io::built_with_jpeg()) + ", Gloo " + on(dist::built_with_gloo()) + ", NCCL " +
         on(dist::built_with_nccl()) + "; LibTorch " + TORCH_VERSION;
}

CLI::Validator at_least(int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        int64_t v = 0;
        size_t used = 0;
        try {
          v = std::stoll(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size() || v < minimum)
          return "expected an integer >= " + std::to_string(minimum) + ", got '" + text + "'";
        return "";
      },
      "INT>=" + std::to_string(minimum));
}

void print_line(const std::string& line) { std::cout << line << std::endl; }

int64_t category_option(const std::string& name) {
  if (name.empty()) return -1;
  std::string choices;
  for (size_t i = 0; i < shapenet_part_categories().size(); ++i) {
    const auto& c = shapenet_part_categories()[i].name;
    if (c.size() == name.size() &&
        std::equal(c.begin(), c.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return static_cast<int64_t>(i);
    choices += (choices.empty() ? "" : ", ") + c;
  }
  fail("--category: '" + name + "' is not a ShapeNetPart category (one of " + choices + ")");
}

namespace {
std::vector<std::string> g_argv;
}

void set_program_args(int argc, char** argv) { g_argv.assign(argv, argv + argc); }

void add_split_option(CLI::App* cmd, std::string& split) {
  cmd->add_option("--split", split, "Split: train, val (needs data.val_fraction > 0) or test")
      ->check(CLI::IsMember(data::split_names()))
      ->capture_default_str();
}

void add_protocol_options(CLI::App* cmd, ProtocolArgs& args, bool repeats) {
  cmd->add_option("--protocol", args.protocol,
                  "single (one pass), tta (logits of 1 clean + N-1 augmented passes averaged, N = --votes) or vote "
                  "(the official vote: --views views" +
                      std::string(repeats ? ", repeated --repeats times; max, mean and sd reported" : "") +
                      "); default: tta when data.votes > 1, else single")
      ->check(CLI::IsMember({"single", "tta", "vote"}));
  cmd->add_option("--votes", args.votes, "tta: passes, 1 clean + N-1 augmented (default: the config's data.votes)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--views", args.views, "vote: views per cloud (default: the config's eval.vote_views)")->check(at_least(1));
  if (repeats)
    cmd->add_option("--repeats", args.repeats, "vote: repeats of the whole vote (default: the config's eval.vote_repeats)")
        ->check(at_least(1));
}

eval::EvalProtocol protocol_from(const ProtocolArgs& args, Config& cfg) {
  std::map<std::string, nlohmann::json> changes;
  if (args.votes > 0) changes["data.votes"] = args.votes;
  if (args.views > 0) changes["eval.vote_views"] = args.views;
  if (args.repeats > 0) changes["eval.vote_repeats"] = args.repeats;
  if (!changes.empty()) cfg = cfg.with(changes);
  return args.protocol.empty() ? eval::epoch_protocol(cfg) : eval::protocol_named(args.protocol, cfg, "--protocol");
}

void refuse_protocol_for_parts(const ProtocolArgs& args, const std::string& checkpoint) {
  if (!args.protocol.empty() || args.votes > 0 || args.views > 0 || args.repeats > 0)
    fail("--protocol/--votes/--views/--repeats: " + checkpoint + " is a part-segmentation model, evaluated and predicted "
         "in a single pass with the prediction restricted to the shape's category");
}

void add_dist_options(CLI::App* cmd, DistArgs& args) {
  cmd->add_option("--nproc", args.nproc, "Run as N local worker processes of one data-parallel job (Gloo); "
                                         "torchrun / srun set the job up through the environment instead")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--dist-timeout", args.timeout_s, "Seconds a collective waits for the other ranks before giving up")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
}

std::shared_ptr<dist::Group> join_job(const DistArgs& args) {
  if (args.nproc > 1 && !std::getenv("RANK")) {
    std::vector<std::string> argv = g_argv;
    std::exit(dist::run_local_workers(args.nproc, argv));
  }
  const auto env = dist::env_from_environment();
  if (const char* t = std::getenv("EWA_WORKER_THREADS")) init_threads(std::atoi(t));
  return dist::Group::join(env, std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
}

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Print the configuration reference (every key, type, default) or the defaults");
  auto* as_json = cmd->add_flag("--defaults", "Print the full default config as JSON instead of the reference table");
  cmd->callback([as_json, cmd] {
    if (!cmd->get_subcommands().empty()) return;
    if (*as_json) print_line(default_config().dump(2));
    else std::cout << config_reference_markdown();
  });
  struct ShowArgs {
    std::string config;
    std::vector<std::string> set;
  };
  auto args = std::make_shared<ShowArgs>();
  auto* show = cmd->add_subcommand("show", "Print a config resolved: its bases merged, --set applied, every default filled in");
  show->add_option("config", args->config, "JSON config file (configs/*.json); the defaults when omitted");
  show->add_option("--set", args->set, "Override a config key, e.g. --set ewa.share_rate=0.5 (repeatable)");
  auto* sources = show->add_flag("--sources", "One line per key instead of JSON: its value and where it came from (default, "
                                              "preset, the file or the base or mixin that set it, --set)");
  show->callback([args, sources] {
    if (!*sources) return print_line(load_config(args->config, args->set).json.dump(2));
    for (const auto& v : config_sources(args->config, args->set)) print_line(v.key + " = " + v.value.dump() + "  (" + v.from + ")");
  });
}

}  // namespace ewa::app

// OpenMP reads OMP_WAIT_POLICY when the library loads, before main runs: set it and re-exec
// once, so idle worker threads sleep instead of spinning on the 2-core machines we run on.
static void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // on failure we simply go on with the spinning default
}

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  ewa::install_crash_handler();
  ewa::tune_allocator();
  if (const char* simd = std::getenv("EWA_SIMD"); simd && !ewa::kernels::simd::parse_level(simd, nullptr)) {
    std::cerr << "ewa: error: environment variable EWA_SIMD='" << simd << "': expected baseline, avx2 or avx512"
              << std::endl;
    return 1;
  }
  ewa::app::set_program_args(argc, argv);
  CLI::App app{"ewa: train vision transformers with Experts Weights Averaging (EWA)", "ewa"};
  app.require_subcommand(1);
  // Every option shows its default in --help (an empty one, such as an unset path, shows none: its
  // description says what leaving it out means). Subcommands inherit this.
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", ewa::app::version_text());
  int threads = 0;
  app.add_option("--threads", threads, "Torch intra-op threads (0 = number of cores; train.threads overrides)")
      ->capture_default_str();
  ewa::app::add_train_command(app);
  ewa::app::add_eval_command(app);
  ewa::app::add_convert_command(app);
  ewa::app::add_bench_command(app);
  ewa::app::add_config_command(app);
  ewa::app::add_data_command(app);
  ewa::app::add_pretrain_command(app);
  ewa::app::add_export_command(app);
  ewa::app::add_predict_command(app);
  ewa::app::add_plot_command(app);
  ewa::app::add_show_command(app);
  ewa::app::add_gallery_command(app);
  ewa::app::add_svm_command(app);
  ewa::app::add_fewshot_command(app);
  ewa::app::add_study_command(app);
  app.parse_complete_callback([&] { ewa::init_threads(threads); });
  try {
    // A first word that is no command: say so (CLI11 would only ask for a subcommand).
    for (int i = 1; i < argc; ++i) {
      const std::string word = argv[i];
      if (word == "--threads") {
        ++i;
        continue;
      }
      if (word.empty() || word[0] == '-') continue;
      std::string names;
      bool known = false;
      for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
        known = known || sub->get_name() == word;
      }
      if (!known) ewa::fail("unknown command '" + word + "' (commands: " + names + ")");
      break;
    }
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and succeed; every other flag error is one line, exit code 1.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::string msg = e.what();
    for (auto& c : msg)
      if (c == '\n') c = ' ';
    std::cerr << "ewa: error: " << msg << " (`ewa <command> --help` lists the options)" << std::endl;
    return 1;
  } catch (const ewa::Interrupted& e) {  // SIGINT / SIGTERM, after the checkpoint
    if (*e.what()) std::cerr << "ewa: " << e.what() << std::endl;
    return ewa::app::finish(e.exit_code());
  } catch (const ewa::Error& e) {
    std::cerr << "ewa: error: " << e.what() << std::endl;
    return ewa::app::finish(1);
  } catch (const c10::Error& e) {
    std::cerr << "ewa: error: " << e.what_without_backtrace() << std::endl;
    return ewa::app::finish(1);
  } catch (const std::exception& e) {
    std::cerr << "ewa: error: " << e.what() << std::endl;
    return ewa::app::finish(1);
  }
  return 0;
}
