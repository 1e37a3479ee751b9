//! Looking at a server process from outside: the ports file it writes once
//! its listeners are up, its `/healthz` endpoint, and the tail of its log.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::config::HOST;

const TAIL_LINES: usize = 40;

/// Ports a server reported once all its listeners were up.
#[derive(Debug)]
pub(crate) struct Ports {
    pub(crate) client: u16,
    pub(crate) monitor: u16,
}

/// Reads `<dir>/<exe>_<pid>.ports`, e.g.
/// `{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`.
/// The file may be half-written: any parse failure means "not yet".
pub(crate) fn read_ports_file(dir: &Path, pid: u32) -> std::result::Result<Ports, String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        nats: Vec<String>,
        #[serde(default)]
        monitoring: Vec<String>,
    }
    let suffix = format!("_{pid}.ports");
    let path = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .ok_or_else(|| format!("no ports file for pid {pid} yet"))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read ports file: {e}"))?;
    let file: File =
        serde_json::from_str(&text).map_err(|e| format!("ports file incomplete: {e}"))?;
    let port = |urls: &[String]| {
        urls.first()
            .and_then(|u| u.rsplit(':').next()?.parse::<u16>().ok())
    };
    Ok(Ports {
        client: port(&file.nats).ok_or("ports file lacks the client port")?,
        monitor: port(&file.monitoring).ok_or("ports file lacks the monitor port")?,
    })
}

/// `GET <path>` on the loopback monitor port; the body on status 200.
pub(crate) fn http_get(port: u16, path: &str) -> std::result::Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(2);
    let fail = |e: std::io::Error| format!("GET {path} on port {port}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_write_timeout(Some(timeout)).map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.to_owned())
    } else {
        Err(format!("GET {path}: {status} {}", body.trim()))
    }
}

/// The last [`TAIL_LINES`] lines of the log from byte `offset` on.
pub(crate) fn log_tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_string(&mut text)
    });
    if let Err(error) = read {
        return format!("(log unreadable: {error})");
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDir;

    #[test]
    fn reads_ports_file_of_the_right_pid() {
        let dir = TestDir::new("ports").unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "nats-server_7.ports",
            r#"{"nats":["nats://127.0.0.1:1"],"monitoring":["http://127.0.0.1:2"]}"#,
        );
        write(
            "nats-server_42.ports",
            r#"{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"],"cluster":["nats://127.0.0.1:6222"]}"#,
        );
        write(
            "nats-server_43.ports",
            r#"{"nats":["nats://127.0.0.1:4222"],"moni"#,
        );
        let ports = read_ports_file(dir.path(), 42).unwrap();
        assert_eq!((ports.client, ports.monitor), (4222, 8222));
        assert!(
            read_ports_file(dir.path(), 43)
                .unwrap_err()
                .contains("incomplete")
        );
        assert!(
            read_ports_file(dir.path(), 44)
                .unwrap_err()
                .contains("no ports file")
        );
    }
}
