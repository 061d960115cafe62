//! The depthwise fast path computes exactly what candle's grouped convolution computes.

use candle_core::{Device, Tensor};
use photo_model::model::depthwise::{DepthwiseConv, same_padding};

/// candle's own grouped convolution with TF "SAME" padding: the slow reference.
fn reference(xs: &Tensor, weight: &Tensor, stride: usize) -> Tensor {
    let (_, channels, h, w) = xs.dims4().unwrap();
    let (_, _, k, _) = weight.dims4().unwrap();
    let pads = |input: usize| {
        let (output, before) = same_padding(input, k, stride);
        let total = ((output - 1) * stride + k).saturating_sub(input);
        (before, total - before)
    };
    let (top, bottom) = pads(h);
    let (left, right) = pads(w);
    xs.pad_with_zeros(2, top, bottom)
        .unwrap()
        .pad_with_zeros(3, left, right)
        .unwrap()
        .conv2d(weight, 0, stride, 1, channels)
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn equals_grouped_conv2d_on_random_tensors() {
    let device = Device::Cpu;
    // Narrow rows (register path), wide rows (per-tap pass), tiny and odd sizes, a big layer
    // (parallel path) and a batch.
    let shapes = [
        (1, 8, 11, 13),
        (2, 5, 16, 16),
        (1, 3, 7, 4),
        (1, 4, 1, 1),
        (1, 3, 2, 3),
        (1, 2, 30, 17),
        (1, 6, 9, 33),
        (1, 32, 112, 112),
    ];
    for (batch, channels, h, w) in shapes {
        for kernel in [3, 5] {
            for stride in [1, 2] {
                let xs = Tensor::randn(0f32, 1.0, (batch, channels, h, w), &device).unwrap();
                let weight =
                    Tensor::randn(0f32, 1.0, (channels, 1, kernel, kernel), &device).unwrap();
                let fast = DepthwiseConv::new(&weight, None, stride, false)
                    .unwrap()
                    .forward(&xs)
                    .unwrap();
                let slow = reference(&xs, &weight, stride);
                let diff = max_abs_diff(&fast, &slow);
                assert!(
                    diff < 1e-4,
                    "n={batch} c={channels} {h}x{w} k={kernel} s={stride}: max diff {diff}"
                );
            }
        }
    }
}

#[test]
fn applies_bias_and_relu6_after_the_convolution() {
    let device = Device::Cpu;
    let (channels, kernel, stride) = (6, 3, 2);
    let xs = Tensor::randn(0f32, 3.0, (1, channels, 9, 10), &device).unwrap();
    let weight = Tensor::randn(0f32, 1.0, (channels, 1, kernel, kernel), &device).unwrap();
    let bias = Tensor::randn(0f32, 1.0, channels, &device).unwrap();
    let fast = DepthwiseConv::new(&weight, Some(&bias), stride, true)
        .unwrap()
        .forward(&xs)
        .unwrap();
    let slow = reference(&xs, &weight, stride)
        .broadcast_add(&bias.reshape((1, channels, 1, 1)).unwrap())
        .unwrap()
        .clamp(0f32, 6f32)
        .unwrap();
    assert!(max_abs_diff(&fast, &slow) < 1e-4);
}

#[test]
fn refuses_a_weight_that_is_not_depthwise() {
    let weight = Tensor::zeros((4, 2, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(DepthwiseConv::new(&weight, None, 1, false).is_err());
}
