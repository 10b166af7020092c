//! Who is calling and what they may do: tokens with roles, checked before any route runs.
//!
//! A token is `sb_` and 64 hex digits from the OS's random source, shown once when it is made;
//! only its SHA-256 is stored, and a presented token's hash is compared with every known one in
//! constant time. On loopback (the default) no token is needed and a caller without one is
//! `local`, with every role; off loopback every route but health, version and the OpenAPI
//! document needs one, and so does every invocation unless its endpoint is made public.

use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, Method, StatusCode, header};
use sha2::{Digest, Sha256};
use store::{Role, TokenRecord};
use subtle::ConstantTimeEq;

use crate::ServiceError;

/// Who made a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    /// The token's name, or `local`.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// A caller on a server that asks for no token, or the CLI in-process.
    pub fn local() -> Caller {
        Caller { name: "local".to_owned(), role: Role::Admin }
    }
}

/// Each known token's SHA-256, with whom it belongs to.
type Known = Vec<([u8; 32], Caller)>;

/// The tokens a server knows, by hash.
#[derive(Clone, Default)]
pub struct Tokens {
    known: Arc<RwLock<Known>>,
}

impl std::fmt::Debug for Tokens {
    // Hashes are not shown even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

impl Tokens {
    /// Replaces what is known with `tokens` (from the store).
    pub fn set(&self, tokens: Vec<(TokenRecord, String)>) {
        let known = tokens
            .into_iter()
            .filter_map(|(record, hash)| {
                let hash: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
                Some((hash, Caller { name: record.name, role: record.role }))
            })
            .collect();
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = known;
    }

    pub fn is_empty(&self) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Whether a token of this name and role is still known (not revoked).
    pub fn knows(&self, caller: &Caller) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).iter().any(|(_, known)| known == caller)
    }

    /// The caller a token belongs to. Every known hash is compared, in constant time.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let presented = hash(token);
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for (hash, caller) in known.iter() {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

/// A new token's value.
pub fn new_token() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ServiceError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("no random source: {e}"))
    })?;
    Ok(format!("sb_{}", hex::encode(bytes)))
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether callers need a token, and which endpoints anyone may invoke.
#[derive(Clone, Default, Debug)]
pub struct Access {
    /// True when the server listens off loopback (and was not told to take the risk).
    pub required: bool,
    pub tokens: Tokens,
    /// Endpoints invoked with no token even when tokens are required.
    pub public_endpoints: Arc<Vec<String>>,
}

impl Access {
    /// Who sent a request, or why it is refused: a token that is not known is always refused, and
    /// none at all when one is required.
    ///
    /// The AWS CLI and SDKs sign with SigV4: the access key id of the `Credential=` is taken as
    /// the token (the signature is not checked, as the server keeps no secret to check it with,
    /// only the token's hash). A key id that is no token is `local` where none is required, so
    /// made-up credentials work on loopback.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ServiceError> {
        if let Some(key) = sigv4_key(headers) {
            return match self.tokens.verify(key) {
                Some(caller) => Ok(caller),
                None if !self.required => Ok(Caller::local()),
                None => Err(ServiceError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the access key id is not a token this server knows",
                )
                .hint("set AWS_ACCESS_KEY_ID to a token from `sagebrush token create NAME --role operator` (any secret key)")),
            };
        }
        match bearer(headers) {
            Some(token) => self.tokens.verify(token).ok_or_else(|| {
                ServiceError::new(StatusCode::UNAUTHORIZED, "invalid_token", "this token is not known to the server")
                    .hint("it may have been revoked; `sagebrush token list` on the server shows the tokens")
            }),
            None if self.required => Err(ServiceError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this server needs a token",
            )
            .hint("pass one as `Authorization: Bearer <token>`, or set SAGEBRUSH_TOKEN for the CLI; an admin makes one with `sagebrush token create NAME --role viewer`")),
            None => Ok(Caller::local()),
        }
    }

    /// Why an invocation of `path` is refused, if it is: only when tokens are required, and the
    /// endpoint is not public. Cheap when tokens are not required: it is on every invocation.
    pub fn invocation_refusal(&self, path: &str, headers: &HeaderMap) -> Option<ServiceError> {
        if !self.required {
            return None;
        }
        let mut parts = path.strip_prefix("/endpoints/")?.split('/');
        let endpoint = parts.next()?;
        // Other paths under /endpoints/ are the dashboard's pages, which have sessions of their own.
        if !matches!(parts.next(), Some("invocations" | "feedback")) {
            return None;
        }
        if self.public_endpoints.iter().any(|public| public == endpoint) {
            return None;
        }
        self.caller(headers).err()
    }
}

