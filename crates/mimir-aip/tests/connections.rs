//! The orchestrator protects its port: idle connections cannot crowd out
//! new requests, and clients that send nothing are disconnected.

mod harness;

use harness::{bin, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `serve` under an open-file limit of 1024, as many systems start services.
struct Limited {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Limited {
    fn start(yaml: &str) -> Limited {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = harness::config_file(dir.path(), yaml);
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("orchestrator.log")).expect("log");
        let child = Command::new("sh")
            .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
            .arg(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--config", &config, "--max-workers", "0"])
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the orchestrator");
        let limited = Limited { child, dir, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not listening\n{}",
                limited.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        limited
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orchestrator.log")).unwrap_or_default()
    }

    /// `GET path` on a new connection: the status line, and how long it took.
    fn get(&self, path: &str) -> (String, Duration) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.lines().next().unwrap_or_default().to_string();
        (status, started.elapsed())
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long until the server closes `stream` (which sends nothing more).
fn closed_after(mut stream: TcpStream) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn eleven_hundred_idle_connections_do_not_stop_a_new_request() {
    let server = Limited::start("");
    // A live stream is a request in progress: it is never the one closed.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .write_all(b"GET /api/dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    let n = stream.read(&mut buf).expect("the stream answers");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(TcpStream::connect(("127.0.0.1", server.port)).expect("connect"));
    }
    let (status, took) = server.get("/health");
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    let (status, _) = server.get("/api/worktasks/queue/length");
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    // The stream still delivers events: what was sent before is drained,
    // then a new one must come.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while let Ok(n) = stream.read(&mut buf) {
        assert!(n > 0, "the stream was closed");
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut events = String::new();
    let started = Instant::now();
    while !events.contains("event: second") {
        let n = stream.read(&mut buf).expect("the stream is still open");
        assert!(n > 0, "the stream was closed");
        events.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(started.elapsed() < Duration::from_secs(5), "{events}");
    }
    let log = server.log();
    assert!(log.contains("connection cap reached"), "{log}");
    // The cap came from the open-file limit, below it.
    assert!(
        log.contains("\"max_connections\":768"),
        "the cap is the limit less what the store and workers need\n{log}"
    );
}

#[test]
fn a_client_that_sends_no_request_is_disconnected_after_the_header_read_timeout() {
    let server = Limited::start("server:\n  headerReadTimeoutMs: 500\n  idleTimeoutMs: 1500\n");
    let silent = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let took = closed_after(silent).expect("closed by the server");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );

    // Half a request header: the same.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("send");
    let took = closed_after(slow).expect("closed by the server");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");

    // After an answer, a keep-alive connection may idle for the idle timeout.
    let mut kept = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let took = closed_after(kept).expect("closed by the server");
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}
