//! Official-account events and what they mean for bindings.

use crate::error::MembershipError;

/// The events we act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Subscribe,
    Scan,
    Unsubscribe,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Scan => "SCAN",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// A verified event, as the gateway passed it on.
#[derive(Clone, Debug)]
pub struct OfficialAccountEvent {
    pub openid: String,
    pub create_time: i64,
    pub kind: EventKind,
    pub event_key: String,
    pub ticket: String,
}

impl OfficialAccountEvent {
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.openid.is_empty() || self.openid.len() > 64 {
            return Err(MembershipError::invalid(
                "openid",
                "must be 1 to 64 characters",
            ));
        }
        if self.event_key.len() > 128 {
            return Err(MembershipError::invalid("event_key", "too long"));
        }
        Ok(())
    }

    /// The key WeChat's retries share: openid, CreateTime, event and key (as WxJava does).
    pub fn dedup_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.openid,
            self.create_time,
            self.kind.as_str(),
            self.event_key
        )
    }

    /// The scene id the event carries: `qrscene_<id>` on subscribe, `<id>` on SCAN.
    pub fn scene_id(&self) -> Option<u32> {
        let raw = match self.kind {
            EventKind::Subscribe => self.event_key.strip_prefix("qrscene_")?,
            EventKind::Scan => self.event_key.as_str(),
            EventKind::Unsubscribe => return None,
        };
        raw.parse::<u32>().ok().filter(|id| *id != 0)
    }
}

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    Bound,
    Followed,
    Unfollowed,
    Duplicate,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::Followed => "followed",
            Self::Unfollowed => "unfollowed",
            Self::Duplicate => "duplicate",
        }
    }
}

/// What became of a follow's or scan's scene when it did not simply bind its QR code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SceneNote {
    /// A plain follow, not through a QR code.
    NoScene,
    /// A scene no QR code of ours has.
    Unknown,
    /// The QR code expired before the scan: the app must show a new one.
    Expired,
    /// The same user scanned a code already bound to them: still bound, nothing changed.
    AlreadyBound,
    /// Another user had bound the code first.
    Taken,
    /// A code the app has since replaced (or an event without the code's ticket).
    Stale,
}

impl SceneNote {
    /// The text kept in the event's row.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoScene => "no_scene",
            Self::Unknown => "unknown_scene",
            Self::Expired => "expired_scene",
            Self::AlreadyBound => "already_bound",
            Self::Taken => "scene_taken",
            Self::Stale => "stale_qrcode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, key: &str) -> OfficialAccountEvent {
        OfficialAccountEvent {
            openid: "o1".into(),
            create_time: 1,
            kind,
            event_key: key.into(),
            ticket: String::new(),
        }
    }

    #[test]
    fn scene_ids_follow_wechat_event_keys() {
        assert_eq!(
            event(EventKind::Subscribe, "qrscene_42").scene_id(),
            Some(42)
        );
        assert_eq!(event(EventKind::Subscribe, "42").scene_id(), None);
        assert_eq!(event(EventKind::Subscribe, "").scene_id(), None);
        assert_eq!(event(EventKind::Subscribe, "qrscene_0").scene_id(), None);
        assert_eq!(event(EventKind::Scan, "42").scene_id(), Some(42));
        assert_eq!(event(EventKind::Scan, "qrscene_42").scene_id(), None);
        assert_eq!(event(EventKind::Scan, "-1").scene_id(), None);
        assert_eq!(event(EventKind::Unsubscribe, "42").scene_id(), None);
    }

    #[test]
    fn retries_share_a_dedup_key() {
        let a = event(EventKind::Scan, "42");
        let mut b = a.clone();
        assert_eq!(a.dedup_key(), b.dedup_key());
        b.create_time = 2;
        assert_ne!(a.dedup_key(), b.dedup_key());
    }

    /// The texts stored in `wechat_events.detail` before the note was a type; rows already
    /// written keep them, so they never change.
    #[test]
    fn scene_notes_keep_their_stored_texts() {
        let texts: Vec<&str> = [
            SceneNote::NoScene,
            SceneNote::Unknown,
            SceneNote::Expired,
            SceneNote::AlreadyBound,
            SceneNote::Taken,
            SceneNote::Stale,
        ]
        .into_iter()
        .map(SceneNote::as_str)
        .collect();
        assert_eq!(
            texts,
            [
                "no_scene",
                "unknown_scene",
                "expired_scene",
                "already_bound",
                "scene_taken",
                "stale_qrcode"
            ]
        );
    }
}
