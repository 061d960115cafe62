//! Erasing a caller (a user who asked for their personal data to be deleted): who is forgotten,
//! the digests that remember *that* they were forgotten (tombstones, never the ids themselves),
//! the pseudonyms that keep the per-hour client counts, and the blanking of records that arrive
//! after the erasure.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::error::StatsError;
use crate::store::NewLog;

/// At most this many client ids per call (a user has a few installs).
pub const MAX_CLIENT_IDS: usize = 100;
/// Ids longer than this (in bytes) are refused: the logs keep at most 64 bytes of each
/// (`RecordRequests` clips them), so an accepted id is exactly what a stored row holds.
pub const MAX_ID_BYTES: usize = 64;
/// Records of a forgotten caller are blanked on arrival for this many days after the erasure:
/// batches still on their way arrive within seconds (a sender gives up long before a day).
pub const ERASED_FOR_DAYS: i64 = 1;

/// SHA-256 of a typed id: what a tombstone holds.
pub type Digest = [u8; 32];

/// Tombstones noted before this are treated as absent and purged.
pub fn tombstone_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(ERASED_FOR_DAYS)
}

/// The tombstone of an openid. The prefixes keep an openid and a client id with the same text
/// apart.
pub fn openid_digest(openid: &str) -> Digest {
    Sha256::digest(format!("openid:{openid}")).into()
}

pub fn client_digest(client_id: &str) -> Digest {
    Sha256::digest(format!("client:{client_id}")).into()
}

/// A random stand-in for a forgotten client id in `hourly_clients`: `erased:` and 24 hex digits
/// (96 random bits, so two never meet), within the column's 64 characters.
pub fn pseudonym() -> String {
    format!("erased:{:024x}", rand::random::<u128>() >> 32)
}

/// A checked erasure request: a non-empty openid, or at least one client id, or both. Client
/// ids are distinct and sorted, so every eraser locks rows in the same order.
#[derive(Debug)]
pub struct Caller {
    openid: String,
    client_ids: BTreeSet<String>,
}

impl Caller {
    pub fn new(openid: String, client_ids: Vec<String>) -> Result<Self, StatsError> {
        if openid.len() > MAX_ID_BYTES {
            return Err(StatsError::invalid(
                "openid",
                format!("at most {MAX_ID_BYTES} bytes"),
            ));
        }
        if client_ids.len() > MAX_CLIENT_IDS {
            return Err(StatsError::invalid(
                "client_ids",
                format!("at most {MAX_CLIENT_IDS}"),
            ));
        }
        if client_ids.iter().any(|id| id.len() > MAX_ID_BYTES) {
            return Err(StatsError::invalid(
                "client_ids",
                format!("each at most {MAX_ID_BYTES} bytes"),
            ));
        }
        // An empty id names no one; matching it would blank every anonymous row.
        let client_ids: BTreeSet<String> =
            client_ids.into_iter().filter(|id| !id.is_empty()).collect();
        if openid.is_empty() && client_ids.is_empty() {
            return Err(StatsError::invalid(
                "openid",
                "an openid or at least one client id is required",
            ));
        }
        Ok(Self { openid, client_ids })
    }

    /// Empty when only client ids are forgotten.
    pub fn openid(&self) -> &str {
        &self.openid
    }

    pub fn client_ids(&self) -> &BTreeSet<String> {
        &self.client_ids
    }

    /// The tombstones of this caller, sorted (one lock order for concurrent erasures).
    pub fn digests(&self) -> Vec<Digest> {
        let openid = (!self.openid.is_empty()).then(|| openid_digest(&self.openid));
        let digests: BTreeSet<Digest> = openid
            .into_iter()
            .chain(self.client_ids.iter().map(|id| client_digest(id)))
            .collect();
        digests.into_iter().collect()
    }

    /// A fresh pseudonym for each client id: one per client for the whole call, so the client
    /// still counts once over a range of hours.
    pub fn pseudonyms(&self) -> BTreeMap<String, String> {
        self.client_ids
            .iter()
            .map(|id| (id.clone(), pseudonym()))
            .collect()
    }
}

