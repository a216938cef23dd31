//! Which `Host` values `authctl serve` answers: its own address and
//! localhost on its port, plus those named by `--public-host`. A web page
//! that rebinds its own DNS name to 127.0.0.1 still sends that name as
//! `Host`, so refusing unknown names keeps such pages out.

use std::net::SocketAddr;
use std::str::FromStr;

use hyper::http::uri::Authority;
use hyper::{HeaderMap, Uri, header::HOST};

/// A `Host` the server answers to: a name, on one port or on any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower case: DNS names compare without case.
    name: String,
    port: Option<u16>,
}

impl FromStr for AllowedHost {
    type Err = String;

    /// `name` (any port) or `name:port`, as a `Host` header would carry it.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, port) =
            authority(s).ok_or_else(|| format!("{s:?} is not a host name or name:port"))?;
        Ok(Self { name, port })
    }
}

/// Why a request's target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Host`, several, or one that is not `name[:port]`: 400 (RFC 9112 §3.2).
    Malformed,
    /// A well-formed `Host` naming another server: 421 Misdirected Request (RFC 9110 §15.5.20).
    Foreign,
}

/// The `Host` values one server answers to.
#[derive(Debug)]
pub struct Hosts {
    allowed: Vec<AllowedHost>,
}

impl Hosts {
    /// The bound address, `localhost`, `127.0.0.1` and `[::1]` on its port, and `public`.
    pub fn new(bound: SocketAddr, public: &[AllowedHost]) -> Self {
        let port = Some(bound.port());
        let own = [
            bound.ip().to_string(),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
        .into_iter()
        .map(|name| match bound {
            // The IPv6 address as a `Host` carries it: in brackets.
            SocketAddr::V6(_) if name.contains(':') => format!("[{name}]"),
            _ => name,
        })
        .chain(["[::1]".to_owned()])
        .map(|name| AllowedHost { name, port });
        Self {
            allowed: own.chain(public.iter().cloned()).collect(),
        }
    }

    /// Checks the request's `Host`, and the request target's authority when
    /// it has one (absolute form, which takes precedence over `Host`).
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(HOST).iter();
        let (Some(host), None) = (values.next(), values.next()) else {
            return Err(Refusal::Malformed);
        };
        let host = host.to_str().map_err(|_| Refusal::Malformed)?;
        self.admits(host)?;
        match uri.authority() {
            Some(target) => self.admits(target.as_str()),
            None => Ok(()),
        }
    }

    fn admits(&self, host: &str) -> Result<(), Refusal> {
        let (name, port) = authority(host).ok_or(Refusal::Malformed)?;
        // No port in `Host` means the scheme's default, 80 for plain HTTP.
        let port = port.unwrap_or(80);
        let known = self
            .allowed
            .iter()
            .any(|a| a.name == name && a.port.is_none_or(|p| p == port));
        if known { Ok(()) } else { Err(Refusal::Foreign) }
    }
}

/// `name[:port]` with the name in lower case; `None` for anything else,
/// including user info (`a@b`), which `Host` never carries.
fn authority(s: &str) -> Option<(String, Option<u16>)> {
    let authority = Authority::from_str(s).ok()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    // `Authority` takes "name:" and "name:99999" as a name without a port.
    if authority.port_u16().is_none() && authority.as_str() != authority.host() {
        return None;
    }
    Some((authority.host().to_ascii_lowercase(), authority.port_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn serving(bound: &str, public: &[&str]) -> Hosts {
        let public: Vec<AllowedHost> = public.iter().map(|p| p.parse().unwrap()).collect();
        Hosts::new(bound.parse().unwrap(), &public)
    }

    fn check(hosts: &Hosts, target: &str, host: &[&str]) -> Result<(), Refusal> {
        let mut headers = HeaderMap::new();
        for value in host {
            headers.append(HOST, HeaderValue::from_str(value).unwrap());
        }
        hosts.check(&target.parse().unwrap(), &headers)
    }

    #[test]
    fn the_own_address_and_localhost_on_its_port_are_answered() {
        let hosts = serving("127.0.0.1:8080", &[]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LocalHost:8080",
            "[::1]:8080",
        ] {
            assert_eq!(check(&hosts, "/auth/verify", &[host]), Ok(()), "{host}");
        }
    }

    #[test]
    fn an_ipv6_bound_address_is_answered_in_brackets() {
        let hosts = serving("[::1]:9000", &[]);
        assert_eq!(check(&hosts, "/", &["[::1]:9000"]), Ok(()));
        let hosts = serving("[fe80::1]:9000", &[]);
        assert_eq!(check(&hosts, "/", &["[fe80::1]:9000"]), Ok(()));
    }

    #[test]
    fn another_name_or_port_is_misdirected() {
        let hosts = serving("127.0.0.1:8080", &[]);
        for host in [
            "evil.example:8080",
            "localhost:8081",
            "127.0.0.1",
            "localhost",
            "localhost.:8080",
            "127.0.0.2:8080",
        ] {
            assert_eq!(check(&hosts, "/", &[host]), Err(Refusal::Foreign), "{host}");
        }
    }

    #[test]
    fn a_missing_repeated_or_malformed_host_is_a_bad_request() {
        let hosts = serving("127.0.0.1:8080", &[]);
        assert_eq!(check(&hosts, "/", &[]), Err(Refusal::Malformed));
        assert_eq!(
            check(&hosts, "/", &["localhost:8080", "localhost:8080"]),
            Err(Refusal::Malformed)
        );
        for host in [
            "",
            "user@localhost:8080",
            "localhost:",
            "local host:8080",
            "::1:8080",
        ] {
            assert_eq!(
                check(&hosts, "/", &[host]),
                Err(Refusal::Malformed),
                "{host:?}"
            );
        }
    }

    #[test]
    fn an_absolute_target_must_name_the_server_too() {
        let hosts = serving("127.0.0.1:8080", &[]);
        assert_eq!(
            check(&hosts, "http://evil.example/", &["localhost:8080"]),
            Err(Refusal::Foreign)
        );
        assert_eq!(
            check(&hosts, "http://localhost:8080/", &["localhost:8080"]),
            Ok(())
        );
    }

    #[test]
    fn a_public_host_admits_its_name_on_any_port_or_on_the_one_given() {
        let hosts = serving("0.0.0.0:8080", &["Auth.Example.com", "10.0.0.5:8080"]);
        for host in [
            "auth.example.com",
            "auth.example.com:443",
            "AUTH.example.com:8080",
        ] {
            assert_eq!(check(&hosts, "/", &[host]), Ok(()), "{host}");
        }
        assert_eq!(check(&hosts, "/", &["10.0.0.5:8080"]), Ok(()));
        assert_eq!(
            check(&hosts, "/", &["10.0.0.5:9090"]),
            Err(Refusal::Foreign)
        );
        assert_eq!(check(&hosts, "/", &["0.0.0.0:8080"]), Ok(()));
    }

    #[test]
    fn a_public_host_must_be_a_name_or_name_and_port() {
        for bad in ["", "a@b", "name:", "name:99999", "a b", "http://x/"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "Example.com:8443".parse::<AllowedHost>(),
            Ok(AllowedHost {
                name: "example.com".into(),
                port: Some(8443)
            })
        );
    }
}
