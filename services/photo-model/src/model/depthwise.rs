//! Depthwise 2-D convolution with TF "SAME" padding, as a candle custom op.
//!
//! Why not `conv2d(groups = channels)`: candle 0.11 runs a grouped convolution as `groups`
//! separate convolutions and concatenates them (huggingface/candle#3389), which makes the
//! depthwise layers of EfficientNet (up to 1152 channels) take most of the inference time. Here
//! each channel plane is copied once into a padded, stride-phase-split scratch so every tap is a
//! contiguous multiply-add the compiler vectorises; the folded batch-norm bias and the ReLU6 are
//! applied in the same pass, and large layers spread their planes over the rayon pool.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Rows at least this wide take the per-tap pass; narrower ones (up to LANES) the
/// register-accumulator path.
const WIDE_ROW: usize = 16;
/// Accumulator width for narrow rows (two AVX or four SSE registers); at least WIDE_ROW - 1.
const LANES: usize = 16;
/// Strides up to this are supported (EfficientNet uses 1 and 2).
const MAX_STRIDE: usize = 4;
/// Roughly how many output values one rayon task should compute.
const MIN_OUTPUTS_PER_TASK: usize = 4096;
/// Layers smaller than this run on the calling thread: a parallel section costs a wake-up and a
/// join on every worker, which the late 7×7 and 14×14 layers do not repay (and on a busy machine
/// a descheduled worker stalls the whole section).
const PARALLEL_FROM_OUTPUTS: usize = 100_000;

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
        if one != 1 || kernel != kernel_w || stride == 0 || stride > MAX_STRIDE || stride > kernel {
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

    /// Convolves one channel plane. The plane is first copied into `scratch` with its padding
    /// and with each row split into `stride` phases (columns p, p+s, p+2s, … together), so that
    /// every tap becomes a multiply-add over contiguous slices, which the compiler vectorises.
    fn plane(
        &self,
        channel: usize,
        input: &[f32],
        (h, w): (usize, usize),
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (k, s) = (self.kernel, self.stride);
        let (oh, pad_top) = same_padding(h, k, s);
        let (ow, pad_left) = same_padding(w, k, s);
        // The padded extent the output reads; at least the input's size since k >= s.
        let (ph, pw) = ((oh - 1) * s + k, (ow - 1) * s + k);
        let phase_len = |phase: usize| (pw - phase).div_ceil(s);
        let mut phase_start = [0usize; MAX_STRIDE];
        for phase in 1..s {
            phase_start[phase] = phase_start[phase - 1] + phase_len(phase - 1);
        }

        scratch.clear();
        // LANES of slack: the last chunk of the last row may read past the padded plane.
        scratch.resize(ph * pw + LANES, 0.0);
        let copied_w = w.min(pw - pad_left);
        for (iy, in_row) in input.chunks_exact(w).enumerate().take(ph - pad_top) {
            let row = &mut scratch[(iy + pad_top) * pw..(iy + pad_top + 1) * pw];
            let in_row = &in_row[..copied_w];
            if s == 1 {
                row[pad_left..pad_left + copied_w].copy_from_slice(in_row);
                continue;
            }
            for (phase, phase_offset) in phase_start.iter().enumerate().take(s) {
                // Input columns landing in this phase: (ix + pad_left) % s == phase.
                let first_ix = (phase + s - pad_left % s) % s;
                let first_slot = phase_offset + (first_ix + pad_left) / s;
                let values = in_row.iter().skip(first_ix).step_by(s);
                for (slot, &value) in row[first_slot..].iter_mut().zip(values) {
                    *slot = value;
                }
            }
        }

        let filter = &self.weight[channel * k * k..(channel + 1) * k * k];
        let bias = self.bias[channel];
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            let rows = &scratch[oy * s * pw..];
            // Each tap's input for this output row: kernel row ky, phase and offset of kx.
            let tap_start = |ky: usize, kx: usize| ky * pw + phase_start[kx % s] + kx / s;
            if ow >= WIDE_ROW {
                // Wide rows: one vectorised multiply-add pass over the row per tap.
                out_row.fill(bias);
                for ky in 0..k {
                    for kx in 0..k {
                        let (tap, start) = (filter[ky * k + kx], tap_start(ky, kx));
                        for (o, x) in out_row.iter_mut().zip(&rows[start..start + ow]) {
                            *o += tap * x;
                        }
                    }
                }
                if self.relu6 {
                    for o in out_row.iter_mut() {
                        *o = o.clamp(0.0, 6.0);
                    }
                }
                continue;
            }
            // Narrow rows (the 28, 14 and 7 pixel layers): passes that short are mostly loop
            // overhead, so a fixed-size accumulator stays in registers across all k² taps.
            // Reads past the row end land in the slack and go out with the unused lanes.
            let mut acc = [bias; LANES];
            for ky in 0..k {
                for kx in 0..k {
                    let (tap, start) = (filter[ky * k + kx], tap_start(ky, kx));
                    // A fixed-size array, so the loop below unrolls into whole registers.
                    let Some(src) = rows
                        .get(start..start + LANES)
                        .and_then(|window| <&[f32; LANES]>::try_from(window).ok())
                    else {
                        continue; // unreachable: the scratch has LANES of slack
                    };
                    for (a, x) in acc.iter_mut().zip(src) {
                        *a += tap * x;
                    }
                }
            }
            if self.relu6 {
                for a in &mut acc {
                    *a = a.clamp(0.0, 6.0);
                }
            }
            out_row.copy_from_slice(&acc[..ow]);
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
        let run_plane = |scratch: &mut Vec<f32>, (plane_index, out_plane): (usize, &mut [f32])| {
            let in_plane = &input[plane_index * h * w..(plane_index + 1) * h * w];
            self.plane(plane_index % c, in_plane, (h, w), out_plane, scratch);
        };
        if out.len() < PARALLEL_FROM_OUTPUTS {
            let mut scratch = Vec::new();
            out.chunks_mut(oh * ow)
                .enumerate()
                .for_each(|plane| run_plane(&mut scratch, plane));
        } else {
            // Hand planes out in batches: per-task overhead must stay small next to the work.
            let planes_per_task = (MIN_OUTPUTS_PER_TASK / (oh * ow).max(1)).max(1);
            out.par_chunks_mut(oh * ow)
                .with_min_len(planes_per_task)
                .enumerate()
                .for_each_init(Vec::new, run_plane);
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}
