// ewa plot: the training plots of a run directory (also written at the end of every run).
#include <filesystem>

#include "apps/commands.h"
#include "viz/plot.h"

namespace ewa::app {

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
