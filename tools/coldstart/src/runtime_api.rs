//! Just enough of the Lambda Runtime API (HTTP/1.1 on loopback) for one function process at a time.
//!
//! The function long-polls `GET /2018-06-01/runtime/invocation/next`, answers with
//! `POST …/invocation/{id}/response` (or `/error`), and reports a failed start with
//! `POST …/runtime/init/error`. Each request reaches the caller as an [`Incoming`] with the stream to
//! answer on; connections are kept alive, as the runtimes' HTTP clients expect.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

/// A request the function made.
#[derive(Debug)]
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    answer: TcpStream,
}

impl Incoming {
    /// Answers with `status`, extra `headers` and a body.
    pub fn respond(mut self, status: u16, headers: &[(&str, String)], body: &[u8]) {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // A function that was killed meanwhile cannot read the answer; that is not the harness's error.
        let _ = self
            .answer
            .write_all(head.as_bytes())
            .and_then(|()| self.answer.write_all(body))
            .and_then(|()| self.answer.flush());
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        _ => "Status",
    }
}

/// The listening side: every request of every connection arrives on one channel, in order.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    pub requests: Receiver<Incoming>,
}

impl RuntimeApi {
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                thread::spawn(move || serve(stream, tx));
            }
        });
        Ok(Self { addr, requests: rx })
    }
}

/// Reads requests off one connection until it closes or sends something that is not HTTP/1.1.
fn serve(stream: TcpStream, tx: Sender<Incoming>) {
    let _ = stream.set_nodelay(true);
    let Ok(answer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Ok(Some(request)) = read_request(&mut reader, &answer) else {
            return;
        };
        if tx.send(request).is_err() {
            return;
        }
    }
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    answer: &TcpStream,
) -> io::Result<Option<Incoming>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no request line",
        ));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Incoming {
        method,
        path,
        body,
        answer: answer.try_clone()?,
    }))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the blank line that ends the body.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}
