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
// TensorFloat-32 for float32 matmuls and convolutions on GPUs that have it (Ampere and
// later); a no-op elsewhere.
void bn_set_tf32(bool on);
bool bn_tf32();
// libtorch's version as major * 100 + minor (1.13: 113).
int bn_torch_version();
// One AdamW step (torch.optim.AdamW's arithmetic) over n parameters in libtorch's fused
// kernel, with their gradients and moments; steps[i] holds the step count, from 1, as a
// float on the parameters' device. libtorch 2.0 and later, on CUDA (on the CPU from 2.4);
// elsewhere it fails, changing nothing.
void bn_fused_adamw(tensor *params, tensor *grads, tensor *exp_avgs, tensor *exp_avg_sqs,
                    tensor *steps, int n, double lr, double beta1, double beta2,
                    double weight_decay, double eps);

// A gradient watch learns when backward has finished the gradients of a list of leaf
// parameters: a post hook on each one's AccumulateGrad node, which runs once per
// backward right after the node has added the parameter's gradient into .grad (on one
// of the autograd engine's threads), counts it. The watch holds the nodes, as DDP's
// reducer does, so every later forward reuses them and the hooks stay.
typedef struct bn_grad_watch bn_grad_watch;
// Watches params[0..n), which must require grad. NULL with torch_last_err set on error.
bn_grad_watch *bn_grad_watch_new(tensor *params, int n);
// Starts watching a backward: clears the counts. Call it before the backward starts.
void bn_grad_watch_arm(bn_grad_watch *w);
// Blocks until the longest prefix of params whose gradients are final is longer than
// after, and returns its length; returns -1 once the watch is disarmed and it is not.
int bn_grad_watch_wait(bn_grad_watch *w, int after);
// Ends a backward's watch: wakes bn_grad_watch_wait.
void bn_grad_watch_disarm(bn_grad_watch *w);
// How many times each parameter's hook ran since bn_grad_watch_arm, into out[0..n).
void bn_grad_watch_counts(bn_grad_watch *w, int *out);
void bn_grad_watch_free(bn_grad_watch *w);

// Dynamic int8 quantization of a linear layer, as torch.ao.quantization.quantize_dynamic
// with per-channel weights: the weight is quantized once, symmetric per output row; each
// input is quantized per tensor as it comes, the product accumulated in int32 and
// returned in float32.
typedef struct bn_qlinear bn_qlinear;
// Makes the first quantized engine of x86, fbgemm and onednn this libtorch has the
// current one and returns its name; "" when it has none of them.
const char *bn_qengine();
// weight [out, in] and bias [out] (float32, CPU), packed for bn_qlinear_forward in the
// current engine. NULL with torch_last_err set on error.
bn_qlinear *bn_qlinear_new(tensor weight, tensor bias);
// x [..., in] times the weight, plus the bias: [..., out] into *out. Safe to call from
// several threads at once.
void bn_qlinear_forward(bn_qlinear *q, tensor x, tensor *out);
void bn_qlinear_free(bn_qlinear *q);
#ifdef __cplusplus
}
#endif
#endif
