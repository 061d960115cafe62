//! Use cases of client binding: QR creation, status polls, official-account events and client
//! authentication. Each owns its transaction and its choice of primary or replica.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sqlx::Acquire;

use platform::db::freshness::Freshness;
use platform::db::{Pools, ReadFrom, last_gtid};

use crate::binding_changes::BindingChanges;
use crate::domain::binding::{BindingState, BindingStatus, ClientId, ClientToken};
use crate::domain::event::{EventKind, EventOutcome, OfficialAccountEvent, SceneNote};
use crate::error::MembershipError;
use crate::metrics::{CreditMetrics, CreditOperation};
use crate::orders::user_subject;
use crate::store::{self, bindings::ClientState, ledger};
use crate::wechat::WechatApi;

/// The most apps one user's device list shows; more than this bound at once is no normal use.
const USER_CLIENTS_MAX: u32 = 50;

/// Rules of binding, from config.
#[derive(Clone, Debug)]
pub struct BindingRules {
    pub qrcode_expire_seconds: u32,
    pub mp_base: String,
    pub new_follower_credits: i64,
}

/// A QR code handed to an app, with the app's new bearer token.
pub struct IssuedQrCode {
    pub scene_id: u32,
    pub ticket: String,
    pub qr_url: String,
    pub image_url: String,
    pub expires_at: DateTime<Utc>,
    pub expire_seconds: u32,
    pub client_token: ClientToken,
}

pub struct BindingView {
    pub state: BindingState,
    pub openid: Option<String>,
    pub user_id: Option<i64>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

pub struct EventResult {
    pub outcome: EventOutcome,
    /// The event created the user's row.
    pub new_user: bool,
    /// Welcome credits this event granted (once per openid, ever).
    pub granted_credits: i64,
    pub remaining_credits: i64,
    /// What became of the scene when it did not simply bind; None when it did, or for an
    /// unfollow.
    pub scene_note: Option<SceneNote>,
}

pub struct ClientIdentity {
    pub client_id: String,
    pub openid: Option<String>,
    pub user_id: Option<i64>,
    /// Set once bound.
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Bindings {
    pools: Pools,
    wechat: WechatApi,
    freshness: Freshness,
    changes: BindingChanges,
    rules: BindingRules,
    metrics: CreditMetrics,
}

impl Bindings {
    pub fn new(
        pools: Pools,
        wechat: WechatApi,
        freshness: Freshness,
        changes: BindingChanges,
        rules: BindingRules,
    ) -> Self {
        Self {
            pools,
            wechat,
            freshness,
            changes,
            rules,
            metrics: CreditMetrics::new(),
        }
    }

    /// Creates or refreshes the client's binding (a new token, back to pending) and asks WeChat
    /// for a temporary QR code whose scene id is the binding's row id. A bound client's binding
    /// is refreshed only with its current token (`presented`): anybody may know a client id, so
    /// without the token nothing changes and the app stays signed in.
    pub async fn create_qrcode(
        &self,
        client_id: &ClientId,
        presented: Option<&ClientToken>,
    ) -> Result<IssuedQrCode, MembershipError> {
        let client_token = ClientToken::generate();
        let requested_expiry =
            Utc::now() + ChronoDuration::seconds(i64::from(self.rules.qrcode_expire_seconds));
        let scene_id = {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let mut current =
                store::bindings::client_state(&mut tx, client_id.as_str(), false).await?;
            if current.is_some() {
                current = store::bindings::client_state(&mut tx, client_id.as_str(), true).await?;
            }
            if let Some(state) = &current
                && state.status == BindingStatus::Completed
                && !presented.is_some_and(|token| token.matches(&state.client_token_hash))
            {
                return Err(MembershipError::ClientBound);
            }
            let scene_id = store::bindings::upsert_pending(
                &mut tx,
                client_id.as_str(),
                &client_token.hash(),
                requested_expiry,
            )
            .await?;
            tx.commit().await?;
            let gtid = last_gtid(&mut conn).await;
            self.freshness
                .wrote(&client_subject(client_id.as_str()), gtid.as_deref())
                .await;
            // The new token is known at once, from the primary, while the replica catches up:
            // an unknown token without such a record is refused without asking the primary.
            self.freshness
                .wrote(&token_subject(&client_token.hash()), gtid.as_deref())
                .await;
            // The old token stops working at once, even on a lagging replica and in the
            // gateways' caches.
            if let Some(ClientState {
                client_token_hash: old_hash,
                ..
            }) = &current
            {
                self.freshness
                    .wrote(&token_subject(old_hash), gtid.as_deref())
                    .await;
                self.changes
                    .publish(client_id.as_str(), Some(old_hash.as_ref()))
                    .await;
            }
            scene_id
        };
        // No connection is held while WeChat answers.
        let qrcode = self
            .wechat
            .create_qrcode(scene_id, self.rules.qrcode_expire_seconds)
            .await?;
        let expires_at = Utc::now() + ChronoDuration::seconds(i64::from(qrcode.expire_seconds));
        let mut conn = self.pools.primary.acquire().await?;
        store::bindings::set_qrcode(
            &mut *conn,
            scene_id,
            &qrcode.ticket,
            &qrcode.url,
            expires_at,
        )
        .await?;
        let gtid = last_gtid(&mut conn).await;
        self.freshness
            .wrote(&client_subject(client_id.as_str()), gtid.as_deref())
            .await;
        let image_url = format!(
            "{}/cgi-bin/showqrcode?ticket={}",
            self.rules.mp_base.trim_end_matches('/'),
            url::form_urlencoded::byte_serialize(qrcode.ticket.as_bytes()).collect::<String>()
        );
        Ok(IssuedQrCode {
            scene_id,
            ticket: qrcode.ticket,
            qr_url: qrcode.url,
            image_url,
            expires_at,
            expire_seconds: qrcode.expire_seconds,
            client_token,
        })
    }

