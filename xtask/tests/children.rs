//! `cargo xtask demo` starts baton-server and the orders service; however xtask is stopped
//! (SIGINT from Ctrl-C, SIGTERM from a supervisor or `kill`, SIGHUP from a closed terminal),
//! they stop with it.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn children_die_with_xtask_however_it_is_stopped() {
    for signal in ["TERM", "INT", "HUP"] {
        let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("__supervised-sleep")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(xtask.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let child = line.trim().to_owned();
        assert!(alive(&child), "the child did not start");
        // Only xtask gets the signal, not its process group.
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &xtask.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        xtask.wait().unwrap();
        let started = Instant::now();
        while alive(&child) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "SIG{signal}: the child outlived xtask"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
