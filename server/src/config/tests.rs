//! The settings' defaults and parsers.

use super::*;

#[test]
fn defaults_match_the_contract() {
    let c = Config::defaults();
    assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url, "sqlite://baton.db");
    assert_eq!(c.access_ttl, Duration::from_secs(900));
    assert_eq!(c.refresh_idle_ttl, Duration::from_secs(7 * 86400));
    assert_eq!(c.session_max, Duration::from_secs(12 * 3600));
    assert_eq!(c.remember_me_max, Duration::from_secs(30 * 86400));
    assert_eq!(c.reuse_grace, Duration::from_secs(10));
    assert_eq!(c.device_binding, DeviceBinding::Strict);
    assert_eq!(c.registration, Registration::Open);
    assert_eq!(c.dpop, DpopMode::Allowed);
    assert_eq!(c.rate_limits, RateLimits::On);
    assert!(c.cookie_secure);
    assert_eq!(c.request_timeout, Duration::from_secs(5));
    assert!(c.trusted_proxies.0.is_empty());
}

#[test]
fn cidrs_parse_and_match() {
    let p = proxies("10.0.0.0/8, 192.168.1.7,::1").unwrap();
    assert!(p.contains("10.1.2.3".parse().unwrap()));
    assert!(p.contains("::ffff:10.9.9.9".parse().unwrap()));
    assert!(p.contains("192.168.1.7".parse().unwrap()));
    assert!(!p.contains("192.168.1.8".parse().unwrap()));
    assert!(p.contains("::1".parse().unwrap()));
    assert!(proxies("10.0.0.0/33").is_err());
    assert!(proxies("nope").is_err());
}

#[test]
fn cors_origins_parse() {
    assert_eq!(
        origins("https://a.example, http://127.0.0.1:9000/")
            .unwrap()
            .0,
        vec!["https://a.example", "http://127.0.0.1:9000"]
    );
    assert!(origins("a.example").is_err());
    assert!(origins("https://a.example/path").is_err());
    assert!(origins("").unwrap().0.is_empty());
}

#[test]
fn bad_durations_are_refused() {
    assert!(duration("0s").is_err());
    assert!(duration("fast").is_err());
    assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
}
