// SY_HD marks functions compiled for both the host and the device.
#pragma once

#if defined(__CUDACC__)
#define SY_HD __host__ __device__ __forceinline__
#else
#define SY_HD inline
#endif
