//! What a valid edit request is: the function, its prompt and parameters, the output count and
//! the image (and mask) sizes the provider takes. Checked in full before any credit moves.

use proto::ErrorCode;
use serde_json::{Map, Value, json};

use super::{EditFunction, WANX_MODEL};

/// Longest prompt accepted, in characters (wanx takes 800).
const MAX_PROMPT_CHARS: usize = 800;
const MAX_NEGATIVE_PROMPT_CHARS: usize = 500;
/// Sides the providers take, in pixels: wanx 512..=4096; qwen-image-edit recommends 384..=3072
/// and takes larger ones.
const WANX_SIDES: (u32, u32) = (512, 4096);
const QWEN_SIDES: (u32, u32) = (384, 4096);

/// The longest side any edit model takes: a larger photo is refused from its header, before its
/// pixels are decoded.
pub const MAX_SIDE: u32 = if WANX_SIDES.1 > QWEN_SIDES.1 {
    WANX_SIDES.1
} else {
    QWEN_SIDES.1
};

/// Refuses an image (or mask) larger than any edit model takes, from its upright size.
pub fn check_max_side(what: &str, info: ImageInfo) -> Result<(), Invalid> {
    if info.width.max(info.height) <= MAX_SIDE {
        return Ok(());
    }
    Err(invalid(
        ErrorCode::ImageDimensions,
        format!(
            "the {what} is {}×{} pixels; edits take at most {MAX_SIDE} pixels per side",
            info.width, info.height
        ),
    ))
}

/// The function's parameters as the client sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parameters {
    pub strength: Option<f32>,
    pub upscale_factor: Option<u32>,
    pub top_scale: Option<f32>,
    pub bottom_scale: Option<f32>,
    pub left_scale: Option<f32>,
    pub right_scale: Option<f32>,
    pub is_sketch: Option<bool>,
    pub seed: Option<u32>,
    pub negative_prompt: Option<String>,
}

/// Width and height of a decoded image (upright).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
}

/// An edit as the client asked for it.
#[derive(Clone, Debug)]
pub struct EditRequest<'a> {
    pub function: &'a str,
    pub prompt: &'a str,
    /// 0 means 1.
    pub outputs: u32,
    pub parameters: &'a Parameters,
    pub image: ImageInfo,
    pub mask: Option<ImageInfo>,
}

/// An edit the provider will take.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEdit {
    pub function: EditFunction,
    pub model: String,
    pub prompt: String,
    pub outputs: u32,
    /// The provider's `parameters` object.
    pub provider_parameters: Value,
}

/// A request the service refuses; `code` is the stable error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// Checks `request` in full; `free_text_model` is the qwen-image-edit model configured.
pub fn validate(request: &EditRequest<'_>, free_text_model: &str) -> Result<ValidEdit, Invalid> {
    let function = EditFunction::parse(request.function).ok_or_else(|| {
        let names: Vec<&str> = EditFunction::ALL.iter().map(|f| f.as_str()).collect();
        invalid(
            ErrorCode::UnknownFunction,
            format!(
                "unknown function {:?}; use one of {}",
                request.function,
                names.join(", ")
            ),
        )
    })?;
    let prompt = prompt_of(function, request.prompt)?;
    let (model, max_outputs, sides) = if function.is_async() {
        (WANX_MODEL.to_owned(), 4, WANX_SIDES)
    } else {
        // The base model makes one image; the plus and max models up to six.
        let max = if free_text_model == "qwen-image-edit" {
            1
        } else {
            6
        };
        (free_text_model.to_owned(), max, QWEN_SIDES)
    };
    let outputs = request.outputs.max(1);
    if outputs > max_outputs {
        return Err(invalid(
            ErrorCode::InvalidParameter,
            format!(
                "outputs must be within 1..={max_outputs} for {}, got {outputs}",
                function.as_str()
            ),
        ));
    }
    check_sides("image", request.image, sides, &model)?;
    match (function.takes_mask(), request.mask) {
        (true, None) => {
            return Err(invalid(
                ErrorCode::MissingMask,
                "description_edit_with_mask needs a mask (white = edit, black = keep)",
            ));
        }
        (false, Some(_)) => {
            return Err(invalid(
                ErrorCode::MaskNotAllowed,
                format!("{} takes no mask", function.as_str()),
            ));
        }
        (true, Some(mask)) if mask != request.image => {
            return Err(invalid(
                ErrorCode::MaskSizeMismatch,
                format!(
                    "the mask is {}×{} but the image is {}×{}; they must be the same size",
                    mask.width, mask.height, request.image.width, request.image.height
                ),
            ));
        }
        _ => {}
    }
    let provider_parameters = provider_parameters(function, outputs, request.parameters)?;
    Ok(ValidEdit {
        function,
        model,
        prompt,
        outputs,
        provider_parameters,
    })
}

