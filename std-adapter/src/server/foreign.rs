//! Another protocol's opening bytes: recognised by `unstick-core`'s
//! [`foreign`](unstick_core::foreign) module, answered here.

pub use unstick_core::foreign::*;

/// What to answer a client of `protocol` before closing: an HTTP client gets a plain
/// `400 Bad Request` that says what the port is (curl shows it); a TLS client an error frame
/// saying the port is plaintext; an SSH client nothing.
pub fn reply(protocol: ForeignProtocol, service: &str) -> Vec<u8> {
    let mut out = vec![0u8; 512];
    let n = unstick_core::foreign::encode_reply(protocol, service, &mut out);
    out.truncate(n);
    out
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
        assert!(super::reply(ForeignProtocol::Ssh, "shell").is_empty());
        let tls = super::reply(ForeignProtocol::Tls, "shell");
        let text = String::from_utf8_lossy(&tls);
        assert!(
            text.contains("foreign_protocol") && text.contains("not TLS"),
            "{text}"
        );
    }
}
