//! Browser sessions: a token is given once on the login page and a random session id is kept in
//! an `HttpOnly; SameSite=Strict` cookie; every form carries the session's CSRF token.
//!
//! Sessions live in the server's memory: a restart logs everyone out, and a revoked token's
//! sessions end at their next request. On loopback with no tokens a visit gets a session of
//! `local` at once, so that its forms are protected the same way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Caller, Tokens};

/// The session cookie's name.
pub(super) const COOKIE: &str = "sagebrush_session";
/// How long a session lasts from its login.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most: past it, the one nearest its end goes (a script that never keeps the
/// cookie opens a session per request on loopback, and must not grow the server without bound).
const MOST: usize = 10_000;

/// Who a request of a session comes from, and the token its forms must carry.
#[derive(Clone, Debug)]
pub(crate) struct Visit {
    pub caller: Caller,
    pub csrf: String,
    /// Whether the server asks for tokens (so the visit logged in, and may log out).
    pub logged_in: bool,
}

impl Visit {
    /// Whether a form's CSRF token is this session's (compared in constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

struct Session {
    caller: Caller,
    csrf: String,
    expires: Instant,
}

/// The open sessions, by the SHA-256 of their id (the id itself is only in the cookie).
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Opens a session for `caller`: its id (for the cookie) and the visit.
    pub fn open(&self, caller: Caller, logged_in: bool) -> Option<(String, Visit)> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if open.len() >= MOST {
            open.retain(|_, s| s.expires > now);
        }
        if open.len() >= MOST
            && let Some(nearest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(key, _)| *key)
        {
            open.remove(&nearest);
        }
        let session = Session { caller: caller.clone(), csrf: csrf.clone(), expires: now + LIFETIME };
        open.insert(hash(&id), session);
        Some((id, Visit { caller, csrf, logged_in }))
    }

    /// The visit of the session a request's cookie names, if it is open, unexpired, and its token
    /// is still known (`required`: the server asks for tokens).
    pub fn find(&self, headers: &HeaderMap, tokens: &Tokens, required: bool) -> Option<Visit> {
        let id = cookie(headers)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let key = hash(id);
        let session = open.get(&key)?;
        let still_valid = session.expires > Instant::now()
            && if session.caller == Caller::local() { !required } else { tokens.knows(&session.caller) };
        if !still_valid {
            open.remove(&key);
            return None;
        }
        Some(Visit { caller: session.caller.clone(), csrf: session.csrf.clone(), logged_in: required })
    }

    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash(id));
        }
    }
}

/// The `Set-Cookie` of a session id; an empty id clears it.
pub(super) fn set_cookie(id: &str) -> HeaderValue {
    let age = if id.is_empty() { 0 } else { LIFETIME.as_secs() };
    let value = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("sagebrush_session=; Max-Age=0"))
}

/// The session id a request's cookies carry.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Role, TokenRecord};

    fn with_cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {COOKIE}={id}").parse().unwrap());
        headers
    }

    #[test]
    fn a_session_ends_with_its_token_and_its_csrf_token_must_match() {
        let tokens = Tokens::default();
        let record = TokenRecord { name: "ana".into(), role: Role::Viewer, created_at: 0 };
        tokens.set(vec![(record, hex::encode(crate::auth::hash("sb_x")))]);
        let sessions = Sessions::default();
        let ana = Caller { name: "ana".into(), role: Role::Viewer };
        let (id, visit) = sessions.open(ana.clone(), true).unwrap();
        let found = sessions.find(&with_cookie(&id), &tokens, true).unwrap();
        assert_eq!(found.caller, ana);
        assert!(found.csrf_matches(Some(&visit.csrf)));
        assert!(!found.csrf_matches(Some("nope")) && !found.csrf_matches(None));
        assert!(sessions.find(&with_cookie("forged"), &tokens, true).is_none());
        // The token is revoked: its session is gone.
        tokens.set(Vec::new());
        assert!(sessions.find(&with_cookie(&id), &tokens, true).is_none());
        // A local session is no good once the server asks for tokens.
        let (local, _) = sessions.open(Caller::local(), false).unwrap();
        assert!(sessions.find(&with_cookie(&local), &tokens, false).is_some());
        assert!(sessions.find(&with_cookie(&local), &tokens, true).is_none());
        let cookie = set_cookie(&id);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_go_first() {
        let sessions = Sessions::default();
        let (first, _) = sessions.open(Caller::local(), false).unwrap();
        for _ in 0..MOST {
            sessions.open(Caller::local(), false).unwrap();
        }
        assert_eq!(sessions.open.lock().unwrap().len(), MOST);
        assert!(sessions.find(&with_cookie(&first), &Tokens::default(), false).is_none());
    }
}
