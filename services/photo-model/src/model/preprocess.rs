//! The input the network was trained on: RGB, short side resized to 256, centre 224×224 crop,
//! each channel value mapped to (x − 127) / 128 (the TF EfficientNet-Lite convention).

use candle_core::{Device, Tensor};
use image::RgbImage;

use photo_upload::resize_short_side_center_crop;

pub const RESIZE_SHORT_SIDE: u32 = 256;
pub const INPUT_SIZE: u32 = 224;

/// Returns the `(1, 3, 224, 224)` input tensor for one image.
pub fn image_to_input(image: &RgbImage) -> Result<Tensor, super::ModelError> {
    let crop = resize_short_side_center_crop(image, RESIZE_SHORT_SIDE, INPUT_SIZE)
        .map_err(|err| super::ModelError::Preprocess(err.to_string()))?;
    let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in crop.pixels().enumerate() {
        for (channel, value) in pixel.0.iter().enumerate() {
            chw[channel * plane + i] = (f32::from(*value) - 127.0) / 128.0;
        }
    }
    let size = INPUT_SIZE as usize;
    Ok(Tensor::from_vec(chw, (1, 3, size, size), &Device::Cpu)?)
}