/// What a SigV4 `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`
/// header says of its caller.
pub(crate) struct Credential<'a> {
    /// The access key id: a sagebrush token.
    pub key: &'a str,
    /// The region the request was signed for, when it is a plausible one.
    pub region: Option<&'a str>,
    /// The service it was signed for: `sagemaker`, `s3`, ...
    pub service: Option<&'a str>,
}

pub(crate) fn sigv4_credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scope = value.strip_prefix("AWS4-HMAC-SHA256 ")?.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    let key = parts.next().filter(|key| !key.is_empty())?;
    let plausible = |part: &&str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let region = parts.nth(1).filter(plausible);
    let service = parts.next().filter(plausible);
    Some(Credential { key, region, service })
}

fn sigv4_key(headers: &HeaderMap) -> Option<&str> {
    sigv4_credential(headers).map(|credential| credential.key)
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The role a route needs; `None` for the routes anyone may call (health, version, the document).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    // Webhooks prove who sent them with the project's own secret instead.
    if matches!(path, "/health" | "/api/v1/health" | "/api/v1/version" | "/api/v1/openapi.json")
        || path.starts_with("/hooks/")
    {
        return None;
    }
    let admin = ["/api/v1/projects", "/api/v1/tokens", "/api/v1/gc"]
        .iter()
        .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    Some(match (reads, admin) {
        (true, true) if path.starts_with("/api/v1/tokens") => Role::Admin,
        (true, _) => Role::Viewer,
        (false, true) => Role::Admin,
        (false, false) => Role::Operator,
    })
}

/// Whether a request changes something, and so goes into the audit.
pub fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let token = new_token().unwrap();
        assert!(token.starts_with("sb_") && token.len() == 67, "{token}");
        let tokens = Tokens::default();
        let record = TokenRecord { name: "ci".into(), role: Role::Operator, created_at: 0 };
        tokens.set(vec![(record, hex::encode(hash(&token)))]);
        assert_eq!(tokens.verify(&token), Some(Caller { name: "ci".into(), role: Role::Operator }));
        assert_eq!(tokens.verify(&new_token().unwrap()), None);
        let access = Access { required: true, tokens, public_endpoints: Arc::new(vec!["open".into()]) };
        assert_eq!(access.caller(&HeaderMap::new()).unwrap_err().code, "unauthenticated");
        assert_eq!(access.caller(&headers("sb_wrong")).unwrap_err().code, "invalid_token");
        assert_eq!(access.caller(&headers(&token)).unwrap().name, "ci");
        assert!(access.invocation_refusal("/endpoints/prod/invocations", &HeaderMap::new()).is_some());
        assert!(access.invocation_refusal("/endpoints/open/invocations", &HeaderMap::new()).is_none());
        assert!(access.invocation_refusal("/endpoints/prod/invocations", &headers(&token)).is_none());
    }

    #[test]
    fn a_sigv4_credential_says_its_key_and_region() {
        let signed = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let full = signed(
            "AWS4-HMAC-SHA256 Credential=sb_abc/20261206/eu-west-1/sagemaker/aws4_request, SignedHeaders=host, Signature=00",
        );
        let credential = sigv4_credential(&full).unwrap();
        assert_eq!((credential.key, credential.region), ("sb_abc", Some("eu-west-1")));
        let odd = signed("AWS4-HMAC-SHA256 Credential=sb_abc/20261206/eu_west!/sagemaker/aws4_request");
        assert_eq!(sigv4_credential(&odd).unwrap().region, None);
        assert!(sigv4_credential(&signed("AWS4-HMAC-SHA256 Credential=/x/y")).is_none());
        assert!(sigv4_credential(&headers("sb_x")).is_none());
    }

    #[test]
    fn routes_need_the_role_of_what_they_do() {
        assert_eq!(required_role(&Method::GET, "/api/v1/health"), None);
        assert_eq!(required_role(&Method::GET, "/api/v1/runs"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::POST, "/api/v1/runs"), Some(Role::Operator));
        assert_eq!(required_role(&Method::POST, "/api/v1/endpoints/a/deploy"), Some(Role::Operator));
        assert_eq!(required_role(&Method::GET, "/api/v1/projects"), Some(Role::Viewer));
        assert_eq!(required_role(&Method::POST, "/api/v1/projects"), Some(Role::Admin));
        assert_eq!(required_role(&Method::DELETE, "/api/v1/projects/a"), Some(Role::Admin));
        assert_eq!(required_role(&Method::GET, "/api/v1/tokens"), Some(Role::Admin));
        assert_eq!(required_role(&Method::POST, "/api/v1/projectsx"), Some(Role::Operator));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
