//! The machine under a simulated clock: each test jumps straight to the deadlines it cares about.

use super::*;

const MIN: u64 = 60_000;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn grant(token: &str, received_ms: u64, life_s: u64) -> Grant {
    Grant {
        access_token: token.to_owned(),
        expires_in: Duration::from_secs(life_s),
        received_at: at(received_ms),
        skew_ms: None,
    }
}

fn drain(m: &mut RefreshMachine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn starts(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartRefresh { attempt } => Some(*attempt),
            _ => None,
        })
        .collect()
}

fn released(actions: &[Action]) -> Vec<(WaiterId, Result<String, ClientError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Release { waiter, result } => Some((*waiter, result.clone())),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn signed_in(token: &str, now: u64, life_s: u64) -> RefreshMachine {
    let mut m = RefreshMachine::new(Config::default(), 7);
    m.handle_session(at(now), grant(token, now, life_s), GrantSource::Login);
    drain(&mut m);
    m
}

fn network_error() -> ClientError {
    ClientError::new(ErrorCode::NetworkError, 0)
}

#[test]
fn login_persists_and_emits_signed_in() {
    let mut m = RefreshMachine::new(Config::default(), 1);
    m.handle_session(at(0), grant("a1", 0, 900), GrantSource::Login);
    let actions = drain(&mut m);
    assert!(actions.contains(&Action::Persist));
    assert_eq!(events(&actions), vec![Event::SignedIn]);
    assert_eq!(m.access_token(), Some("a1"));
}

#[test]
fn refresh_is_scheduled_at_receive_time_plus_expires_in_minus_margin() {
    let m = signed_in("a1", 1_000, 900);
    assert_eq!(m.poll_timeout(), Some(at(1_000 + 900_000 - 60_000)));
    assert_eq!(m.expires_at(), Some(at(901_000)));
}

#[test]
fn server_clock_skew_never_moves_the_schedule() {
    // The server's clock is two hours ahead; its `exp` would look far in the future, and the
    // local expiry must still be receive time + expires_in.
    let mut m = RefreshMachine::new(Config::default(), 1);
    let mut g = grant("a1", 5_000, 900);
    g.skew_ms = Some(7_200_000);
    m.handle_session(at(5_000), g, GrantSource::Login);
    assert_eq!(m.poll_timeout(), Some(at(5_000 + 840_000)));
    assert_eq!(m.skew_ms(), Some(7_200_000));
}

#[test]
fn configured_margin_is_used() {
    let mut m = RefreshMachine::new(
        Config {
            margin: Duration::from_secs(3),
            ..Config::default()
        },
        1,
    );
    m.handle_session(at(0), grant("a1", 0, 10), GrantSource::Login);
    assert_eq!(m.poll_timeout(), Some(at(7_000)));
}

#[test]
fn margin_larger_than_token_life_refreshes_at_half_life_without_looping() {
    let mut m = signed_in("a1", 0, 30); // margin 60 s > life 30 s
    assert_eq!(m.poll_timeout(), Some(at(15_000)));
    m.handle_timeout(at(15_000));
    let a = drain(&mut m);
    assert_eq!(starts(&a), vec![1]);
    m.handle_refresh_result(
        at(15_100),
        1,
        RefreshOutcome::Success(grant("a2", 15_100, 30)),
    );
    drain(&mut m);
    // The next refresh is again half a life away, not immediately.
    assert_eq!(m.poll_timeout(), Some(at(30_100)));
    m.handle_timeout(at(15_200));
    assert!(starts(&drain(&mut m)).is_empty());
}

#[test]
fn early_timer_does_nothing_and_due_timer_starts_one_refresh() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_timeout(at(839_999));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(at(840_000));
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    assert!(m.is_refreshing());
    assert_eq!(m.poll_timeout(), None);
    // The timer firing again while the refresh runs starts nothing.
    m.handle_timeout(at(850_000));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn token_outside_margin_is_served_without_refresh() {
    let mut m = signed_in("a1", 0, 900);
    assert_eq!(
        m.request_token(at(10 * MIN), WaiterId(1)),
        TokenAnswer::Ready("a1".into())
    );
    assert!(drain(&mut m).is_empty());
}

#[test]
fn single_flight_many_callers_share_one_refresh() {
    let mut m = signed_in("a1", 0, 900);
    let now = at(850_000); // inside the margin
    for i in 0..50 {
        assert_eq!(m.request_token(now, WaiterId(i)), TokenAnswer::Wait);
    }
    let a = drain(&mut m);
    assert_eq!(starts(&a), vec![1], "exactly one refresh for 50 callers");
    m.handle_refresh_result(
        at(850_200),
        1,
        RefreshOutcome::Success(grant("a2", 850_200, 900)),
    );
    let a = drain(&mut m);
    let r = released(&a);
    assert_eq!(r.len(), 50);
    assert!(r.iter().all(|(_, res)| res.as_deref() == Ok("a2")));
    assert!(a.contains(&Action::Persist));
    assert_eq!(
        events(&a),
        vec![Event::Refreshed {
            source: GrantSource::Login
        }]
    );
    assert_eq!(m.refresh_count(), 1);
}

#[test]
fn forced_refresh_joins_the_refresh_in_flight() {
    let mut m = signed_in("a1", 0, 900);
    assert_eq!(m.request_refresh(at(1_000), WaiterId(1)), TokenAnswer::Wait);
    assert_eq!(m.request_refresh(at(1_001), WaiterId(2)), TokenAnswer::Wait);
    assert_eq!(m.request_token(at(1_002), WaiterId(3)), TokenAnswer::Wait);
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    m.handle_refresh_result(
        at(1_100),
        1,
        RefreshOutcome::Success(grant("a2", 1_100, 900)),
    );
    assert_eq!(released(&drain(&mut m)).len(), 3);
}

#[test]
fn a_401_for_the_current_token_refreshes_then_retries() {
    let mut m = signed_in("a1", 0, 900);
    assert_eq!(
        m.handle_request_401(at(5_000), "a1", WaiterId(9)),
        Retry401::Wait
    );
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    m.handle_refresh_result(
        at(5_100),
        1,
        RefreshOutcome::Success(grant("a2", 5_100, 900)),
    );
    assert_eq!(
        released(&drain(&mut m)),
        vec![(WaiterId(9), Ok("a2".to_owned()))]
    );
}

#[test]
fn a_401_for_an_old_token_retries_with_the_current_one_without_refreshing() {
    let mut m = signed_in("a1", 0, 900);
    m.request_refresh(at(1_000), WaiterId(1));
    drain(&mut m);
    m.handle_refresh_result(
        at(1_100),
        1,
        RefreshOutcome::Success(grant("a2", 1_100, 900)),
    );
    drain(&mut m);
    assert_eq!(
        m.handle_request_401(at(1_200), "a1", WaiterId(2)),
        Retry401::RetryWith("a2".into())
    );
    assert!(starts(&drain(&mut m)).is_empty());
}

#[test]
fn a_401_for_an_old_token_while_a_refresh_is_in_flight_waits_for_it() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    // A request sent with a1 earlier comes back 401 while the refresh runs.
    assert_eq!(
        m.handle_request_401(at(850_050), "a1", WaiterId(2)),
        Retry401::Wait
    );
    assert!(starts(&drain(&mut m)).is_empty(), "no second refresh");
    m.handle_refresh_result(
        at(850_100),
        1,
        RefreshOutcome::Success(grant("a2", 850_100, 900)),
    );
    let r = released(&drain(&mut m));
    assert_eq!(r.len(), 2);
}

