//! One HTTP/1.1 exchange over a real TCP connection, read to its end: what the endpoint
//! tests send and check.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest one exchange may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An answer: its status, content type and body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub async fn request(addr: SocketAddr, method: &str, target: &str) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {target} within {DEADLINE:?}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    if method != "HEAD" {
        let length: usize = header("content-length")
            .expect("a content-length")
            .parse()
            .unwrap();
        assert_eq!(length, body.len(), "the whole body of {target}");
    }
    Answer {
        status,
        content_type: header("content-type").unwrap_or_default(),
        body,
    }
}

pub async fn get(addr: SocketAddr, target: &str) -> Answer {
    request(addr, "GET", target).await
}
