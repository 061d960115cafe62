//! Resident memory of a process, from Linux's /proc: the high-water mark (VmHWM), which the tests
//! restart before a burst and read after it (the system under test runs in the test's process),
//! and which the memory bench reads of the gateway and photo processes it starts.

const MIB: u64 = 1024 * 1024;

/// A process: this one, or another by its id.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    Me,
    Pid(u32),
}

impl Process {
    fn proc_file(self, name: &str) -> String {
        match self {
            Self::Me => format!("/proc/self/{name}"),
            Self::Pid(pid) => format!("/proc/{pid}/{name}"),
        }
    }

    fn status_bytes(self, field: &str) -> std::io::Result<u64> {
        let status = std::fs::read_to_string(self.proc_file("status"))?;
        status
            .lines()
            .find_map(|line| {
                let kib = line.strip_prefix(field)?.strip_prefix(':')?;
                kib.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
            })
            .map(|kib| kib * 1024)
            .ok_or_else(|| std::io::Error::other(format!("no {field} in the process status")))
    }

    /// Resident memory now, bytes.
    pub fn resident(self) -> std::io::Result<u64> {
        self.status_bytes("VmRSS")
    }

    /// The most resident memory since the process started or the mark was restarted, bytes.
    pub fn peak(self) -> std::io::Result<u64> {
        self.status_bytes("VmHWM")
    }

    /// Restarts the high-water mark at the resident memory of now (Linux 4.0 and later).
    pub fn restart_peak(self) -> std::io::Result<()> {
        std::fs::write(self.proc_file("clear_refs"), "5")
    }
}

/// Bytes in MiB, for reports.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// How far the resident memory of this process rises while `work` runs, above what it was
/// before: the high-water mark is restarted first and read after.
pub async fn rise_during<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let before = Process::Me.resident().expect("VmRSS");
    Process::Me.restart_peak().expect("restart VmHWM");
    let output = work.await;
    let peak = Process::Me.peak().expect("VmHWM");
    (output, peak.saturating_sub(before))
}

/// `image` as a PNG at the best compression: a flat 8000×8000 picture takes some 250 KB, so a
/// small upload can ask for a large decode (the memory tests' and the memory bench's inputs).
pub fn compact_png(image: &image::RgbaImage) -> Vec<u8> {
    use image::ImageEncoder as _;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Best, FilterType::Up)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgba8,
        )
        .expect("PNG encoding into memory");
    png
}
