//! Depthwise 2-D convolution with TF "SAME" padding, as a candle custom op.
//!
//! Why not `conv2d(groups = channels)`: candle 0.11 runs a grouped convolution as `groups`
//! separate convolutions and concatenates them (huggingface/candle#3389), which makes the
//! depthwise layers of EfficientNet (up to 1152 channels) take most of the inference time. Here
//! each channel plane is one task on the rayon pool, the padding is implicit, and the folded
//! batch-norm bias and the ReLU6 are applied in the same pass.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Roughly how many output values one rayon task should compute.
const MIN_OUTPUTS_PER_TASK: usize = 4096;

/// Output size and leading padding of TF "SAME" padding along one axis.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (output, total / 2)
}

/// A depthwise convolution layer: one `kernel`×`kernel` filter per channel.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    channels: usize,
    kernel: usize,
    stride: usize,
    /// `channels × kernel × kernel`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    relu6: bool,
}

impl DepthwiseConv {
    /// Builds the layer from a `(channels, 1, k, k)` weight, an optional `(channels,)` bias and
    /// whether ReLU6 follows.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, stride: usize, relu6: bool) -> Result<Self> {
        let (channels, one, kernel, kernel_w) = weight.dims4()?;
        if one != 1 || kernel != kernel_w || stride == 0 {
            bail!(
                "depthwise weight must be (channels, 1, k, k), got {:?}",
                weight.shape()
            );
        }
        let weight = weight
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = match bias {
            Some(bias) => bias.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; channels],
        };
        if bias.len() != channels {
            bail!(
                "depthwise bias has {} values for {channels} channels",
                bias.len()
            );
        }
        Ok(Self {
            channels,
            kernel,
            stride,
            weight,
            bias,
            relu6,
        })
    }

    /// Applies the layer to an `(N, C, H, W)` f32 tensor on the CPU.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.apply_op1_no_bwd(self)
    }

    fn plane(&self, channel: usize, input: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
        let (k, s) = (self.kernel, self.stride);
        let (oh, pad_top) = same_padding(h, k, s);
        let (ow, pad_left) = same_padding(w, k, s);
        let filter = &self.weight[channel * k * k..(channel + 1) * k * k];
        out.fill(self.bias[channel]);
        for oy in 0..oh {
            let out_row = &mut out[oy * ow..(oy + 1) * ow];
            for ky in 0..k {
                // Input row for this tap; rows in the padding contribute nothing.
                let Some(iy) = (oy * s + ky).checked_sub(pad_top).filter(|&iy| iy < h) else {
                    continue;
                };
                let in_row = &input[iy * w..(iy + 1) * w];
                for kx in 0..k {
                    let tap = filter[ky * k + kx];
                    // Output columns whose input column ox*s + kx - pad_left lies inside the row.
                    let first = pad_left.saturating_sub(kx).div_ceil(s);
                    let end = ((w + pad_left).saturating_sub(kx)).div_ceil(s).min(ow);
                    if first >= end {
                        continue;
                    }
                    let start_ix = first * s + kx - pad_left;
                    if s == 1 {
                        // Contiguous: the compiler vectorises this multiply-add.
                        let src = &in_row[start_ix..start_ix + (end - first)];
                        for (o, x) in out_row[first..end].iter_mut().zip(src) {
                            *o += tap * x;
                        }
                    } else {
                        let src = in_row[start_ix..].iter().step_by(s);
                        for (o, x) in out_row[first..end].iter_mut().zip(src) {
                            *o += tap * x;
                        }
                    }
                }
            }
        }
        if self.relu6 {
            for o in out.iter_mut() {
                *o = o.clamp(0.0, 6.0);
            }
        }
    }
}

impl CustomOp1 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-same"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!("depthwise convolution expects f32 input");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("depthwise convolution expects a contiguous input");
        };
        let (n, c, h, w) = layout.shape().dims4()?;
        if c != self.channels {
            bail!(
                "depthwise convolution has {} channels, input has {c}",
                self.channels
            );
        }
        let input = &data[start..end];
        let (oh, _) = same_padding(h, self.kernel, self.stride);
        let (ow, _) = same_padding(w, self.kernel, self.stride);
        let mut out = vec![0f32; n * c * oh * ow];
        // Late layers have many tiny planes (7×7): hand them out in batches, or task overhead
        // and cross-thread hand-offs outweigh the work.
        let planes_per_task = (MIN_OUTPUTS_PER_TASK / (oh * ow).max(1)).max(1);
        out.par_chunks_mut(oh * ow)
            .with_min_len(planes_per_task)
            .enumerate()
            .for_each(|(plane_index, out_plane)| {
                let in_plane = &input[plane_index * h * w..(plane_index + 1) * h * w];
                self.plane(plane_index % c, in_plane, (h, w), out_plane);
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}