#[test]
fn a_401_without_a_session_gives_up() {
    let mut m = RefreshMachine::new(Config::default(), 1);
    assert!(matches!(
        m.handle_request_401(at(0), "x", WaiterId(1)),
        Retry401::GiveUp(e) if e.code == "session_missing"
    ));
}

#[test]
fn transient_failure_keeps_the_still_valid_token_and_backs_off() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    m.handle_refresh_result(
        at(850_100),
        1,
        RefreshOutcome::Failed {
            error: network_error(),
            retry_after: None,
        },
    );
    let a = drain(&mut m);
    assert_eq!(released(&a), vec![(WaiterId(1), Ok("a1".to_owned()))]);
    assert!(!a.contains(&Action::ClearPersisted));
    assert_eq!(events(&a), vec![Event::Error(network_error())]);
    assert!(m.has_session());
    let retry = m.poll_timeout().unwrap();
    // First backoff step: 250..=500 ms.
    assert!(retry >= at(850_350) && retry <= at(850_600), "{retry:?}");
    // While backing off, callers get the still-valid token without a new refresh.
    assert_eq!(
        m.request_token(at(850_200), WaiterId(2)),
        TokenAnswer::Ready("a1".into())
    );
    m.handle_timeout(retry);
    assert_eq!(starts(&drain(&mut m)), vec![2]);
}

