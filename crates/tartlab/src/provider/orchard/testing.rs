//! A stand-in Orchard controller for the unit tests: a server on 127.0.0.1 that answers each
//! request (several on one connection, as reqwest keeps it open) with what the test's
//! closure gives for its request line, and the `Controller` that reaches it.

use std::io::{BufRead, BufReader, Write};

use super::api::Controller;
use super::config::{Credentials, Secret};

/// An answer: its status, and its body, sent with a Content-Length or chunked.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            chunked: false,
        }
    }
}

/// A controller whose every request (`GET /v1/vms HTTP/1.1`) `answer` answers.
pub fn controller(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Controller {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut stream) = connection else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        line.clear();
                    }
                    if send(&mut stream, &answer(first.trim_end())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Controller::new(Credentials {
        url,
        account: "tartlab".into(),
        token: Secret::new("not-a-token"),
        from: "the test".into(),
        certificate: None,
    })
    .unwrap()
}

/// Writes the answer until the client stops reading.
fn send(stream: &mut std::net::TcpStream, answer: &Answer) -> std::io::Result<()> {
    let framing = if answer.chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", answer.body.len())
    };
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n{framing}\r\n\r\n",
        answer.status
    );
    stream.write_all(head.as_bytes())?;
    for piece in answer.body.chunks(64 * 1024) {
        if answer.chunked {
            stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
            stream.write_all(piece)?;
            stream.write_all(b"\r\n")?;
        } else {
            stream.write_all(piece)?;
        }
    }
    if answer.chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}