fn prompt_of(function: EditFunction, prompt: &str) -> Result<String, Invalid> {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return function.default_prompt().map(str::to_owned).ok_or_else(|| {
            invalid(
                ErrorCode::MissingPrompt,
                format!("{} needs a prompt saying what to change", function.as_str()),
            )
        });
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(invalid(
            ErrorCode::InvalidParameter,
            format!("the prompt is {chars} characters; at most {MAX_PROMPT_CHARS}"),
        ));
    }
    Ok(prompt.to_owned())
}

fn check_sides(
    what: &str,
    info: ImageInfo,
    (min, max): (u32, u32),
    model: &str,
) -> Result<(), Invalid> {
    let ok = |side: u32| (min..=max).contains(&side);
    if ok(info.width) && ok(info.height) {
        return Ok(());
    }
    Err(invalid(
        ErrorCode::ImageDimensions,
        format!(
            "the {what} is {}×{} pixels; {model} takes {min} to {max} pixels per side",
            info.width, info.height
        ),
    ))
}

/// Builds the provider's parameters, refusing a parameter the function does not take or a
/// value out of its range.
fn provider_parameters(
    function: EditFunction,
    outputs: u32,
    given: &Parameters,
) -> Result<Value, Invalid> {
    use EditFunction as F;
    let mut out = Map::new();
    out.insert("n".into(), json!(outputs));
    out.insert("watermark".into(), json!(false));
    if let Some(seed) = given.seed {
        if seed > 2_147_483_647 {
            return Err(invalid(
                ErrorCode::InvalidParameter,
                "seed must be within 0..=2147483647",
            ));
        }
        out.insert("seed".into(), json!(seed));
    }
    let only = |name: &str, allowed: &[EditFunction]| -> Result<(), Invalid> {
        if allowed.contains(&function) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
        Err(invalid(
            ErrorCode::InvalidParameter,
            format!("{name} applies to {} only", names.join(" and ")),
        ))
    };
    if let Some(strength) = given.strength {
        only("strength", &[F::StylizationAll, F::DescriptionEdit])?;
        if !(0.0..=1.0).contains(&strength) {
            return Err(invalid(
                ErrorCode::InvalidParameter,
                "strength must be within 0..=1",
            ));
        }
        out.insert("strength".into(), json!(strength));
    }
    if let Some(factor) = given.upscale_factor {
        only("upscale_factor", &[F::SuperResolution])?;
        if !(1..=4).contains(&factor) {
            return Err(invalid(
                ErrorCode::InvalidParameter,
                "upscale_factor must be within 1..=4",
            ));
        }
        out.insert("upscale_factor".into(), json!(factor));
    }
    let scales = [
        ("top_scale", given.top_scale),
        ("bottom_scale", given.bottom_scale),
        ("left_scale", given.left_scale),
        ("right_scale", given.right_scale),
    ];
    for (name, value) in scales {
        if let Some(scale) = value {
            only(name, &[F::Expand])?;
            if !(1.0..=2.0).contains(&scale) {
                return Err(invalid(
                    ErrorCode::InvalidParameter,
                    format!("{name} must be within 1.0..=2.0"),
                ));
            }
            out.insert(name.into(), json!(scale));
        }
    }
    if let Some(sketch) = given.is_sketch {
        only("is_sketch", &[F::Doodle])?;
        out.insert("is_sketch".into(), json!(sketch));
    }
    if let Some(negative) = &given.negative_prompt {
        only("negative_prompt", &[F::FreeText])?;
        if negative.chars().count() > MAX_NEGATIVE_PROMPT_CHARS {
            return Err(invalid(
                ErrorCode::InvalidParameter,
                format!("negative_prompt is at most {MAX_NEGATIVE_PROMPT_CHARS} characters"),
            ));
        }
        out.insert("negative_prompt".into(), json!(negative));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHOTO: ImageInfo = ImageInfo {
        width: 1024,
        height: 768,
    };

    fn request<'a>(
        function: &'a str,
        prompt: &'a str,
        parameters: &'a Parameters,
    ) -> EditRequest<'a> {
        EditRequest {
            function,
            prompt,
            outputs: 1,
            parameters,
            image: PHOTO,
            mask: None,
        }
    }

    fn code(result: Result<ValidEdit, Invalid>) -> &'static str {
        result.unwrap_err().code.as_str()
    }

    #[test]
    fn a_described_edit_goes_to_wanx_with_its_parameters() {
        let parameters = Parameters {
            strength: Some(0.7),
            seed: Some(42),
            ..Parameters::default()
        };
        let mut asked = request("description_edit", " 给小猫添加一副墨镜 ", &parameters);
        asked.outputs = 2;
        let valid = validate(&asked, "qwen-image-edit").unwrap();
        assert_eq!(valid.model, "wanx2.1-imageedit");
        assert_eq!(valid.prompt, "给小猫添加一副墨镜");
        assert_eq!(valid.outputs, 2);
        assert_eq!(valid.provider_parameters["n"], 2);
        assert_eq!(valid.provider_parameters["seed"], 42);
        assert!((valid.provider_parameters["strength"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    }

    #[test]
    fn free_text_goes_to_qwen_with_one_output() {
        let none = Parameters::default();
        let valid = validate(
            &request("free_text", "将背景更改为海滩", &none),
            "qwen-image-edit",
        )
        .unwrap();
        assert_eq!(valid.model, "qwen-image-edit");
        let mut two = request("free_text", "将背景更改为海滩", &none);
        two.outputs = 2;
        assert_eq!(code(validate(&two, "qwen-image-edit")), "invalid_parameter");
        assert!(validate(&two, "qwen-image-edit-plus").is_ok());
    }

    #[test]
    fn prompts_are_required_unless_the_function_says_it_all() {
        let none = Parameters::default();
        assert_eq!(
            code(validate(&request("description_edit", "  ", &none), "q")),
            "missing_prompt"
        );
        assert_eq!(
            code(validate(&request("free_text", "", &none), "q")),
            "missing_prompt"
        );
        let upscaled = validate(&request("super_resolution", "", &none), "q").unwrap();
        assert_eq!(upscaled.prompt, "图像超分");
        let long = "字".repeat(801);
        assert_eq!(
            code(validate(&request("description_edit", &long, &none), "q")),
            "invalid_parameter"
        );
    }

    #[test]
    fn unknown_functions_and_misplaced_parameters_are_refused() {
        let none = Parameters::default();
        assert_eq!(
            code(validate(&request("beautify", "x", &none), "q")),
            "unknown_function"
        );
        let upscale = Parameters {
            upscale_factor: Some(2),
            ..Parameters::default()
        };
        assert_eq!(
            code(validate(&request("description_edit", "x", &upscale), "q")),
            "invalid_parameter"
        );
        let too_big = Parameters {
            upscale_factor: Some(5),
            ..Parameters::default()
        };
        assert_eq!(
            code(validate(&request("super_resolution", "", &too_big), "q")),
            "invalid_parameter"
        );
        let strength = Parameters {
            strength: Some(1.5),
            ..Parameters::default()
        };
        assert_eq!(
            code(validate(&request("stylization_all", "x", &strength), "q")),
            "invalid_parameter"
        );
        let mut five = request("description_edit", "x", &none);
        five.outputs = 5;
        assert_eq!(code(validate(&five, "q")), "invalid_parameter");
    }

    #[test]
    fn masks_belong_to_one_function_and_must_match_the_image() {
        let none = Parameters::default();
        let mut masked = request("description_edit_with_mask", "陶瓷兔子", &none);
        assert_eq!(code(validate(&masked, "q")), "missing_mask");
        masked.mask = Some(ImageInfo {
            width: 1024,
            height: 767,
        });
        assert_eq!(code(validate(&masked, "q")), "mask_size_mismatch");
        masked.mask = Some(PHOTO);
        assert!(validate(&masked, "q").is_ok());
        let mut unmasked = request("description_edit", "x", &none);
        unmasked.mask = Some(PHOTO);
        assert_eq!(code(validate(&unmasked, "q")), "mask_not_allowed");
    }

    #[test]
    fn images_outside_the_providers_sizes_are_refused() {
        let none = Parameters::default();
        let mut small = request("description_edit", "x", &none);
        small.image = ImageInfo {
            width: 511,
            height: 800,
        };
        assert_eq!(code(validate(&small, "q")), "image_dimensions");
        let mut qwen = request("free_text", "x", &none);
        qwen.image = ImageInfo {
            width: 400,
            height: 400,
        };
        assert!(validate(&qwen, "qwen-image-edit").is_ok());
        qwen.image.width = 5000;
        assert_eq!(code(validate(&qwen, "qwen-image-edit")), "image_dimensions");
    }
}
