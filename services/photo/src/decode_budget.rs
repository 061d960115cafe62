//! One memory budget for every image decode of this instance: classification (the local model's
//! decode), the image and mask of an edit, and a photo turned upright. Each decode first reads
//! the photo's header, reserves what decoding it will hold at most (`photo_model::Probe`), and
//! holds that until its pixels are gone. However many large images arrive together, the decoded
//! pixels held at once stay within the budget: a decode that finds it spent waits briefly, then
//! is refused as busy (nothing else has happened for that request yet), and one that needs more
//! than the whole budget is refused as too large.

use proto::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::PhotoError;

/// The budget is counted in MiB: fine enough for decodes, and a semaphore of u32 permits.
const UNIT: u64 = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct DecodeBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// Memory reserved for one decode; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _units: OwnedSemaphorePermit,
}

impl DecodeBudget {
    /// A budget of `total_bytes` (rounded down to whole MiB); a decode waits at most `wait` for
    /// its share.
    pub fn new(total_bytes: u64, wait: Duration) -> Self {
        let total_units = u32::try_from(total_bytes / UNIT).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Bytes not reserved at this moment.
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }

    /// Reserves `bytes` for decoding `what` (an image of `width`×`height`): at once when free,
    /// else within the wait (and before `deadline`, when the caller has one).
    pub async fn reserve(
        &self,
        bytes: u64,
        what: &Decoding<'_>,
        deadline: Option<Instant>,
    ) -> Result<Reservation, PhotoError> {
        let units = bytes.div_ceil(UNIT).max(1);
        let units = match u32::try_from(units) {
            Ok(units) if units <= self.total_units => units,
            _ => return Err(what.too_large(bytes, self.total_bytes())),
        };
        let mut until = Instant::now() + self.wait;
        if let Some(deadline) = deadline {
            until = until.min(deadline);
        }
        let acquire = Arc::clone(&self.units).acquire_many_owned(units);
        match tokio::time::timeout_at(until, acquire).await {
            Ok(Ok(units)) => Ok(Reservation { _units: units }),
            Ok(Err(_)) => Err(PhotoError::Internal("decode budget closed".into())),
            Err(_) => {
                tracing::warn!(
                    what = what.what,
                    width = what.width,
                    height = what.height,
                    needed_mib = units,
                    available_mib = self.units.available_permits(),
                    "decode budget spent; refused"
                );
                Err(PhotoError::DecodeBusy)
            }
        }
    }
}

/// What is being decoded, for the refusals.
#[derive(Debug, Clone, Copy)]
pub struct Decoding<'a> {
    /// "image", "mask"...
    pub what: &'a str,
    pub width: u32,
    pub height: u32,
}

impl Decoding<'_> {
    fn too_large(&self, bytes: u64, budget: u64) -> PhotoError {
        PhotoError::Image {
            code: ErrorCode::ImageTooLarge,
            message: format!(
                "the {} is {}x{} pixels: decoding it needs {} MiB, more than the {} MiB this \
                 service decodes at once",
                self.what,
                self.width,
                self.height,
                bytes.div_ceil(UNIT),
                budget / UNIT
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: Decoding<'static> = Decoding {
        what: "image",
        width: 8000,
        height: 8000,
    };

    #[tokio::test]
    async fn reservations_add_up_to_the_budget_and_are_given_back() {
        let budget = DecodeBudget::new(100 * UNIT, Duration::from_millis(20));
        let first = budget.reserve(60 * UNIT, &IMAGE, None).await.unwrap();
        let second = budget.reserve(40 * UNIT, &IMAGE, None).await.unwrap();
        assert_eq!(budget.available_bytes(), 0);
        let busy = budget.reserve(1, &IMAGE, None).await.unwrap_err();
        assert!(matches!(busy, PhotoError::DecodeBusy), "{busy:?}");
        drop(first);
        let third = budget.reserve(60 * UNIT, &IMAGE, None).await.unwrap();
        drop((second, third));
        assert_eq!(budget.available_bytes(), 100 * UNIT);
    }

    #[tokio::test]
    async fn a_waiting_decode_gets_what_another_gives_back() {
        let budget = DecodeBudget::new(100 * UNIT, Duration::from_secs(10));
        let first = budget.reserve(100 * UNIT, &IMAGE, None).await.unwrap();
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50 * UNIT, &IMAGE, None).await })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_too_large_at_once() {
        let budget = DecodeBudget::new(100 * UNIT, Duration::from_secs(3600));
        let err = budget
            .reserve(100 * UNIT + 1, &IMAGE, None)
            .await
            .unwrap_err();
        assert_eq!(err.client_code(), Some(ErrorCode::ImageTooLarge));
        assert!(err.to_string().contains("8000x8000"), "{err}");
        assert_eq!(budget.available_bytes(), 100 * UNIT);
    }

    #[tokio::test]
    async fn the_callers_deadline_shortens_the_wait() {
        let budget = DecodeBudget::new(10 * UNIT, Duration::from_secs(3600));
        let _all = budget.reserve(10 * UNIT, &IMAGE, None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(10);
        let err = budget
            .reserve(UNIT, &IMAGE, Some(deadline))
            .await
            .unwrap_err();
        assert!(matches!(err, PhotoError::DecodeBusy), "{err:?}");
    }
}
