//! Who pays for a cloud answer, asked of the membership service (never taken from the caller):
//! members pay nothing; others reserve one credit under a unique reference, committed when the
//! cloud answered and released when it did not (docs/architecture.md, "Credit holds"), so a
//! failed call never costs a credit. If this instance dies in between, membership frees the hold
//! when it expires.

use proto::ErrorCode;
use std::time::Duration;

use tonic::Code;
use tonic::service::interceptor::InterceptedService;

use platform::grpc::{PropagateContext, ServiceChannel, ServiceToken};
use proto::membership::v1 as pb;
use proto::membership::v1::credit_service_client::CreditServiceClient;

use crate::classify::domain::CloudSkip;

type Client = CreditServiceClient<InterceptedService<ServiceChannel, PropagateContext>>;

/// Credits for one cloud classification.
const CLOUD_PRICE: i64 = 1;
/// Attempts of an idempotent settle (commit or release) before leaving it to the hold's expiry.
const SETTLE_ATTEMPTS: u32 = 3;

#[derive(Clone)]
pub struct CreditGate {
    client: Client,
    hold_ttl_secs: u32,
}

/// The right to one cloud call.
#[derive(Debug)]
pub enum Payer {
    /// An active member: free. `available` is their spendable credits.
    Member { available: i64 },
    /// One credit held under `reference`.
    Reserved { reference: String, available: i64 },
}

/// The cloud may not be used; `available` is the balance when it was read.
#[derive(Debug)]
pub struct Refusal {
    pub reason: CloudSkip,
    pub available: Option<i64>,
}

impl CreditGate {
    pub fn new(
        membership_urls: &str,
        timeout: Duration,
        token: &ServiceToken,
        hold_ttl_secs: u32,
    ) -> anyhow::Result<Self> {
        let channel = platform::grpc::channel(membership_urls, timeout, token)?;
        Ok(Self {
            client: CreditServiceClient::with_interceptor(channel, PropagateContext),
            hold_ttl_secs,
        })
    }

    /// Decides whether `user_id` may have a cloud answer, reserving its price unless a member.
    pub async fn authorize(&self, user_id: i64) -> Result<Payer, Refusal> {
        let mut client = self.client.clone();
        let balance = client
            .get_balance(pb::GetBalanceRequest { user_id })
            .await
            .map_err(|status| refusal(&status, None))?
            .into_inner();
        if balance.is_member {
            return Ok(Payer::Member {
                available: balance.available,
            });
        }
        if balance.available < CLOUD_PRICE {
            return Err(Refusal {
                reason: CloudSkip::InsufficientCredits,
                available: Some(balance.available),
            });
        }
        let reference = format!("classify:{}", uuid::Uuid::new_v4().simple());
        let hold = client
            .reserve(pb::ReserveRequest {
                user_id,
                amount: CLOUD_PRICE,
                reference: reference.clone(),
                ttl_seconds: self.hold_ttl_secs,
            })
            .await
            .map_err(|status| refusal(&status, Some(balance.available)))?
            .into_inner();
        Ok(Payer::Reserved {
            reference,
            available: hold
                .balance
                .map_or(balance.available - CLOUD_PRICE, |b| b.available),
        })
    }

    /// Spends the held credit. Returns the balance after, or None when membership could not be
    /// reached (the hold then expires and the user is not charged; logged as an error).
    pub async fn commit(&self, reference: &str) -> Option<i64> {
        let request = pb::CommitRequest {
            reference: reference.to_owned(),
            used: CLOUD_PRICE,
        };
        self.settle("commit", reference, |mut client| {
            let request = request.clone();
            async move { client.commit(request).await }
        })
        .await
    }

    /// Frees the held credit. Returns the balance after, when membership answered.
    pub async fn release(&self, reference: &str) -> Option<i64> {
        let request = pb::ReleaseRequest {
            reference: reference.to_owned(),
        };
        self.settle("release", reference, |mut client| {
            let request = request.clone();
            async move { client.release(request).await }
        })
        .await
    }

    async fn settle<F, Fut>(&self, action: &str, reference: &str, call: F) -> Option<i64>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::HoldResponse>, tonic::Status>>,
    {
        for attempt in 1..=SETTLE_ATTEMPTS {
            match call(self.client.clone()).await {
                Ok(answer) => return answer.into_inner().balance.map(|b| b.available),
                // Both calls are idempotent by reference, so repeating one is safe; an instance
                // that died under the call leaves the next attempt to another.
                Err(status)
                    if attempt < SETTLE_ATTEMPTS
                        && (status.code() == Code::DeadlineExceeded
                            || platform::grpc::transport_failed(&status)) =>
                {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(status) => {
                    tracing::error!(action, reference, error = %status, "credit hold not settled; it will expire");
                    return None;
                }
            }
        }
        None
    }
}

/// Why credits could not be held for an edit.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("not enough credits")]
    Insufficient,
    #[error("the membership service could not be asked: {0}")]
    Unavailable(String),
}

/// Why held credits could not be spent.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The hold was released or expired before the work was done: it must not be delivered.
    #[error("the hold is no longer there to spend")]
    Settled,
    #[error("the membership service could not be asked: {0}")]
    Unavailable(String),
}

impl CreditGate {
    /// Holds `amount` credits of `user_id` under `reference` for `ttl_secs` (an edit's outputs).
    /// Idempotent: the same reference holds once. Returns the spendable balance after.
    pub async fn hold(
        &self,
        user_id: i64,
        amount: i64,
        reference: &str,
        ttl_secs: u32,
    ) -> Result<i64, HoldError> {
        let answer = self
            .client
            .clone()
            .reserve(pb::ReserveRequest {
                user_id,
                amount,
                reference: reference.to_owned(),
                ttl_seconds: ttl_secs,
            })
            .await;
        match answer {
            Ok(hold) => Ok(hold.into_inner().balance.map_or(0, |b| b.available)),
            Err(status)
                if platform::grpc::error_code(&status) == Some(ErrorCode::InsufficientCredits) =>
            {
                Err(HoldError::Insufficient)
            }
            // A user without a credits row has nothing to spend.
            Err(status) if status.code() == Code::NotFound => Err(HoldError::Insufficient),
            Err(status) => Err(HoldError::Unavailable(status.to_string())),
        }
    }

    /// Spends `used` of the hold and frees the rest. Idempotent for the same `used`.
    pub async fn capture(&self, reference: &str, used: i64) -> Result<i64, CaptureError> {
        let answer = self
            .client
            .clone()
            .commit(pb::CommitRequest {
                reference: reference.to_owned(),
                used,
            })
            .await;
        match answer {
            Ok(hold) => Ok(hold.into_inner().balance.map_or(0, |b| b.available)),
            Err(status)
                if matches!(
                    platform::grpc::error_code(&status),
                    Some(ErrorCode::HoldSettled | ErrorCode::NotFound)
                ) =>
            {
                tracing::error!(reference, error = %status, "held credits are gone; the work is not delivered");
                Err(CaptureError::Settled)
            }
            Err(status) => Err(CaptureError::Unavailable(status.to_string())),
        }
    }
}

fn refusal(status: &tonic::Status, available: Option<i64>) -> Refusal {
    let reason = match platform::grpc::error_code(status) {
        Some(ErrorCode::InsufficientCredits) => CloudSkip::InsufficientCredits,
        // A user without a credits row has nothing to spend.
        _ if status.code() == Code::NotFound => CloudSkip::InsufficientCredits,
        _ => {
            tracing::warn!(error = %status, "membership could not be asked about credits");
            CloudSkip::CreditsUnavailable
        }
    };
    Refusal { reason, available }
}
