// switchyard: the command-line tool.
#include <cstdio>
#include <string>

#include "commands.h"
#include "switchyard/runtime.h"

namespace {

void print_usage(std::FILE* f) {
  std::fprintf(
      f,
      "usage: switchyard <command> [flags]\n\n"
      "commands:\n"
      "  run              run one MoE layer of a model preset on generated inputs (the main job)\n"
      "  bench routing    sweep token counts x presets: median us, GB/s, %% of ceiling, wrong\n"
      "  bench experts    the fused MoE forward over tokens x presets: us, TB/s, TFLOP/s\n"
      "  bench ceiling    measure the card's memory and dense GEMM ceilings\n"
      "  info             what this build and machine can run\n"
      "  help             this text ('switchyard run --help' for a command's flags)\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchyard::cli;
  if (argc < 2) return run_command(argc, argv, 1);  // no arguments: the main job, defaults
  const std::string cmd = argv[1];
  if (cmd == "run") return run_command(argc, argv, 2);
  if (cmd == "bench") return bench_command(argc, argv, 2);
  if (cmd == "info") {
    std::printf("switchyard: CUDA backend %s; device: %s\n",
                switchyard::built_with_cuda() ? "built" : "not built",
                switchyard::cuda_device_available() ? switchyard::cuda_device_description().c_str()
                                                    : "none (CPU backend)");
    return kExitOk;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    print_usage(stdout);
    return kExitOk;
  }
  std::fprintf(stderr, "switchyard: unknown command '%s'\n", cmd.c_str());
  print_usage(stderr);
  return kExitUsage;
}
