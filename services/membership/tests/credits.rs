//! The credits API other services use (membership gRPC), tested on the membership service alone:
//! guarded, idempotent, never negative.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: failing loudly is the point

mod service;

use proto::ErrorCode;
use proto::membership::v1 as pb;

use service::{Membership, Settings};

#[tokio::test]
async fn hundred_concurrent_charges_on_fifty_credits_spend_exactly_fifty() {
    let membership = Membership::start(Settings::default()).await;
    let user_id = membership.user_with_credits("o_spender", 50).await;
    let client = membership.credit_client();
    let charges = (0..100).map(|i| {
        let mut client = client.clone();
        async move {
            client
                .charge(pb::ChargeRequest {
                    user_id,
                    amount: 1,
                    reference: format!("task-{i}"),
                })
                .await
        }
    });
    let results = futures::future::join_all(charges).await;
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(succeeded, 50);
    assert_eq!(refused.len(), 50);
    for status in refused {
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            platform::grpc::error_code(status),
            Some(ErrorCode::InsufficientCredits)
        );
    }
    let mut client = client.clone();
    let balance = client
        .get_balance(pb::GetBalanceRequest { user_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((balance.remaining, balance.available), (0, 0));
    membership.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_retried_charge_is_charged_once() {
    let membership = Membership::start(Settings::default()).await;
    let user_id = membership.user_with_credits("o_retry", 10).await;
    let mut client = membership.credit_client();
    for _ in 0..10 {
        let balance = client
            .charge(pb::ChargeRequest {
                user_id,
                amount: 3,
                reference: "task-same".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(balance.remaining, 7);
    }
    membership.assert_ledger_invariant().await;
}

#[tokio::test]
async fn reserve_commit_and_release_are_exact_and_idempotent() {
    let membership = Membership::start(Settings::default()).await;
    let user_id = membership.user_with_credits("o_holder", 10).await;
    let mut client = membership.credit_client();
    let reserve = |reference: &str, amount: i64| pb::ReserveRequest {
        user_id,
        amount,
        reference: reference.into(),
        ttl_seconds: 600,
    };
    // Reserve 4 twice under one reference: one hold.
    for _ in 0..2 {
        let hold = client
            .reserve(reserve("edit-1", 4))
            .await
            .unwrap()
            .into_inner();
        let balance = hold.balance.unwrap();
        assert_eq!(
            (balance.remaining, balance.held, balance.available),
            (10, 4, 6)
        );
    }
    // The same reference for another amount is a conflict, not a second hold.
    let err = client.reserve(reserve("edit-1", 5)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    // More than available is refused while the hold stands.
    let err = client.reserve(reserve("edit-2", 7)).await.unwrap_err();
    assert_eq!(
        platform::grpc::error_code(&err),
        Some(ErrorCode::InsufficientCredits)
    );
    // Commit 3 of the 4, twice: charged 3 once, the 4th freed.
    for _ in 0..2 {
        let hold = client
            .commit(pb::CommitRequest {
                reference: "edit-1".into(),
                used: 3,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(hold.status(), pb::HoldStatus::Captured);
        let balance = hold.balance.unwrap();
        assert_eq!((balance.remaining, balance.held), (7, 0));
    }
    // A release after the commit changes nothing; a commit after a release is refused.
    let hold = client
        .release(pb::ReleaseRequest {
            reference: "edit-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.status(), pb::HoldStatus::Captured);
    client.reserve(reserve("edit-3", 5)).await.unwrap();
    for _ in 0..3 {
        let hold = client
            .release(pb::ReleaseRequest {
                reference: "edit-3".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(hold.status(), pb::HoldStatus::Released);
        assert_eq!(hold.balance.unwrap().available, 7);
    }
    let err = client
        .commit(pb::CommitRequest {
            reference: "edit-3".into(),
            used: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        platform::grpc::error_code(&err),
        Some(ErrorCode::HoldSettled)
    );
    membership.assert_ledger_invariant().await;
}

#[tokio::test]
async fn commit_and_release_racing_on_one_hold_settle_it_once() {
    let membership = Membership::start(Settings::default()).await;
    let user_id = membership.user_with_credits("o_racer", 40).await;
    let client = membership.credit_client();
    for round in 0..20 {
        let reference = format!("race-{round}");
        let mut c = client.clone();
        c.reserve(pb::ReserveRequest {
            user_id,
            amount: 2,
            reference: reference.clone(),
            ttl_seconds: 600,
        })
        .await
        .unwrap();
        let (mut a, mut b) = (client.clone(), client.clone());
        let commit = a.commit(pb::CommitRequest {
            reference: reference.clone(),
            used: 2,
        });
        let release = b.release(pb::ReleaseRequest {
            reference: reference.clone(),
        });
        let (committed, released) = tokio::join!(commit, release);
        let released = released.unwrap().into_inner();
        match committed {
            Ok(hold) => assert_eq!(hold.into_inner().status(), pb::HoldStatus::Captured),
            Err(status) => {
                assert_eq!(
                    platform::grpc::error_code(&status),
                    Some(ErrorCode::HoldSettled)
                );
                assert_eq!(released.status(), pb::HoldStatus::Released);
            }
        }
    }
    let mut c = client.clone();
    let balance = c
        .get_balance(pb::GetBalanceRequest { user_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.held, 0);
    assert_eq!((40 - balance.remaining) % 2, 0);
    membership.assert_ledger_invariant().await;
}

#[tokio::test]
async fn the_janitor_releases_expired_holds_once() {
    let membership = Membership::start(Settings {
        hold_janitor_interval_ms: 100,
        instances: 2,
    })
    .await;
    let user_id = membership.user_with_credits("o_crashed", 5).await;
    let mut client = membership.credit_client();
    client
        .reserve(pb::ReserveRequest {
            user_id,
            amount: 5,
            reference: "dead-task".into(),
            ttl_seconds: 1,
        })
        .await
        .unwrap();
    let mut balance = None;
    for _ in 0..100 {
        let now = client
            .get_balance(pb::GetBalanceRequest { user_id })
            .await
            .unwrap()
            .into_inner();
        if now.held == 0 {
            balance = Some(now);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let balance = balance.expect("the hold was never released");
    assert_eq!((balance.remaining, balance.available), (5, 5));
    let hold = client
        .release(pb::ReleaseRequest {
            reference: "dead-task".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hold.status(), pb::HoldStatus::Released);
    assert_eq!(
        hold.balance.unwrap().held,
        0,
        "a second release frees nothing"
    );
    membership.assert_ledger_invariant().await;
}

fn grant_request(user_id: i64, amount: i64, reason: &str, reference: &str) -> pb::GrantRequest {
    pb::GrantRequest {
        user_id,
        amount,
        reason: reason.into(),
        reference: reference.into(),
        note: "补偿：编辑任务失败".into(),
        actor: "ops-tool".into(),
    }
}

#[tokio::test]
async fn grants_accept_only_known_reasons_apply_once_and_leave_an_audit_row() {
    let membership = Membership::start(Settings::default()).await;
    let user_id = membership.user_with_credits("o_granted", 1).await;
    let mut client = membership.credit_client();
    for _ in 0..3 {
        let balance = client
            .grant(grant_request(user_id, 5, "admin_adjust", "audit-1"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(balance.remaining, 6);
    }
    let pool = membership.db.primary().await;
    let audit: Vec<(String, String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT admin, action, delta, reason, reference FROM admin_audit \
         WHERE user_id = ? AND admin = 'ops-tool'",
    )
    .bind(user_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        audit,
        vec![(
            "ops-tool".into(),
            "grant".into(),
            5,
            "补偿：编辑任务失败".into(),
            Some("audit-1".into())
        )],
        "one audit row for the grant applied, none for its repeats"
    );
    let refused = [
        ("a reason no service may grant", {
            grant_request(user_id, 5, "purchase", "fake")
        }),
        (
            "no note",
            pb::GrantRequest {
                note: " ".into(),
                ..grant_request(user_id, 5, "admin_adjust", "audit-2")
            },
        ),
        (
            "no actor",
            pb::GrantRequest {
                actor: String::new(),
                ..grant_request(user_id, 5, "admin_adjust", "audit-3")
            },
        ),
    ];
    for (case, request) in refused {
        let err = client.grant(request).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{case}");
    }
    // The used reference for another amount is another grant: refused, nothing changes.
    let err = client
        .grant(grant_request(user_id, 50, "admin_adjust", "audit-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        platform::grpc::error_code(&err),
        Some(ErrorCode::ReferenceConflict)
    );
    let balance = client
        .get_balance(pb::GetBalanceRequest { user_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(balance.remaining, 6);
    membership.assert_ledger_invariant().await;
}

/// A charge reference is one charge: the same user and amount again is "already charged", but
/// another user or amount under it is refused and changes nothing, even when they race.
#[tokio::test]
async fn a_used_charge_reference_is_refused_for_another_user_or_amount() {
    let membership = Membership::start(Settings::default()).await;
    let alice = membership.user_with_credits("o_alice", 10).await;
    let bob = membership.user_with_credits("o_bob", 10).await;
    let client = membership.credit_client();
    let charge = |user_id: i64, amount: i64| {
        let mut client = client.clone();
        async move {
            client
                .charge(pb::ChargeRequest {
                    user_id,
                    amount,
                    reference: "task-shared".into(),
                })
                .await
        }
    };
    // Ten copies from each user at once: exactly one charge lands.
    let racing = (0..20).map(|i| charge(if i % 2 == 0 { alice } else { bob }, 2));
    let results = futures::future::join_all(racing).await;
    let pool = membership.db.primary().await;
    let (charged_user,): (i64,) = sqlx::query_as(
        "SELECT user_id FROM credit_ledger WHERE reason = 'charge' AND reference = 'task-shared'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    for (i, result) in results.iter().enumerate() {
        let user = if i % 2 == 0 { alice } else { bob };
        if user == charged_user {
            assert_eq!(result.as_ref().unwrap().get_ref().remaining, 8);
        } else {
            let err = result.as_ref().unwrap_err();
            assert_eq!(err.code(), tonic::Code::AlreadyExists);
            assert_eq!(
                platform::grpc::error_code(err),
                Some(ErrorCode::ReferenceConflict)
            );
        }
    }
    let other = if charged_user == alice { bob } else { alice };
    let err = charge(charged_user, 3).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "another amount");
    assert_eq!(
        charge(other, 2).await.unwrap_err().code(),
        tonic::Code::AlreadyExists
    );
    assert_eq!(
        charge(charged_user, 2).await.unwrap().get_ref().remaining,
        8
    );
    let mut client = client.clone();
    for (user_id, remaining) in [(charged_user, 8), (other, 10)] {
        let balance = client
            .get_balance(pb::GetBalanceRequest { user_id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(balance.remaining, remaining);
    }
    membership.assert_ledger_invariant().await;
}
