//! The network addresses users write: `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`, where
//! HOST is a name (`localhost`, `files.example.org`) or an IP address, and PORT defaults to the
//! tool's own when the caller has one.
//!
//! Names are not resolved here: the text is only checked and put in the one form
//! `std::net::ToSocketAddrs` reads (`HOST:PORT`, an IPv6 address in brackets), so that
//! connecting resolves the name and tries every address it has, in turn.
//!
//! No text makes [`HostPort::parse`] panic: anything it cannot read is an [`AddressError`] that
//! names the part at fault.

use std::fmt;
use std::net::Ipv6Addr;

/// A host and a port, as a user wrote them (the host not resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// A host name, an IPv4 address, or an IPv6 address (without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an address is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing names the host (`""`, `:8080`).
    NoHost {
        /// The address as written.
        addr: String,
    },
    /// No port, and the caller has no default.
    NoPort {
        /// The address as written.
        addr: String,
    },
    /// The port is not a number from 1 to 65535 (0 only where it means "any").
    BadPort {
        /// The port as written.
        port: String,
        /// The address as written.
        addr: String,
    },
    /// The host holds a character no host name or IP address has.
    BadHost {
        /// The host as written.
        host: String,
        /// The first character that cannot be in it.
        bad: char,
    },
    /// An IPv6 address written with a port but without brackets, or brackets around something
    /// that is no IPv6 address.
    BadIpv6 {
        /// The address as written.
        addr: String,
    },
    /// A scheme (`http://`, `ssh://`) this tool does not speak.
    UnknownScheme {
        /// The scheme, `://` included.
        scheme: String,
    },
    /// `tls://` with nothing after it.
    NoTlsHost {
        /// The address as written.
        addr: String,
    },
    /// `uart+tcp://` with no host.
    NoUartBridgeHost {
        /// The address as written.
        addr: String,
    },
    /// `serial:` with no device path.
    NoSerialPort {
        /// The address as written.
        addr: String,
    },
    /// The speed after `@` in a serial address is not a positive number.
    BadBaud {
        /// The speed as written.
        baud: String,
        /// The address as written.
        addr: String,
    },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::NoHost { addr } => {
                write!(f, "`{addr}` names no host; write HOST or HOST:PORT")
            }
            AddressError::NoPort { addr } => {
                write!(f, "`{addr}` has no port; write {addr}:PORT")
            }
            AddressError::BadPort { port, addr } => write!(
                f,
                "port `{port}` in `{addr}` is not a number from 1 to 65535"
            ),
            AddressError::BadHost { host, bad } => write!(
                f,
                "host `{host}` cannot hold {bad:?}; write a host name or an IP address"
            ),
            AddressError::BadIpv6 { addr } => write!(
                f,
                "`{addr}` is not an address; an IPv6 address goes in brackets, as [::1] or \
                 [::1]:8080"
            ),
            AddressError::UnknownScheme { scheme } => write!(
                f,
                "`{scheme}` addresses are not spoken here; write HOST[:PORT], tls://HOST[:PORT], \
                 serial:PATH[@BAUD] or uart+tcp://HOST:PORT"
            ),
            AddressError::NoTlsHost { addr } => {
                write!(f, "`{addr}` names no server; write tls://HOST[:PORT]")
            }
            AddressError::NoUartBridgeHost { addr } => write!(
                f,
                "`{addr}` names no UART bridge; write uart+tcp://HOST:PORT (the TCP port of \
                 QEMU's -serial tcp: or of a ser2net-style server)"
            ),
            AddressError::NoSerialPort { addr } => write!(
                f,
                "`{addr}` names no port; write serial:/dev/ttyACM0@115200 (serial:COM3 on Windows)"
            ),
            AddressError::BadBaud { baud, addr } => write!(
                f,
                "speed `{baud}` in `{addr}` is not a number of bits per second; write \
                 serial:PATH@115200"
            ),
        }
    }
}

impl std::error::Error for AddressError {}