    /// Returns the binding of a client that proves itself with its token. Reads the replica unless
    /// the client's last write may not be there yet; any negative answer from the replica is
    /// checked on the primary before it is believed.
    pub async fn status(
        &self,
        client_id: &ClientId,
        token: &ClientToken,
    ) -> Result<BindingView, MembershipError> {
        let wanted = self
            .freshness
            .read_from(&self.pools, &client_subject(client_id.as_str()))
            .await;
        let (mut row, read) = self
            .pools
            .read_from(wanted, |pool| {
                store::bindings::find_by_client(pool, client_id.as_str())
            })
            .await;
        let trusted = matches!(&row, Ok(Some(found)) if token.matches(&found.client_token_hash));
        if !trusted && read == ReadFrom::Replica {
            row = store::bindings::find_by_client(&self.pools.primary, client_id.as_str()).await;
        }
        let row = row?.ok_or(MembershipError::InvalidClientToken)?;
        if !token.matches(&row.client_token_hash) {
            return Err(MembershipError::InvalidClientToken);
        }
        Ok(BindingView {
            state: BindingState::derive(row.status, row.expire_at),
            openid: row.openid,
            user_id: row.user_id,
            completed_at: row.completed_at,
            expires_at: row.expire_at,
        })
    }

    /// Applies a verified official-account event exactly once.
    pub async fn handle_event(
        &self,
        event: &OfficialAccountEvent,
    ) -> Result<EventResult, MembershipError> {
        event.validate()?;
        let dedup_key = event.dedup_key();
        let mut conn = self.pools.primary.acquire().await?;
        let mut tx = conn.begin().await?;
        let claimed = store::events::claim(
            &mut tx,
            &dedup_key,
            &event.openid,
            event.kind.as_str(),
            &event.event_key,
        )
        .await?;
        if !claimed {
            tx.rollback().await?;
            let remaining = store::users::remaining_credits(&mut conn, &event.openid)
                .await?
                .unwrap_or(0);
            return Ok(EventResult {
                outcome: EventOutcome::Duplicate,
                new_user: false,
                granted_credits: 0,
                remaining_credits: remaining,
                scene_note: None,
            });
        }
        let mut new_user = false;
        let mut welcome_granted = false;
        let mut bound_client = None;
        let (outcome, scene_note) = match event.kind {
            EventKind::Unsubscribe => {
                store::users::mark_unfollowed(&mut tx, &event.openid).await?;
                (EventOutcome::Unfollowed, None)
            }
            EventKind::Subscribe | EventKind::Scan => {
                let (user_id, created) =
                    store::users::upsert_follower(&mut tx, &event.openid).await?;
                // The welcome credits are keyed by openid in the ledger, so a user first seen as an
                // H5 buyer still gets them on their first follow, and nobody gets them twice.
                new_user = created;
                // A WeChat account whose data was erased got its welcome credits before.
                let had_them = ledger::find_change(
                    &mut tx,
                    ledger::Reason::FollowBonus,
                    &crate::personal_data::erased_follow_bonus_reference(&event.openid),
                )
                .await?
                .is_some();
                if self.rules.new_follower_credits > 0 && !had_them {
                    welcome_granted = ledger::grant_once(
                        &mut tx,
                        user_id,
                        self.rules.new_follower_credits,
                        ledger::Reason::FollowBonus,
                        &event.openid,
                    )
                    .await?;
                }
                let (outcome, problem, client) = self.bind_scene(&mut tx, event, user_id).await?;
                bound_client = client;
                (outcome, problem)
            }
        };
        let detail = scene_note.map_or("", SceneNote::as_str);
        store::events::record_outcome(&mut tx, &dedup_key, outcome.as_str(), detail).await?;
        let remaining = store::users::remaining_credits(&mut tx, &event.openid)
            .await?
            .unwrap_or(0);
        tx.commit().await?;
        if welcome_granted {
            self.metrics.record(
                CreditOperation::Grant,
                "ok",
                self.rules.new_follower_credits,
            );
        }
        // The user's row changed (follow state, welcome credits): the member page reads it
        // right after, perhaps before the replica has applied it.
        let gtid = last_gtid(&mut conn).await;
        self.freshness
            .wrote(&user_subject(&event.openid), gtid.as_deref())
            .await;
        if let Some(client_id) = bound_client {
            self.freshness
                .wrote(&client_subject(&client_id), gtid.as_deref())
                .await;
            // After the freshness record: a woken long poll reads the binding as of this write.
            self.changes.publish(&client_id, None).await;
        }
        Ok(EventResult {
            outcome,
            new_user,
            granted_credits: if welcome_granted {
                self.rules.new_follower_credits
            } else {
                0
            },
            remaining_credits: remaining,
            scene_note,
        })
    }

