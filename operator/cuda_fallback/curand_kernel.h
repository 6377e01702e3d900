/*
 * Used only when the CUDA toolkit has no cuRAND headers (nvcc searches this folder with
 * -idirafter, so a real curand_kernel.h always wins).  MXNet's lib_api.h includes
 * curand_kernel.h merely to name the type of its per-device random states; these operators
 * never use random numbers, so an incomplete type is all the declaration they need.
 */
#ifndef MXSSD_CURAND_FALLBACK_H_
#define MXSSD_CURAND_FALLBACK_H_
struct curandStatePhilox4_32_10;
typedef struct curandStatePhilox4_32_10 curandStatePhilox4_32_10_t;
#endif
