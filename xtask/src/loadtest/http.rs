//! The load driver's HTTP/1.1 client: one keep-alive loopback connection sending `POST`s of one kind, each request one `write`, each answer read by its `Content-Length` — as lean as `wrk`, so that the driver's own CPU per request takes as little as it can from the server it shares the machine with.
//!
//! It does only what these requests need (no name resolution, URL parsing or header map per
//! request, no pipelining) and refuses what it does not handle: an address that is not
//! loopback, an answer without `Content-Length` (chunked), an answer that closes the
//! connection. The request head is made once per connection; a request is that head, the
//! body's length and the body, copied into one reused buffer. Connections are non-blocking
//! (tokio's), so that one thread's event loop drives them all, as `wrk` does: no thread per
//! connection.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a request may wait for its answer before the row fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// One keep-alive connection to a loopback server.
pub(crate) struct Connection {
    stream: tokio::net::TcpStream,
    /// The request line and headers, up to the value of `Content-Length`.
    head: Vec<u8>,
    request: Vec<u8>,
    received: Vec<u8>,
}

/// An answer: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// The socket address of `base` (`http://127.0.0.1:PORT`), refused unless it is loopback.
pub(crate) fn loopback_address(base: &str) -> Result<SocketAddr, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: the load driver speaks plain http:// only"))?
        .trim_end_matches('/');
    let address: SocketAddr = authority
        .parse()
        .map_err(|_| format!("{base}: not an IP address and port"))?;
    if !address.ip().is_loopback() {
        return Err(format!("{base}: load goes to loopback addresses only"));
    }
    Ok(address)
}

/// The end of the head in `bytes` (just past the blank line), if it is all there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status and `Content-Length` of an answer head; refuses chunked answers and answers that
/// close the connection.
fn parse_head(head: &[u8]) -> Result<(u16, usize), String> {
    let text = std::str::from_utf8(head).map_err(|_| "an answer head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!(
                "answer with Transfer-Encoding {value} (status {status})"
            ));
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            return Err(format!(
                "the server closes the connection (status {status})"
            ));
        }
    }
    let length =
        length.ok_or_else(|| format!("answer without Content-Length (status {status})"))?;
    Ok((status, length))
}

