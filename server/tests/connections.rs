//! Slow and idle clients: the header-read timeout, the idle timeout, the connection cap, and a
//! shutdown that ends in bounded time even with a half-sent request open.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits until the server closes `sock` (EOF or reset); returns how long that took, or `None`
/// if it was still open after `within`.
async fn closed_within(sock: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            sock.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue, // a response (or a 408) before the close
        }
    }
}

const HALF_SENT: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: baton\r\nX-Slow: ";
const FULL: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: baton\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_cut_off_after_the_header_read_timeout() {
    let s = Server::start(&[("header-read-timeout", "1s"), ("idle-timeout", "30s")]).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(HALF_SENT).await.unwrap();
    let took = closed_within(&mut sock, Duration::from_secs(4)).await;
    assert!(
        took.is_some(),
        "a half-sent request kept its connection open"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let s = Server::start(&[("idle-timeout", "1s"), ("header-read-timeout", "30s")]).await;
    // Never sends anything.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    // Sends one request, then keeps the connection alive without using it.
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    kept.write_all(FULL).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    for sock in [&mut silent, &mut kept] {
        let took = closed_within(sock, Duration::from_secs(4)).await;
        assert!(took.is_some(), "an idle connection stayed open");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = Server::start(&[("max-connections", "4"), ("idle-timeout", "30s")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut sock = TcpStream::connect(s.addr).await.unwrap();
        sock.write_all(FULL).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(sock.read(&mut buf).await.unwrap() > 0);
        held.push(sock);
    }
    // A fifth client connects (the kernel queues it) but is not served while four are open.
    let mut fifth = TcpStream::connect(s.addr).await.unwrap();
    fifth.write_all(FULL).await.unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(700), fifth.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the connection cap");
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(3), fifth.read(&mut buf))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_in_bounded_time_with_a_half_sent_request_open() {
    let db = fresh_database().await;
    let mut server = Process::start(
        &db,
        &[
            ("BATON_SHUTDOWN_TIMEOUT", "2s"),
            ("BATON_HEADER_READ_TIMEOUT", "60s"),
            ("BATON_IDLE_TIMEOUT", "60s"),
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(HALF_SENT).await.unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(FULL).await.unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.signal("TERM");
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "SIGTERM did not end the process"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine's loopback on Linux).
async fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// Sends a request on `sock` and returns the start of what comes back ("" when the server
/// closed the connection without an answer).
async fn ask(sock: &mut TcpStream) -> String {
    let _ = sock.write_all(FULL).await;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Ok(Err(_)) => String::new(),
        Err(_) => panic!("no answer and no close within 3 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_the_connection_cap() {
    let s = Server::start(&[
        ("max-connections", "10"),
        ("max-connections-per-address", "3"),
        ("idle-timeout", "30s"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut sock = connect_from("127.0.0.1", s.addr).await;
        assert!(ask(&mut sock).await.starts_with("HTTP/1.1 200"));
        held.push(sock);
    }
    // A fourth from the same address is refused at once, with the API's 429 when it arrives
    // before the close, and never served; the connection does not stay open.
    for _ in 0..5 {
        let mut extra = connect_from("127.0.0.1", s.addr).await;
        let answer = ask(&mut extra).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 429"),
            "{answer}"
        );
        if !answer.is_empty() {
            assert!(answer.contains("retry-after: 1"), "{answer}");
            assert!(answer.contains(r#""code":"rate_limited""#), "{answer}");
        }
        assert!(closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some());
    }
    // Other addresses are served meanwhile.
    let mut other = connect_from("127.0.0.2", s.addr).await;
    assert!(ask(&mut other).await.starts_with("HTTP/1.1 200"));
    // A place given back is a place for the same address again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..20 {
        let mut sock = connect_from("127.0.0.1", s.addr).await;
        if ask(&mut sock).await.starts_with("HTTP/1.1 200") {
            again = Some(sock);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the address never got its place back");
    drop((held, again));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = s.metrics().await;
    let refused = Server::series(
        &metrics,
        r#"auth_rate_limited_total{limit="connections_per_address"}"#,
    );
    assert!(refused >= 5, "refusals are counted: {metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_held_to_the_per_address_cap() {
    let s = Server::start(&[
        ("max-connections", "20"),
        ("max-connections-per-address", "2"),
        ("trusted-proxies", "127.0.0.3"),
        ("idle-timeout", "30s"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut sock = connect_from("127.0.0.3", s.addr).await;
        assert!(ask(&mut sock).await.starts_with("HTTP/1.1 200"));
        held.push(sock);
    }
    s.stop().await;
}
