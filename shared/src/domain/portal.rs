//! The customer portal: a provider's backend asks for a one-time link for
//! one of its customers and redirects that signed-in customer to it; the
//! console trades the link's code, once, for a short portal token bound to
//! that customer (the owner), with which it manages the owner's keys.
//!
//! The code is 256 random bits, stored only as its SHA-256 (the link's id),
//! valid [`crate::config::AdminPolicy::portal_link_seconds`] and single use:
//! the exchange is one conditional write. The portal token is a JWT signed
//! and checked like every other token, with the reserved subject
//! [`SUBJECT`] and scope [`SCOPE`]; its session is the link's stored record,
//! read on every admin call, so signing out (a revoke of the token) ends it
//! at once. `/auth/verify` and the authorizer refuse it: its subject is no
//! key id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

use crate::domain::Error;
use crate::domain::app::App;
use crate::domain::audit::{Action, Actor, AuditEvent, Origin};
use crate::domain::owner::Owner;
use crate::domain::scope::Scopes;
use crate::domain::token::{self, Claims, TokenError};

/// The `sub` of every portal token: no key id looks like it.
pub const SUBJECT: &str = "portal";
/// The one scope of a portal token.
pub const SCOPE: &str = "portal";
/// A portal token's lifetime.
pub const TOKEN_SECONDS: u64 = 1800;
/// Bytes of randomness in a link's code.
const CODE_BYTES: usize = 32;

/// A link as stored: what the exchange grants, and once exchanged, until
/// when its portal session lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalLink {
    /// The SHA-256 of the code, hex: the link's and its session's id.
    pub id: String,
    /// The customer whose keys the portal manages.
    pub owner: Owner,
    /// The scopes keys made in the portal may hold.
    pub allowed_scopes: Scopes,
    /// Where the portal sends the customer for a new link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// When the code stops working, Unix seconds.
    pub expires_at: u64,
    /// Who asked for the link.
    pub created_by: Actor,
    /// Set by the exchange: when the portal session ends, Unix seconds.
    /// Absent, not null, until then: the exchange's condition is that it
    /// does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_until: Option<u64>,
}

impl PortalLink {
    /// When the store may drop the record: once neither the code nor a
    /// session it could have opened can work.
    pub fn ttl(&self) -> u64 {
        self.expires_at.saturating_add(TOKEN_SECONDS)
    }

    /// Whether its session is open at `now`.
    pub fn session_open(&self, now: u64) -> bool {
        self.session_until.is_some_and(|until| until > now)
    }
}

/// What a provider asks a link for.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    /// The customer.
    pub owner: Owner,
    /// The scopes the customer's keys may hold.
    pub allowed_scopes: Scopes,
    /// Where to send the customer back for a new link.
    pub return_url: Option<String>,
}

/// A link made: its URL, which holds the code and is shown this once.
#[derive(Debug)]
pub struct Link {
    /// `<ISSUER>/console/portal#code=<code>`.
    pub url: SecretString,
    /// When the code stops working, Unix seconds.
    pub expires_at: u64,
}

/// A code traded for a portal token.
#[derive(Debug)]
pub struct Exchanged {
    /// The portal token.
    pub token: SecretString,
    /// Seconds it lives.
    pub expires_in: u64,
    /// The link it came from.
    pub link: PortalLink,
}

/// What a portal caller may do beyond what its owner binding allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The portal session (the link's id).
    pub session: String,
    /// The scopes a key made in the portal may hold.
    pub allowed_scopes: Scopes,
}