impl HostPort {
    /// Reads `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT`, or a bare IPv6 address such as
    /// `::1`; a missing port is `default_port`, or an error without one. Port 0 is accepted
    /// (it means "any" to a server); a client refuses it with [`HostPort::check_connectable`].
    pub fn parse(addr: &str, default_port: Option<u16>) -> Result<HostPort, AddressError> {
        let text = addr.trim();
        if let Some(at) = text.find("://") {
            return Err(AddressError::UnknownScheme {
                scheme: text[..at + 3].to_owned(),
            });
        }
        let port_or_default = |port: Option<&str>| match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| AddressError::BadPort {
                    port: port.to_owned(),
                    addr: addr.to_owned(),
                }),
            None => default_port.ok_or_else(|| AddressError::NoPort {
                addr: addr.to_owned(),
            }),
        };
        let bad_ipv6 = || AddressError::BadIpv6 {
            addr: addr.to_owned(),
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(bad_ipv6)?;
            // A zone (`fe80::1%eth0`) follows the address itself.
            let address = inside
                .split_once('%')
                .map_or(inside, |(address, _)| address);
            address.parse::<Ipv6Addr>().map_err(|_| bad_ipv6())?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(bad_ipv6)?),
            };
            (inside, port)
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address has no room for a port.
            text.parse::<Ipv6Addr>().map_err(|_| bad_ipv6())?;
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(AddressError::NoHost {
                addr: addr.to_owned(),
            });
        }
        if !host.contains(':')
            && let Some(bad) = host
                .chars()
                .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(AddressError::BadHost {
                host: host.to_owned(),
                bad,
            });
        }
        Ok(HostPort {
            host: host.to_owned(),
            port: port_or_default(port)?,
        })
    }

    /// Refuses port 0, which a server can listen on (any free port) but no client can reach.
    pub fn check_connectable(&self) -> Result<(), AddressError> {
        if self.port == 0 {
            return Err(AddressError::BadPort {
                port: "0".into(),
                addr: self.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for HostPort {
    /// `HOST:PORT`, an IPv6 host in brackets: the form `std::net::ToSocketAddrs` reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_default_port_and_bracket_ipv6() {
        let table = [
            ("127.0.0.1:8080", Some("127.0.0.1:8080")),
            ("127.0.0.1", Some("127.0.0.1:9")),
            ("localhost", Some("localhost:9")),
            ("files.example.org:21", Some("files.example.org:21")),
            ("my_host", Some("my_host:9")),
            ("[::1]:8080", Some("[::1]:8080")),
            ("[::1]", Some("[::1]:9")),
            ("::1", Some("[::1]:9")),
            ("[fe80::1%2]:80", Some("[fe80::1%2]:80")),
            ("0.0.0.0:0", Some("0.0.0.0:0")),
            (" host:7 ", Some("host:7")),
            ("", None),
            (":8080", None),
            ("[]:8080", None),
            ("host:", None),
            ("host:http", None),
            ("host:+80", None),
            ("host:65536", None),
            ("::1:8080:x", None),
            ("[::1", None),
            ("[::1]8080", None),
            ("[nothing]:80", None),
            ("a b:80", None),
            ("user@host", None),
            ("http://host", None),
        ];
        for (text, expected) in table {
            let parsed = HostPort::parse(text, Some(9)).map(|a| a.to_string());
            assert_eq!(parsed.as_deref().ok(), expected, "{text}: {parsed:?}");
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let message = |text| HostPort::parse(text, Some(9)).unwrap_err().to_string();
        assert!(message("host:80x").contains("port `80x`"));
        assert!(message("a b").contains("host `a b`"));
        assert!(message("::1:80:x").contains("brackets"));
        assert!(message("http://h").contains("`http://`"));
        let no_port = HostPort::parse("host", None).unwrap_err().to_string();
        assert!(no_port.contains("host:PORT"), "{no_port}");
        let zero = HostPort::parse("host:0", None).unwrap();
        assert!(zero.check_connectable().is_err());
    }

    #[test]
    fn no_address_text_panics() {
        // Every string of up to four of these pieces: brackets, colons, zones, schemes,
        // multi-byte characters.
        let pieces = [
            "",
            "[",
            "]",
            ":",
            "::",
            "%",
            "a",
            "1",
            "\u{e9}",
            "://",
            "@",
            " ",
            "serial:",
            "tls://",
            "uart+tcp://",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let text = format!("{a}{b}{c}{d}");
                        let _ = HostPort::parse(&text, Some(1));
                        let _ = HostPort::parse(&text, None);
                        let _ = crate::link::Endpoint::parse_with_default_port(&text, 1);
                    }
                }
            }
        }
    }
}