/// The digests of a batch's distinct non-empty openids and client ids, sorted.
pub fn digests_of(logs: &[NewLog]) -> Vec<Digest> {
    let mut digests = BTreeSet::new();
    for log in logs {
        if !log.openid.is_empty() {
            digests.insert(openid_digest(&log.openid));
        }
        if !log.client_id.is_empty() {
            digests.insert(client_digest(&log.client_id));
        }
    }
    digests.into_iter().collect()
}

/// The batch with the ids of forgotten callers blanked, as `ForgetCaller` blanks stored rows: a
/// row of a forgotten openid or client loses both ids, so neither points at the other.
pub fn blanked(logs: &[NewLog], erased: &HashSet<Digest>) -> Vec<NewLog> {
    logs.iter()
        .map(|log| {
            let forgotten = (!log.openid.is_empty()
                && erased.contains(&openid_digest(&log.openid)))
                || (!log.client_id.is_empty() && erased.contains(&client_digest(&log.client_id)));
            if forgotten {
                NewLog {
                    openid: String::new(),
                    client_id: String::new(),
                    ..log.clone()
                }
            } else {
                log.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(openid: &str, client_id: &str) -> NewLog {
        NewLog {
            at: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            kind: crate::store::Kind::Http,
            endpoint: "/api/v1/location".into(),
            method: "POST".into(),
            status: 200,
            latency_ms: 5,
            client_id: client_id.into(),
            openid: openid.into(),
            source: String::new(),
            model_tokens: 0,
            error_code: String::new(),
            request_id: "r1".into(),
        }
    }

    #[test]
    fn digests_are_sha256_of_the_typed_id() {
        // sha256("openid:o1") and sha256("client:o1"): the same text, two different callers.
        assert_ne!(openid_digest("o1"), client_digest("o1"));
        assert_eq!(
            openid_digest("o1"),
            <[u8; 32]>::from(Sha256::digest(b"openid:o1"))
        );
    }

    #[test]
    fn pseudonyms_are_random_hex_behind_a_prefix() {
        let (a, b) = (pseudonym(), pseudonym());
        assert_ne!(a, b);
        let hex = a.strip_prefix("erased:").unwrap();
        assert_eq!(hex.len(), 24, "{a}");
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn a_caller_needs_an_id_and_ids_within_bounds() {
        assert!(Caller::new(String::new(), vec![]).is_err());
        assert!(Caller::new(String::new(), vec![String::new()]).is_err());
        assert!(Caller::new("o".repeat(65), vec![]).is_err());
        assert!(Caller::new(String::new(), vec!["c".repeat(65)]).is_err());
        assert!(Caller::new(String::new(), (0..101).map(|i| format!("c{i}")).collect()).is_err());
        assert!(Caller::new("o".repeat(64), (0..100).map(|i| format!("c{i}")).collect()).is_ok());

        let caller = Caller::new(
            String::new(),
            vec!["c2".into(), "c1".into(), "c2".into(), String::new()],
        )
        .unwrap();
        assert_eq!(caller.client_ids().len(), 2, "distinct, blanks dropped");
        assert_eq!(
            caller.digests().len(),
            2,
            "no tombstone for the empty openid"
        );
        let pseudonyms = caller.pseudonyms();
        assert_ne!(pseudonyms["c1"], pseudonyms["c2"]);
    }

    #[test]
    fn records_of_forgotten_callers_lose_both_ids() {
        let logs = [
            log("o_gone", "c_kept"),
            log("", "c_gone"),
            log("o_kept", "c_kept"),
            log("", ""),
        ];
        assert_eq!(digests_of(&logs).len(), 4, "o_gone, o_kept, c_kept, c_gone");
        let erased = HashSet::from([openid_digest("o_gone"), client_digest("c_gone")]);
        let ids: Vec<(String, String)> = blanked(&logs, &erased)
            .into_iter()
            .map(|log| (log.openid, log.client_id))
            .collect();
        let pair = |o: &str, c: &str| (o.to_owned(), c.to_owned());
        assert_eq!(
            ids,
            [
                pair("", ""),
                pair("", ""),
                pair("o_kept", "c_kept"),
                pair("", "")
            ]
        );
    }
}