/// Makes a link for `request.owner`, recording `portal.session_created` in
/// the same write. An owner-bound caller links only its own owner; the
/// allowed scopes may hold no reserved scope (a portal never makes a root
/// key); `return_url` must be on an origin of `PORTAL_RETURN_ORIGINS`.
pub async fn create_link(
    app: &App,
    caller_owner: Option<&Owner>,
    origin: Origin,
    request: LinkRequest,
) -> Result<Link, Error> {
    if caller_owner.is_some_and(|mine| *mine != request.owner) {
        return Err(Error::OwnerMismatch);
    }
    if let Some(reserved) = request
        .allowed_scopes
        .iter()
        .find(|s| s.starts_with("admin:") || *s == SCOPE)
    {
        return Err(Error::InvalidScope(format!(
            "{reserved} is reserved: portal keys cannot hold it"
        )));
    }
    if let Some(url) = &request.return_url {
        return_url_allowed(url, &app.admin.portal_return_origins)?;
    }
    let code = random_code()?;
    let stamp = app.stamp(origin)?;
    let now = stamp.now_ms / 1000;
    let link = PortalLink {
        id: code_id(&code),
        owner: request.owner,
        allowed_scopes: request.allowed_scopes,
        return_url: request.return_url,
        expires_at: now.saturating_add(app.admin.portal_link_seconds),
        created_by: stamp.origin.actor.clone(),
        session_until: None,
    };
    let mut changes = Map::new();
    changes.insert(
        "allowed_scopes".into(),
        json!({"old": null, "new": link.allowed_scopes.to_string()}),
    );
    if let Some(url) = &link.return_url {
        changes.insert("return_url".into(), json!({"old": null, "new": url}));
    }
    let event = AuditEvent::of_unkeyed(
        Action::PortalSessionCreated,
        Some(&link.owner),
        changes,
        &stamp,
    );
    app.store.create_portal_link(&link, &event).await?;
    let base = app.policy.issuer.trim_end_matches('/');
    Ok(Link {
        url: SecretString::from(format!("{base}/console/portal#code={code}")),
        expires_at: link.expires_at,
    })
}

/// Trades a link's code, once and before it expires, for a portal token.
/// An unknown, used or expired code is [`Error::InvalidGrant`], alike.
pub async fn exchange(app: &App, code: &str) -> Result<Exchanged, Error> {
    if !is_code(code) {
        return Err(Error::InvalidGrant);
    }
    let now = app.clock.now()?;
    let until = now.saturating_add(TOKEN_SECONDS);
    let link = app
        .store
        .redeem_portal_link(&code_id(code), now, until)
        .await?
        .ok_or(Error::InvalidGrant)?;
    let keys = app.keys.keys().await?;
    let claims = Claims {
        iss: app.policy.issuer.clone(),
        aud: app.policy.audience.clone(),
        sub: SUBJECT.into(),
        sid: link.id.clone(),
        jti: uuid::Uuid::new_v4().simple().to_string(),
        iat: now,
        nbf: None,
        exp: until,
        scope: SCOPE.into(),
    };
    let token = token::sign(&claims, &keys.current).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Exchanged {
        token: SecretString::from(token),
        expires_in: TOKEN_SECONDS,
        link,
    })
}

/// The open portal session `claims` (already authentic) belong to, read
/// from the store: none when it was ended, expired or never opened.
pub async fn session(app: &App, claims: &Claims) -> Result<PortalLink, Error> {
    if claims.sub != SUBJECT || claims.scope != SCOPE || !is_id(&claims.sid) {
        return Err(TokenError::Revoked.into());
    }
    let now = app.clock.now()?;
    match app.store.portal_link(&claims.sid).await? {
        Some(link) if link.session_open(now) => Ok(link),
        _ => Err(TokenError::Revoked.into()),
    }
}

/// Ends the portal session `claims` belong to; whether one was open.
pub async fn end(app: &App, claims: &Claims) -> Result<bool, Error> {
    if !is_id(&claims.sid) {
        return Ok(false);
    }
    Ok(app.store.end_portal_session(&claims.sid).await?)
}

/// Refuses a `return_url` that is not an absolute http(s) URL on one of
/// `origins`.
fn return_url_allowed(url: &str, origins: &[String]) -> Result<(), Error> {
    let refused = || {
        Error::InvalidRequest(
            "return_url must be an http(s) URL on an origin of PORTAL_RETURN_ORIGINS".into(),
        )
    };
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    let origin = parsed.origin().ascii_serialization();
    let allowed = matches!(parsed.scheme(), "http" | "https")
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && url.len() <= 2048
        && origins.contains(&origin);
    if allowed { Ok(()) } else { Err(refused()) }
}

fn random_code() -> Result<String, Error> {
    let mut bytes = [0u8; CODE_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The id a code is stored under.
fn code_id(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// Whether `code` can be a code we made: 43 base64url characters.
fn is_code(code: &str) -> bool {
    code.len() == 43
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `id` can be a link id: 64 lowercase hex digits.
fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
