//! The demo's mailbox: a small SMTP server on loopback that takes every mail baton-server
//! sends (sign-in codes and links, password resets, address checks) and prints it in the
//! terminal, so the email flows work in `cargo xtask demo` without a mail account. Development
//! only: it accepts mail from anyone who can reach 127.0.0.1 and keeps nothing.

use anyhow::Result;
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Largest mail taken (Baton's mails are a few hundred bytes).
const MAX_MAIL: usize = 256 * 1024;

/// Starts the mailbox on a free loopback port; mails are printed as they arrive.
pub(crate) fn start() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                if let Err(e) = session(conn) {
                    eprintln!("  demo mailbox: {e}");
                }
            });
        }
    });
    Ok(addr)
}

/// One SMTP conversation (RFC 5321, the commands a client needs to deliver mail).
fn session(conn: TcpStream) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = conn.try_clone()?;
    let mut input = BufReader::new(conn);
    let mut reply = |line: &str| -> Result<()> {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\r\n")?;
        Ok(out.flush()?)
    };
    reply("220 baton-demo-mailbox ESMTP")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let verb = command.split(' ').next().unwrap_or("");
        match verb {
            "EHLO" => reply("250-baton-demo-mailbox\r\n250 8BITMIME")?,
            "HELO" => reply("250 baton-demo-mailbox")?,
            "MAIL" => {
                to.clear();
                reply("250 OK")?;
            }
            "RCPT" => {
                to.push(angle_address(line.trim_end()));
                reply("250 OK")?;
            }
            "DATA" => {
                reply("354 end with <CRLF>.<CRLF>")?;
                let mail = read_data(&mut input)?;
                reply("250 OK")?;
                print_mail(&to, &mail);
            }
            "RSET" => {
                to.clear();
                reply("250 OK")?;
            }
            "NOOP" => reply("250 OK")?,
            "QUIT" => {
                reply("221 bye")?;
                return Ok(());
            }
            _ => reply("502 not implemented")?,
        }
    }
}

/// The `<address>` of a MAIL or RCPT command.
fn angle_address(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(a), Some(b)) if a < b => command[a + 1..b].to_owned(),
        _ => command.to_owned(),
    }
}

/// The message after DATA, up to the line with a single dot (dot-stuffing undone).
fn read_data(input: &mut impl BufRead) -> Result<String> {
    let mut mail = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            anyhow::bail!("connection closed in the middle of a mail");
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l == "." {
            return Ok(mail);
        }
        if mail.len() < MAX_MAIL {
            mail.push_str(l.strip_prefix('.').unwrap_or(l));
            mail.push('\n');
        }
    }
}

/// Prints a mail: recipient, subject, and the text decoded.
fn print_mail(to: &[String], mail: &str) {
    let (headers, body) = mail.split_once("\n\n").unwrap_or((mail, ""));
    let header = |name: &str| {
        headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let subject = header("subject").unwrap_or_default();
    let text = decode_body(header("content-transfer-encoding").as_deref(), body);
    let mut shown = format!("\n  ✉ mail to {}: {subject}\n", to.join(", "));
    for l in text.trim_end().lines() {
        shown.push_str(&format!("  │ {l}\n"));
    }
    print!("{shown}");
    let _ = std::io::stdout().flush();
}

/// A text body in its transfer encoding, decoded (7bit, 8bit, quoted-printable, base64).
fn decode_body(encoding: Option<&str>, body: &str) -> String {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        Some("base64") => {
            let joined: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| body.to_owned())
        }
        Some("quoted-printable") => quoted_printable(body),
        _ => body.to_owned(),
    }
}

/// Quoted-printable (RFC 2045 6.7): `=XX` bytes, `=` at a line's end joins it to the next.
fn quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let lines: Vec<&str> = body.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let (line, soft) = match line.trim_end().strip_suffix('=') {
            Some(l) => (l, true),
            None => (line.trim_end(), false),
        };
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'=', Some(v)) => {
                    bytes.push(v);
                    i += 3;
                }
                (c, _) => {
                    bytes.push(c);
                    i += 1;
                }
            }
        }
        if !soft && n + 1 < lines.len() {
            bytes.push(b'\n');
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn quoted_printable_and_base64_bodies_are_decoded() {
        assert_eq!(
            quoted_printable("Open http://127.0.0.1:8080/?token=3Dab=3Dcd=\nef to sign in.\n"),
            "Open http://127.0.0.1:8080/?token=ab=cdef to sign in.\n"
        );
        assert_eq!(
            decode_body(Some("base64"), "WW91ciBjb2Rl\nOiAxMjM0NTY=\n"),
            "Your code: 123456"
        );
        assert_eq!(decode_body(Some("7bit"), "plain"), "plain");
    }

    #[test]
    fn a_client_can_deliver_a_mail() {
        let addr = start().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(
            b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
              Subject: hi\r\n\r\n..dotted\r\n.\r\nQUIT\r\n",
        )
        .unwrap();
        let mut said = String::new();
        c.read_to_string(&mut said).unwrap();
        let codes: Vec<&str> = said.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            ["220", "250", "250", "250", "250", "354", "250", "221"]
        );
        assert_eq!(angle_address("RCPT TO:<b@example.com>"), "b@example.com");
        let mut data = BufReader::new("Subject: hi\r\n\r\n..dotted\r\n.\r\n".as_bytes());
        assert_eq!(read_data(&mut data).unwrap(), "Subject: hi\n\n.dotted\n");
    }
}