#[test]
fn backoff_grows_exponentially_and_is_capped_by_the_remaining_token_life() {
    let mut m = signed_in("a1", 0, 900);
    let mut now = 860_000; // 40 s of token life left
    m.handle_timeout(at(now));
    let mut delays = Vec::new();
    for attempt in 1..=8 {
        assert_eq!(starts(&drain(&mut m)), vec![attempt]);
        m.handle_refresh_result(
            at(now),
            attempt,
            RefreshOutcome::Failed {
                error: network_error(),
                retry_after: None,
            },
        );
        drain(&mut m);
        let next = m.poll_timeout().unwrap().as_millis();
        delays.push(next - now);
        now = next;
        m.handle_timeout(at(now));
    }
    assert!(delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
    // No retry is scheduled after the token's expiry while it still lives.
    let mut t = 860_000;
    for d in &delays {
        assert!(t + d <= 900_000 || t >= 900_000, "{delays:?}");
        t += d;
    }
}

#[test]
fn after_expiry_callers_fail_fast_during_backoff() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_timeout(at(950_000)); // slept past expiry
    drain(&mut m);
    m.handle_refresh_result(
        at(950_000),
        1,
        RefreshOutcome::Failed {
            error: ClientError::new(ErrorCode::Unavailable, 503),
            retry_after: None,
        },
    );
    drain(&mut m);
    match m.request_token(at(950_010), WaiterId(1)) {
        TokenAnswer::Fail(e) => {
            assert_eq!(e.code, "unavailable");
            assert!(e.retryable);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        m.has_session(),
        "a transient failure never ends the session"
    );
}

#[test]
fn retry_after_is_honoured_on_429() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_timeout(at(840_000));
    drain(&mut m);
    m.handle_refresh_result(
        at(840_000),
        1,
        RefreshOutcome::Failed {
            error: ClientError::new(ErrorCode::RateLimited, 429),
            retry_after: Some(Duration::from_secs(42)),
        },
    );
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(at(882_000)));
    m.handle_timeout(at(881_999));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(at(882_000));
    assert_eq!(starts(&drain(&mut m)), vec![2]);
}

#[test]
fn forced_refresh_reports_a_transient_failure_instead_of_the_old_token() {
    let mut m = signed_in("a1", 0, 900);
    m.request_refresh(at(1_000), WaiterId(1));
    drain(&mut m);
    m.handle_refresh_result(
        at(1_100),
        1,
        RefreshOutcome::Failed {
            error: network_error(),
            retry_after: None,
        },
    );
    assert_eq!(
        released(&drain(&mut m)),
        vec![(WaiterId(1), Err(network_error()))]
    );
    assert_eq!(m.access_token(), Some("a1"));
}

#[test]
fn a_definite_401_from_refresh_ends_the_session() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    let reused = ClientError::new(ErrorCode::RefreshTokenReused, 401);
    m.handle_refresh_result(at(850_100), 1, RefreshOutcome::Rejected(reused.clone()));
    let a = drain(&mut m);
    assert_eq!(released(&a), vec![(WaiterId(1), Err(reused))]);
    assert!(a.contains(&Action::ClearPersisted));
    assert_eq!(
        events(&a),
        vec![
            Event::SessionExpired {
                code: "refresh_token_reused".into()
            },
            Event::SignedOut {
                reason: SignOutReason::SessionEnded
            }
        ]
    );
    assert!(!m.has_session());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_refresh_result_arriving_after_logout_is_ignored() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    m.handle_sign_out(at(850_010), SignOutReason::Logout);
    let a = drain(&mut m);
    assert!(a.contains(&Action::ClearPersisted));
    assert_eq!(
        released(&a)[0].1.as_ref().unwrap_err().code,
        "session_missing"
    );
    m.handle_refresh_result(
        at(850_100),
        1,
        RefreshOutcome::Success(grant("a2", 850_100, 900)),
    );
    assert!(drain(&mut m).is_empty());
    assert!(
        !m.has_session(),
        "a late success must not resurrect the session"
    );
}

#[test]
fn an_old_sessions_refresh_result_is_ignored_after_a_new_login() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    m.handle_sign_out(at(850_010), SignOutReason::Logout);
    m.handle_session(at(850_020), grant("b1", 850_020, 900), GrantSource::Login);
    drain(&mut m);
    m.handle_refresh_result(
        at(850_100),
        1,
        RefreshOutcome::Rejected(ClientError::new(ErrorCode::SessionRevoked, 401)),
    );
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.access_token(), Some("b1"));
}

#[test]
fn wake_after_the_deadline_refreshes_at_once() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_wake(at(100_000));
    assert!(drain(&mut m).is_empty(), "not due yet");
    // The background timer was throttled; the tab becomes visible after the deadline.
    m.handle_wake(at(845_000));
    assert_eq!(starts(&drain(&mut m)), vec![1]);
}

