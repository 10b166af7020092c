//! Which requests the server answers at all (checked by the listener before any route): the `Host` a browser sent, and the `Origin` of a request that changes something.
//!
//! A web page the user visits can make the browser send requests to `127.0.0.1`: through DNS
//! rebinding (a name of the attacker's that resolves to loopback, so the page is same-origin
//! with the server) or as a plain cross-site form post. The first carries the attacker's name in
//! `Host`, the second an `Origin` that is not the server's. Both are refused here, before any
//! route runs; clients that are not browsers (the CLI, curl, boto3) send neither.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, header};

use crate::ServiceError;

/// What a browser says of where a request comes from; a constant, so a lookup parses no name.
const SEC_FETCH_SITE: header::HeaderName = header::HeaderName::from_static("sec-fetch-site");

/// The names, besides loopback names and IP addresses, that clients may call the server by.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    public_names: Arc<Vec<String>>,
}

impl Guard {
    /// `public_names` are host names (no port) that a proxy or DNS gives this server, e.g. `ml.example.com`.
    pub fn new(public_names: &[String]) -> Guard {
        Guard { public_names: Arc::new(public_names.iter().map(|n| n.to_ascii_lowercase()).collect()) }
    }

    /// Whether a `Host` header's host (port dropped) is one this server answers to. IP addresses are
    /// fine: a rebinding attack needs a domain name. On every request, so it allocates nothing.
    fn allows_host(&self, host: &str) -> bool {
        let host = host_of(host).trim_end_matches('.');
        let localhost = host.len() >= 9 && host[host.len() - 9..].eq_ignore_ascii_case("localhost");
        host.parse::<IpAddr>().is_ok()
            || (localhost && (host.len() == 9 || host.as_bytes()[host.len() - 10] == b'.'))
            || self.public_names.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// Why the request is refused, if it is.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<ServiceError> {
        let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = host
            && !self.allows_host(host)
        {
            return Some(
                ServiceError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "host_not_allowed",
                    format!("this server does not answer to the name {}", names::excerpt(host, 80)),
                )
                .hint("call it by 127.0.0.1 or localhost, or start it with --public-name <name>"),
            );
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let cross_site = headers.get(SEC_FETCH_SITE).is_some_and(|v| v != "same-origin" && v != "none");
        let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
            let origin = origin.to_str().unwrap_or("null");
            let own = host.is_some_and(|host| {
                origin.eq_ignore_ascii_case(&format!("http://{host}"))
                    || origin.eq_ignore_ascii_case(&format!("https://{host}"))
            });
            !own
        });
        (cross_site || foreign_origin).then(|| {
            ServiceError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "a request from another site's page may not change anything here",
            )
            .hint("call the API from the CLI, a script, or the server's own pages")
        })
    }
}

/// `host` of `host:port`, or the address of `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn hosts_are_loopback_names_addresses_or_public_names() {
        let guard = Guard::new(&["ml.example.com".to_owned()]);
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "10.0.0.5",
            "app.localhost",
            "ml.example.com:443",
        ] {
            assert!(guard.allows_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "ml.example.com.evil",
        ] {
            assert!(!guard.allows_host(bad), "{bad}");
        }
    }

    #[test]
    fn changes_from_another_origin_are_refused() {
        let guard = Guard::default();
        let own = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(guard.refusal(&Method::POST, &own).is_none());
        let cli = headers(&[("host", "127.0.0.1:8080")]);
        assert!(guard.refusal(&Method::DELETE, &cli).is_none());
        let foreign = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://localhost:3000")]);
        assert!(guard.refusal(&Method::POST, &foreign).is_some());
        assert!(guard.refusal(&Method::GET, &foreign).is_none(), "reads are not refused for their origin");
        let sandboxed = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(guard.refusal(&Method::POST, &sandboxed).is_some());
        let fetch = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]);
        assert!(guard.refusal(&Method::PUT, &fetch).is_some());
        let rebinding = headers(&[("host", "evil.example:8080")]);
        assert!(guard.refusal(&Method::GET, &rebinding).is_some());
    }
}
