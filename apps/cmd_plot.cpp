// ewa plot: the training plots of a run directory (also drawn by train, finetune and pretrain when a run ends).
#include <filesystem>

#include "apps/commands.h"
#include "viz/plot.h"

namespace ewa::app {

void plot_finished_run(const std::string& dir) {
  if (!viz::built_with_cairo()) return;
  try {  // a plot that cannot be drawn must not fail a finished run
    std::string names;
    for (const auto& f : viz::plot_run(dir)) names += (names.empty() ? "" : ", ") + std::filesystem::path(f).filename().string();
    print_line("plots: " + dir + "/plots/ (" + names + ")");
  } catch (const std::exception& e) {
    print_line(std::string("plots not written: ") + e.what());
  }
}

void add_plot_command(CLI::App& app) {
  auto run_dirs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("plot", "Write a run directory's plots (loss, accuracy, learning rate and share rate, "
                                         "confusion matrix) as PNG files into RUN_DIR/plots/");
  cmd->add_option("run_dir", *run_dirs, "Run directories (with log.jsonl and metrics.json)")->required();
  cmd->callback([run_dirs] {
    for (const auto& dir : *run_dirs)
      for (const auto& f : viz::plot_run(dir)) print_line("wrote " + f);
  });
}

}  // namespace ewa::app
