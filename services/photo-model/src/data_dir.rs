//! Where `deploy/local/fetch-model.sh` puts the model and test photos: `$XINTU_DATA_DIR`,
//! by default `~/.cache/xintu/data`. Services take explicit paths from their configuration;
//! this is the default for them, the tests and the bench.

use std::path::PathBuf;

/// The weights file, relative to the data directory.
pub const MODEL_FILE: &str = "models/efficientnet_lite0.safetensors";
/// The test photos directory, relative to the data directory.
pub const TESTDATA_DIR: &str = "testdata";

/// Returns `$XINTU_DATA_DIR`, or `$HOME/.cache/xintu/data`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XINTU_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/xintu/data")
}

/// Returns the default path of the EfficientNet-Lite0 weights.
pub fn default_model_path() -> PathBuf {
    data_dir().join(MODEL_FILE)
}

/// The bytes of a sample photo (scikit-image's data, which `deploy/local/fetch-model.sh` puts in
/// [`TESTDATA_DIR`]), for tests and benches; the error names the file and the script.
pub fn sample_photo(name: &str) -> std::io::Result<Vec<u8>> {
    let path = data_dir().join(TESTDATA_DIR).join(name);
    std::fs::read(&path).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!(
                "{}: {err} (run deploy/local/fetch-model.sh)",
                path.display()
            ),
        )
    })
}