#[test]
fn sleeping_across_the_whole_token_life_recovers_on_wake() {
    let mut m = signed_in("a1", 0, 900);
    // The laptop slept for two hours; the token is long dead.
    let wake = 2 * 60 * MIN;
    assert_eq!(m.request_token(at(wake), WaiterId(1)), TokenAnswer::Wait);
    m.handle_wake(at(wake));
    let a = drain(&mut m);
    assert_eq!(
        starts(&a),
        vec![1],
        "wake joins the refresh the request started"
    );
    m.handle_refresh_result(
        at(wake + 80),
        1,
        RefreshOutcome::Success(grant("a2", wake + 80, 900)),
    );
    assert_eq!(
        released(&drain(&mut m)),
        vec![(WaiterId(1), Ok("a2".to_owned()))]
    );
    assert_eq!(m.poll_timeout(), Some(at(wake + 80 + 840_000)));
}

#[test]
fn adopting_another_tabs_refresh_cancels_the_pending_refresh() {
    let mut m = signed_in("a1", 0, 900);
    // This tab is waiting (for the cross-tab lock) on its own refresh with one caller.
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    m.handle_session(
        at(850_050),
        grant("a2", 850_040, 900),
        GrantSource::OtherTab,
    );
    let a = drain(&mut m);
    assert_eq!(released(&a), vec![(WaiterId(1), Ok("a2".to_owned()))]);
    assert!(
        !a.contains(&Action::Persist),
        "the other tab already persisted"
    );
    assert_eq!(
        events(&a),
        vec![Event::Refreshed {
            source: GrantSource::OtherTab
        }]
    );
    assert!(!m.is_refreshing());
    assert_eq!(m.poll_timeout(), Some(at(850_040 + 840_000)));
    // The superseded attempt's failure changes nothing.
    m.handle_refresh_result(
        at(850_060),
        1,
        RefreshOutcome::Failed {
            error: network_error(),
            retry_after: None,
        },
    );
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(at(850_040 + 840_000)));
}

#[test]
fn adopting_another_tabs_refresh_cancels_a_backoff() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_timeout(at(840_000));
    drain(&mut m);
    m.handle_refresh_result(
        at(840_000),
        1,
        RefreshOutcome::Failed {
            error: network_error(),
            retry_after: Some(Duration::from_secs(30)),
        },
    );
    drain(&mut m);
    m.handle_session(
        at(841_000),
        grant("a2", 841_000, 900),
        GrantSource::OtherTab,
    );
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(at(841_000 + 840_000)));
}

#[test]
fn a_late_broadcast_of_an_older_token_is_ignored() {
    let mut m = signed_in("a1", 0, 900);
    m.request_refresh(at(1_000), WaiterId(1));
    drain(&mut m);
    m.handle_refresh_result(
        at(2_000),
        1,
        RefreshOutcome::Success(grant("a3", 2_000, 900)),
    );
    drain(&mut m);
    m.handle_session(at(2_100), grant("a2", 1_500, 900), GrantSource::OtherTab);
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.access_token(), Some("a3"));
    // The same token again is a no-op too.
    m.handle_session(at(2_200), grant("a3", 2_000, 900), GrantSource::OtherTab);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn a_superseded_attempts_success_still_installs_the_newest_token() {
    let mut m = signed_in("a1", 0, 900);
    m.request_token(at(850_000), WaiterId(1));
    drain(&mut m);
    m.handle_session(
        at(850_050),
        grant("a2", 850_050, 900),
        GrantSource::OtherTab,
    );
    drain(&mut m);
    m.handle_refresh_result(
        at(850_100),
        1,
        RefreshOutcome::Success(grant("a3", 850_100, 900)),
    );
    let a = drain(&mut m);
    assert!(a.contains(&Action::Persist));
    assert_eq!(m.access_token(), Some("a3"));
}

#[test]
fn restored_expired_session_refreshes_immediately() {
    let mut m = RefreshMachine::new(Config::default(), 3);
    m.handle_session(at(5_000_000), grant("old", 0, 900), GrantSource::Restored);
    let a = drain(&mut m);
    assert_eq!(events(&a), vec![Event::SignedIn]);
    assert!(!a.contains(&Action::Persist));
    assert!(m.poll_timeout().unwrap() <= at(5_000_000));
    m.handle_timeout(at(5_000_000));
    assert_eq!(starts(&drain(&mut m)), vec![1]);
}

