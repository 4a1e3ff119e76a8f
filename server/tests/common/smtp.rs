//! The SMTP server of a test (aiosmtpd, `tests/smtp/sink.py`): every mail it accepts lands in
//! a directory as a file.

use super::eventually;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SMTP server of a test: every mail it accepts lands in `dir` as a file.
pub struct Smtp {
    child: std::process::Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Smtp {
    pub fn start(auth: Option<&str>) -> Smtp {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("smtp-{}", uuid::Uuid::new_v4().simple()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/smtp/sink.py");
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg(script).arg(&dir);
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (cargo xtask setup installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line of the SMTP server: {line:?}"));
        Smtp { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
    }

    /// The `n`th mail (1-based), decoded, once it arrived.
    pub async fn mail(&self, n: usize) -> String {
        let arrived = eventually(Duration::from_secs(10), || async { self.count() >= n }).await;
        assert!(arrived.is_some(), "mail {n} did not arrive");
        let raw = std::fs::read_to_string(self.dir.join(format!("{n:04}.eml"))).unwrap();
        quoted_printable(&raw)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undoes quoted-printable soft breaks and escapes (enough for these ASCII mails).
pub fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 1..i + 3).unwrap_or(""), 16) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            Err(_) => {
                out.push('=');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}
