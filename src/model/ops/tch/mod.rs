//! tch: libtorch's own backward passes, called directly through agml's C++ shim (shim.cpp,
//! compiled by build.rs): the kernels PyTorch's autograd runs (oneDNN on a CPU, cuDNN on a
//! GPU), without recording a libtorch graph or computing anything twice.

mod batch_norm;
mod conv;
mod relu;

use std::ffi::{CStr, c_char};
use std::ptr::null_mut;

use torch_sys::C_tensor;

type Tensor = *mut C_tensor;

unsafe extern "C" {
    fn agml_free_message(message: *mut c_char);
    fn agml_libtorch_build(version: *mut *mut c_char, capability: *mut *mut c_char);
    fn agml_conv2d_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        groups: i64,
        input_grad: i32,
        input_grad_out: *mut Tensor,
        weight_grad_out: *mut Tensor,
    ) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn agml_batch_norm_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        gamma: *const C_tensor,
        running_mean: *const C_tensor,
        running_var: *const C_tensor,
        save_mean: *const C_tensor,
        save_invstd: *const C_tensor,
        train: i32,
        epsilon: f64,
        input_grad: i32,
        input_grad_out: *mut Tensor,
        gamma_grad_out: *mut Tensor,
        beta_grad_out: *mut Tensor,
    ) -> *mut c_char;
    fn agml_relu_backward(
        grad_output: *const C_tensor,
        output: *const C_tensor,
        input_grad_out: *mut Tensor,
    ) -> *mut c_char;
}

/// libtorch's version and the CPU kernel level ATen dispatches to (AVX512, AVX2, DEFAULT).
pub fn libtorch_build() -> (String, String) {
    let (mut version, mut capability) = (null_mut(), null_mut());
    // SAFETY: the shim fills both with NUL-terminated strings it allocated; each is read and
    // freed once here.
    unsafe {
        agml_libtorch_build(&mut version, &mut capability);
        let take = |text: *mut c_char| {
            let value = CStr::from_ptr(text).to_string_lossy().into_owned();
            agml_free_message(text);
            value
        };
        (take(version), take(capability))
    }
}

/// Runs a shim call that fills `N` output tensors; libtorch's exception (a shape or device
/// mismatch: a bug, as in any burn operation) panics with libtorch's message.
fn outputs<const N: usize>(
    what: &str,
    call: impl FnOnce(&mut [Tensor; N]) -> *mut c_char,
) -> [Option<tch::Tensor>; N] {
    let mut outputs = [null_mut(); N];
    let error = call(&mut outputs);
    if !error.is_null() {
        // SAFETY: the shim returns a NUL-terminated message it allocated, freed here once.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        unsafe { agml_free_message(error) };
        panic!("libtorch's {what}: {message}");
    }
    // SAFETY: each non-null output is a tensor the shim allocated for the caller to own.
    outputs.map(|tensor| (!tensor.is_null()).then(|| unsafe { tch::Tensor::from_ptr(tensor) }))
}

/// The pointer the shim reads for an optional tensor.
fn optional(tensor: Option<&tch::Tensor>) -> *const C_tensor {
    tensor.map_or(std::ptr::null(), |tensor| tensor.as_ptr())
}