    /// Binds the event's scene to the user when the scene is a live, pending QR code.
    async fn bind_scene(
        &self,
        conn: &mut sqlx::MySqlConnection,
        event: &OfficialAccountEvent,
        user_id: i64,
    ) -> Result<(EventOutcome, Option<SceneNote>, Option<String>), MembershipError> {
        let Some(scene_id) = event.scene_id() else {
            return Ok((EventOutcome::Followed, Some(SceneNote::NoScene), None));
        };
        let Some(row) = store::bindings::lock_scene(conn, scene_id).await? else {
            return Ok((EventOutcome::Followed, Some(SceneNote::Unknown), None));
        };
        if row.status == BindingStatus::Completed {
            return Ok(if row.openid.as_deref() == Some(event.openid.as_str()) {
                (EventOutcome::Bound, Some(SceneNote::AlreadyBound), None)
            } else {
                (EventOutcome::Followed, Some(SceneNote::Taken), None)
            });
        }
        if row.expire_at <= Utc::now() {
            return Ok((EventOutcome::Followed, Some(SceneNote::Expired), None));
        }
        // A refreshed binding has a new ticket; an event from a superseded QR code binds nothing.
        // WeChat puts the QR code's ticket in every scan event, so one without it binds nothing
        // either (it cannot be checked against the live code).
        if event.ticket.is_empty() || row.ticket.as_deref() != Some(event.ticket.as_str()) {
            return Ok((EventOutcome::Followed, Some(SceneNote::Stale), None));
        }
        store::bindings::complete(conn, row.id, &event.openid, user_id).await?;
        Ok((EventOutcome::Bound, None, Some(row.client_id)))
    }

    /// Signs an app out: its token stops working at once (even where the replica lags) and the
    /// client is no longer bound. Returns the client id.
    pub async fn unbind(&self, token: &ClientToken) -> Result<String, MembershipError> {
        let hash = token.hash();
        let mut conn = self.pools.primary.acquire().await?;
        let mut tx = conn.begin().await?;
        let unknown = ClientToken::generate().hash();
        let client_id = store::bindings::revoke(&mut tx, &hash, &unknown)
            .await?
            .ok_or(MembershipError::InvalidClientToken)?;
        tx.commit().await?;
        let gtid = last_gtid(&mut conn).await;
        self.signed_out(&client_id, &hash, &[], gtid.as_deref())
            .await;
        tracing::info!(client_id, "client signed out");
        Ok(client_id)
    }

