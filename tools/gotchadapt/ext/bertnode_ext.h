// bertnode's additions to gotch's C API: what training needs and gotch does not expose.
#ifndef BERTNODE_EXT_H
#define BERTNODE_EXT_H
#include <stdbool.h>
#include "torch_api.h"

#ifdef __cplusplus
extern "C" {
#endif
// Makes grad the .grad of param, so that backward accumulates into it in place.
void bn_set_grad(tensor param, tensor grad);
// The default generator's state for device (-1 CPU, >= 0 a CUDA index), and restoring it.
void bn_rng_state(tensor *out, int device);
void bn_set_rng_state(tensor state, int device);
// Autocast (mixed precision) for CUDA: dtype 0 off, 1 float16, 2 bfloat16.
void bn_cuda_autocast(int dtype);
void bn_set_num_threads(int n);
int bn_num_threads();
void bn_manual_seed(int64_t seed);
#ifdef __cplusplus
}
#endif
#endif