#[test]
fn without_a_session_requests_fail_with_session_missing() {
    let mut m = RefreshMachine::new(Config::default(), 1);
    for answer in [
        m.request_token(at(0), WaiterId(1)),
        m.request_refresh(at(0), WaiterId(2)),
    ] {
        assert!(matches!(answer, TokenAnswer::Fail(e) if e.code == "session_missing"));
    }
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(at(1));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn sign_out_in_another_tab_does_not_clear_storage_again() {
    let mut m = signed_in("a1", 0, 900);
    m.handle_sign_out(at(10), SignOutReason::OtherTab);
    let a = drain(&mut m);
    assert!(!a.contains(&Action::ClearPersisted));
    assert_eq!(
        events(&a),
        vec![Event::SignedOut {
            reason: SignOutReason::OtherTab
        }]
    );
    // A second sign-out is a no-op.
    m.handle_sign_out(at(20), SignOutReason::Logout);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn another_tabs_login_signs_this_tab_in() {
    let mut m = RefreshMachine::new(Config::default(), 1);
    m.handle_session(at(0), grant("a1", 0, 900), GrantSource::OtherTab);
    assert_eq!(events(&drain(&mut m)), vec![Event::SignedIn]);
    assert!(m.has_session());
}

#[test]
fn dispose_releases_every_waiter() {
    let mut m = signed_in("a1", 0, 900);
    m.request_refresh(at(1), WaiterId(1));
    m.request_token(at(1), WaiterId(2));
    drain(&mut m);
    m.handle_dispose();
    let r = released(&drain(&mut m));
    assert_eq!(r.len(), 2);
    assert!(r
        .iter()
        .all(|(_, res)| res.as_ref().unwrap_err().code == "disposed"));
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_401_during_backoff_does_not_refresh_again() {
    let mut m = signed_in("a1", 0, 900);
    assert_eq!(
        m.handle_request_401(at(1_000), "a1", WaiterId(1)),
        Retry401::Wait
    );
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    let limited = ClientError::new(ErrorCode::RateLimited, 429);
    m.handle_refresh_result(
        at(1_050),
        1,
        RefreshOutcome::Failed {
            error: limited.clone(),
            retry_after: Some(Duration::from_secs(3)),
        },
    );
    drain(&mut m);
    // Twenty more 401s within the 3 s: no refresh, each caller gets its 401 back.
    for i in 0..20 {
        let r = m.handle_request_401(at(1_100 + i * 100), "a1", WaiterId(10 + i));
        assert_eq!(r, Retry401::GiveUp(limited.clone()));
    }
    assert!(
        starts(&drain(&mut m)).is_empty(),
        "no refresh during Retry-After"
    );
    // After it, the next 401 may refresh again.
    assert_eq!(
        m.handle_request_401(at(4_100), "a1", WaiterId(99)),
        Retry401::Wait
    );
    assert_eq!(starts(&drain(&mut m)).len(), 1);
}

#[test]
fn an_api_that_refuses_fresh_tokens_gets_one_refresh_and_an_event() {
    let mut m = signed_in("a1", 0, 900);
    assert_eq!(
        m.handle_request_401(at(1_000), "a1", WaiterId(1)),
        Retry401::Wait
    );
    assert_eq!(starts(&drain(&mut m)), vec![1]);
    m.handle_refresh_result(
        at(1_100),
        1,
        RefreshOutcome::Success(grant("a2", 1_100, 900)),
    );
    drain(&mut m);
    // The retry with the fresh a2 gets a 401 too.
    m.handle_retry_401("a2");
    assert_eq!(events(&drain(&mut m)), vec![Event::TokenRejected]);
    // Every later 401 for a2 goes back to its caller: no refresh loop, no second event.
    for i in 0..10 {
        let r = m.handle_request_401(at(1_200 + i * 10), "a2", WaiterId(10 + i));
        assert!(
            matches!(r, Retry401::GiveUp(ref e) if e.code == "token_invalid"),
            "{r:?}"
        );
        m.handle_retry_401("a2");
    }
    let actions = drain(&mut m);
    assert!(starts(&actions).is_empty(), "no refresh loop");
    assert!(events(&actions).is_empty(), "reported once");
    // A token the API accepted on the retry is not marked: a later 401 for it refreshes.
    m.handle_timeout(at(841_200));
    assert_eq!(starts(&drain(&mut m)), vec![2]);
    m.handle_refresh_result(
        at(841_300),
        2,
        RefreshOutcome::Success(grant("a3", 841_300, 900)),
    );
    drain(&mut m);
    assert_eq!(
        m.handle_request_401(at(841_400), "a3", WaiterId(50)),
        Retry401::Wait
    );
}
