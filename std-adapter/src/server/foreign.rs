//! Another protocol's opening bytes: recognised by `unstick-core`'s
//! [`foreign`](unstick_core::foreign) module, answered here.

pub use unstick_core::foreign::*;

/// What to answer a client of `protocol` before closing: an HTTP client gets a plain
/// `400 Bad Request` that says what the port is (curl shows it); the others get nothing.
pub fn reply(protocol: ForeignProtocol, service: &str) -> Vec<u8> {
    match protocol {
        ForeignProtocol::Http => {
            let body = format!(
                "This port serves the unstick {service} protocol, not HTTP. \
                 Use the unstick client.\n"
            );
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        ForeignProtocol::Tls | ForeignProtocol::Ssh => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_refusal_is_a_complete_response() {
        let reply = String::from_utf8(reply(ForeignProtocol::Http, "shell")).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("unstick shell protocol"));
        assert!(super::reply(ForeignProtocol::Tls, "shell").is_empty());
    }
}
