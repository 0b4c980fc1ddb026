// cudaStream_t without the CUDA headers, so public headers compile with any C++20 compiler.
// Identical to the runtime's own declaration (a pointer to the opaque CUstream_st); repeating a
// typedef of the same type is legal C++, so including cuda_runtime.h as well is fine.
#pragma once

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;  // NOLINT(modernize-use-using): must match the runtime