impl Connection {
    /// Opens a connection to `base` for `POST path` with these extra headers (inside a tokio
    /// runtime with I/O enabled, which the connection is registered with).
    pub(crate) fn open(base: &str, path: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let address = loopback_address(base)?;
        let stream = std::net::TcpStream::connect_timeout(&address, TIMEOUT)
            .map_err(|e| format!("connect {address}: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("{address}: {e}"))?;
        let stream =
            tokio::net::TcpStream::from_std(stream).map_err(|e| format!("{address}: {e}"))?;
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Content-Length: ");
        Ok(Self {
            stream,
            head: head.into_bytes(),
            request: Vec::with_capacity(1024),
            received: Vec::with_capacity(8192),
        })
    }

    /// Sends one request with `body` and reads its answer (each within [`TIMEOUT`]).
    pub(crate) async fn post(&mut self, body: &[u8]) -> Result<Answer, String> {
        tokio::time::timeout(TIMEOUT, self.exchange(body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
    }

    async fn exchange(&mut self, body: &[u8]) -> Result<Answer, String> {
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        self.request
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        self.request.extend_from_slice(body);
        let mut written = 0;
        while written < self.request.len() {
            match self.stream.try_write(&self.request[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self
                    .stream
                    .writable()
                    .await
                    .map_err(|e| format!("send: {e}"))?,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        self.received.clear();
        let mut buffer = [0u8; 8192];
        let mut answer = None;
        loop {
            if let Some((status, body_start, length)) = answer
                && self.received.len() >= body_start + length
            {
                if self.received.len() > body_start + length {
                    return Err("the server sent more than one answer".to_owned());
                }
                return Ok(Answer {
                    status,
                    body: self.received[body_start..].to_vec(),
                });
            }
            self.stream
                .readable()
                .await
                .map_err(|e| format!("receive: {e}"))?;
            let n = match self.stream.try_read(&mut buffer) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("receive: {e}")),
            };
            if n == 0 {
                return Err(if answer.is_some() {
                    "the server closed the connection mid-answer".to_owned()
                } else {
                    "the server closed the connection".to_owned()
                });
            }
            self.received.extend_from_slice(&buffer[..n]);
            if answer.is_none() {
                if let Some(end) = head_end(&self.received) {
                    let (status, length) = parse_head(&self.received[..end])?;
                    answer = Some((status, end, length));
                } else if self.received.len() > MAX_HEAD {
                    return Err("an answer head over 16 KiB".to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that reads one request and answers it with `chunks`, written one at a
    /// time a few milliseconds apart, then closes the connection.
    fn scripted_server(chunks: Vec<&'static [u8]>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.ends_with(b"{}") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            for chunk in chunks {
                std::thread::sleep(Duration::from_millis(5));
                if stream.write_all(chunk).is_err() {
                    return;
                }
            }
        });
        format!("http://{address}")
    }

    /// The answer to one `POST` of `{}` from a server answering with `chunks`.
    fn post_to(chunks: Vec<&'static [u8]>) -> Result<Answer, String> {
        let base = scripted_server(chunks);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut connection = Connection::open(&base, "/v1/evaluations", &[])?;
            connection.post(b"{}").await
        })
    }

    /// An answer is read whole however it arrives, and refused when the server closes before
    /// its head or its body is whole, or sends a second answer.
    #[test]
    fn answers_are_read_whole_however_they_arrive() {
        let answer = post_to(vec![
            b"HTTP/1.1 200 OK\r\ncontent-len",
            b"gth: 11\r\n\r\n{\"a\":",
            b"\"bcd\"}",
        ])
        .unwrap();
        assert_eq!(
            (answer.status, answer.body),
            (200, b"{\"a\":\"bcd\"}".to_vec())
        );
        // (chunks, a part of the refusal)
        let refusals: [(Vec<&'static [u8]>, &str); 3] = [
            (
                vec![b"HTTP/1.1 200 OK\r\ncontent-"],
                "closed the connection",
            ),
            (
                vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}"],
                "mid-answer",
            ),
            (
                vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n"],
                "more than one answer",
            ),
        ];
        for (chunks, part) in refusals {
            let refused = post_to(chunks).unwrap_err();
            assert!(refused.contains(part), "{part}: {refused}");
        }
        // Closed before the head was whole: not "mid-answer".
        assert_eq!(
            post_to(vec![b"HTTP/1.1 2"]).unwrap_err(),
            "the server closed the connection"
        );
    }

    #[test]
    fn only_loopback_http_addresses_are_driven() {
        // (base, whether it is accepted)
        for (base, accepted) in [
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080/", true),
            ("http://10.0.0.1:8080", false),
            ("https://127.0.0.1:8080", false),
            ("http://localhost:8080", false),
        ] {
            assert_eq!(loopback_address(base).is_ok(), accepted, "{base}");
        }
    }

    #[test]
    fn answer_heads_give_status_and_length_and_refuse_what_the_driver_cannot_read() {
        // (head, expected (status, length) or a part of the refusal)
        type Read = Result<(u16, usize), &'static str>;
        let cases: [(&str, Read); 5] = [
            (
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n",
                Ok((201, 42)),
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Ok((200, 0))),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Err("Transfer-Encoding"),
            ),
            (
                "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
                Err("closes the connection"),
            ),
            ("HTTP/1.0 200 OK\r\n\r\n", Err("status line")),
        ];
        for (head, expected) in cases {
            match (parse_head(head.as_bytes()), expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{head:?}"),
                (Err(error), Err(part)) => assert!(error.contains(part), "{head:?}: {error}"),
                (got, expected) => panic!("{head:?}: {got:?}, expected {expected:?}"),
            }
        }
    }
}
