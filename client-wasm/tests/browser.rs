//! Runs in headless Chromium through wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn machine_runs_in_the_browser() {
    assert_eq!(baton_client::refresh_delay_ms(900, 60), 840_000.0);
    assert_eq!(baton_client::refresh_delay_ms(30, 60), 15_000.0);
    // A real browser global is reachable from the test.
    let window = web_sys::window().expect("a browser window");
    assert!(window.navigator().user_agent().unwrap().contains("Chrome"));
}