    /// The apps bound to `openid` now, most recently bound first. Reads the replica unless the
    /// user's last binding change (a scan, a sign-out from the member page) may not be there yet.
    pub async fn user_clients(
        &self,
        openid: &str,
    ) -> Result<Vec<store::bindings::UserClientRow>, MembershipError> {
        let wanted = self
            .freshness
            .read_from(&self.pools, &user_subject(openid))
            .await;
        let rows = self
            .pools
            .read_from(wanted, |pool| {
                store::bindings::bound_to_user(pool, openid, USER_CLIENTS_MAX)
            })
            .await
            .0?;
        Ok(rows)
    }

    /// Signs out one of `openid`'s apps (the member page's device list), as the app's own
    /// sign-out would. NotFound when `client_id` is not bound to this user.
    pub async fn sign_out_user_client(
        &self,
        openid: &str,
        client_id: &ClientId,
    ) -> Result<(), MembershipError> {
        let mut conn = self.pools.primary.acquire().await?;
        let mut tx = conn.begin().await?;
        let unknown = ClientToken::generate().hash();
        let hash =
            store::bindings::revoke_users_client(&mut tx, openid, client_id.as_str(), &unknown)
                .await?
                .ok_or(MembershipError::NotFound("client"))?;
        tx.commit().await?;
        let gtid = last_gtid(&mut conn).await;
        self.signed_out(
            client_id.as_str(),
            &hash,
            &[user_subject(openid)],
            gtid.as_deref(),
        )
        .await;
        tracing::info!(
            client_id = client_id.as_str(),
            "client signed out by its user"
        );
        Ok(())
    }

    /// What follows a sign-out: reads of the token, the client (and `also` subjects) go to the
    /// primary until the replica has the change, and every gateway drops the cached token.
    pub(crate) async fn signed_out(
        &self,
        client_id: &str,
        token_hash: &[u8],
        also: &[String],
        gtid: Option<&str>,
    ) {
        let subjects = [token_subject(token_hash), client_subject(client_id)];
        for subject in subjects.iter().chain(also) {
            self.freshness.wrote(subject, gtid).await;
        }
        self.changes.publish(client_id, Some(token_hash)).await;
    }

    /// Resolves an app's bearer token. A token is valid from its QR code on; the client is bound
    /// once its binding completed.
    pub async fn authenticate(
        &self,
        token: &ClientToken,
    ) -> Result<ClientIdentity, MembershipError> {
        let hash = token.hash();
        let from_replica = self
            .pools
            .read(|pool| store::bindings::find_by_token_hash(pool, &hash))
            .await;
        // The replica's answer (bound, or unknown) holds unless the token was written within the
        // freshness window (issued, rotated, revoked): that write may be newer than the row just
        // read, even when the replica applies it a moment later, so the primary has the last
        // word. Guessing tokens therefore costs the primary nothing; a pending binding, or a
        // replica that cannot answer, is read there too.
        let replica_answer = match from_replica {
            Ok(Some(row)) if row.status == BindingStatus::Completed => Some(Some(row)),
            Ok(None) => Some(None),
            _ => None,
        };
        let row = match replica_answer {
            Some(answer) if !self.freshness.remembers(&token_subject(&hash)).await => answer,
            _ => store::bindings::find_by_token_hash(&self.pools.primary, &hash).await?,
        };
        let row = row.ok_or(MembershipError::InvalidClientToken)?;
        let bound = row.status == BindingStatus::Completed;
        Ok(ClientIdentity {
            client_id: row.client_id,
            openid: if bound { row.openid } else { None },
            user_id: if bound { row.user_id } else { None },
            completed_at: if bound { row.completed_at } else { None },
            expires_at: row.expire_at,
        })
    }

    /// The user a client is bound to now (None when it is not bound). Reads the replica unless
    /// the client's last write (a new QR code, a scan, a sign-out) may not be there yet.
    pub async fn current_user(&self, client_id: &ClientId) -> Result<Option<i64>, MembershipError> {
        let wanted = self
            .freshness
            .read_from(&self.pools, &client_subject(client_id.as_str()))
            .await;
        let row = self
            .pools
            .read_from(wanted, |pool| {
                store::bindings::find_by_client(pool, client_id.as_str())
            })
            .await
            .0?;
        Ok(row
            .filter(|row| row.status == BindingStatus::Completed)
            .and_then(|row| row.user_id))
    }
}

fn client_subject(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// A token's own freshness subject, written when the token is rotated or revoked.
fn token_subject(hash: &[u8]) -> String {
    format!("token:{}", hex::encode(hash))
}
