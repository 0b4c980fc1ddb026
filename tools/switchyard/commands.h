// The switchyard subcommands. Each returns the process exit code:
// 0 success, 1 a result check failed, 2 bad usage, 3 a runtime error.
#pragma once

#include <string>

namespace switchyard::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitWrong = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRuntime = 3;

int run_command(int argc, char** argv, int first);
int bench_command(int argc, char** argv, int first);
// `switchyard bench align|permute|combine` (bench_layer.cpp).
int bench_layer_op(const std::string& op, int argc, char** argv, int first);
// `switchyard bench experts` (bench_experts.cpp).
int bench_experts(int argc, char** argv, int first);

}  // namespace switchyard::cli
