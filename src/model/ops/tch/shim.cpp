// The backward passes that PyTorch's autograd runs for a convolution, a BatchNorm and a ReLU,
// called directly: tch 0.22 binds none of them. Each function returns nullptr on success and
// otherwise the exception's message (malloc'd: the caller frees it with agml_free_message).
#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

typedef at::Tensor *tensor;

#define AGML_GUARD(...)                     \
  try {                                     \
    __VA_ARGS__;                            \
    return nullptr;                         \
  } catch (const std::exception &error) {   \
    return strdup(error.what());            \
  }

static at::Tensor *boxed(const at::Tensor &value) {
  return value.defined() ? new at::Tensor(value) : nullptr;
}

static std::optional<at::Tensor> optional(tensor value) {
  return value ? std::optional<at::Tensor>(*value) : std::nullopt;
}

extern "C" {

void agml_free_message(char *message) { free(message); }

// dL/dx (when input_grad) and dL/dW of a bias-free 2-D convolution.
char *agml_conv2d_backward(tensor grad_output, tensor input, tensor weight,
                           const int64_t *stride, const int64_t *padding,
                           const int64_t *dilation, int64_t groups, int input_grad,
                           tensor *input_grad_out, tensor *weight_grad_out) {
  AGML_GUARD({
    const int64_t no_output_padding[2] = {0, 0};
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight, std::nullopt, at::IntArrayRef(stride, 2),
        at::IntArrayRef(padding, 2), at::IntArrayRef(dilation, 2), false,
        at::IntArrayRef(no_output_padding, 2), groups, {input_grad != 0, true, false});
    *input_grad_out = boxed(std::get<0>(grads));
    *weight_grad_out = boxed(std::get<1>(grads));
  })
}

// dL/dx, dL/dgamma, dL/dbeta of a BatchNorm: with the batch's statistics (train: save_mean and
// save_invstd from native_batch_norm) or with fixed ones (running_mean, running_var).
char *agml_batch_norm_backward(tensor grad_output, tensor input, tensor gamma,
                               tensor running_mean, tensor running_var, tensor save_mean,
                               tensor save_invstd, int train, double epsilon, int input_grad,
                               tensor *input_grad_out, tensor *gamma_grad_out,
                               tensor *beta_grad_out) {
  AGML_GUARD({
    auto grads = at::native_batch_norm_backward(
        *grad_output, *input, optional(gamma), optional(running_mean), optional(running_var),
        optional(save_mean), optional(save_invstd), train != 0, epsilon,
        {input_grad != 0, true, true});
    *input_grad_out = boxed(std::get<0>(grads));
    *gamma_grad_out = boxed(std::get<1>(grads));
    *beta_grad_out = boxed(std::get<2>(grads));
  })
}

// dL/dx of y = relu(x), from y.
char *agml_relu_backward(tensor grad_output, tensor output, tensor *input_grad_out) {
  AGML_GUARD({ *input_grad_out = boxed(at::threshold_backward(*grad_output, *output, 0)); })
}

// libtorch's version and the CPU kernel level ATen dispatches to (AVX512, AVX2, DEFAULT).
void agml_libtorch_build(char **version, char **capability) {
  *version = strdup(TORCH_VERSION);
  *capability = strdup(at::get_cpu_capability().c_str());
}
}
