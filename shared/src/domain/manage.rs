//! The management API's use cases: a provider's backend creating, listing,
//! changing, rotating and revoking keys, ending their sessions and reading
//! their audit trail, with a *root key* (a key holding a reserved `admin:*`
//! scope).
//!
//! Every call starts with [`authorize`]: the bearer token is verified exactly
//! as `/auth/verify` does (one state read, so a revoked root key stops at
//! once), then the route's admin scope is required of it. An owner-bound
//! caller sees only its owner's keys: any other key is [`Error::NotFound`],
//! never a refusal that would tell it exists. No caller grants, or acts on a
//! key holding, an admin scope its own token lacks. Every change is made by
//! [`crate::domain::admin`], so each writes its audit event.
//!
//! Lists are newest first and paged by opaque cursors sealed with a key
//! derived from the signing key in force (see [`seal`]): a cursor that was
//! edited, or belongs to another listing, is refused.

use std::cmp::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::domain::admin::{self, CreateError, NewKey, RotateError};
use crate::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use crate::domain::app::App;
use crate::domain::audit::{Actor, AuditEvent, Origin};
use crate::domain::keyring::{KeySet, SigningKey};
use crate::domain::owner::{Meta, Owner};
use crate::domain::portal::{self, Grant, Link, LinkRequest};
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::{KeyPosition, SessionRecord, Store, StoreError};
use crate::domain::token::TokenError;
use crate::domain::{Error, verify};
use crate::telemetry::Audit;

/// Reading keys and their sessions.
pub const KEYS_READ: &str = "admin:keys:read";
/// Creating, changing, rotating and revoking keys and their sessions.
pub const KEYS_WRITE: &str = "admin:keys:write";
/// Reading the audit trail.
pub const AUDIT_READ: &str = "admin:audit:read";
/// Opening customer portal sessions.
pub const PORTAL: &str = "admin:portal";
/// What every reserved scope starts with: holding one makes a root key.
const ADMIN_PREFIX: &str = "admin:";

/// A page's size when the caller names none.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page.
pub const MAX_LIMIT: usize = 100;
/// How long a rotated key's old secret keeps working unless told otherwise.
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;
/// The longest grace a rotation may give: longer defeats the rotation.
pub const MAX_GRACE_SECONDS: u64 = 30 * 86_400;
/// The longest key name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The last second RFC 3339 can write (9999-12-31T23:59:59Z): no time stored
/// or answered is later.
pub const MAX_TIME: u64 = 253_402_300_799;

/// Where an admin request came from, for its audit events.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The request's id.
    pub request_id: Option<String>,
    /// The caller's address.
    pub source_ip: Option<String>,
}

/// A verified root key's token allowed the route's scope, or an open
/// customer portal session allowed the route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its owner: it sees and manages only that owner's keys.
    pub owner: Option<Owner>,
    /// The scopes of its token, against which escalation is judged.
    scopes: Scopes,
    origin: Origin,
    /// What a portal session may grant; `None` for a root key.
    portal: Option<Grant>,
}

impl Caller {
    fn sees(&self, record: &KeyRecord) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| record.owner.as_ref() == Some(o))
    }

    /// Refuses the admin scopes of `scopes` this caller's token lacks.
    fn may_grant(&self, scopes: &Scopes) -> Result<(), Error> {
        let lacking: Vec<&str> = scopes
            .iter()
            .filter(|s| s.starts_with(ADMIN_PREFIX))
            .filter(|s| !self.scopes.iter().any(|held| held == *s))
            .collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(Error::InsufficientScope(lacking.join(" ")))
        }
    }
}

/// Verifies `token` as `/auth/verify` does and requires `scope` of it:
/// [`Error::InvalidToken`] first, then [`Error::InsufficientScope`]. A
/// portal token is verified against its open portal session instead and
/// passes where `portal_may` (the route is one a portal may use).
pub async fn authorize(
    app: &App,
    token: Option<&str>,
    scope: &'static str,
    portal_may: bool,
    request: RequestInfo,
    audit: &mut Audit,
) -> Result<Caller, Error> {
    let claims = verify::authentic_claims(app, token.ok_or(TokenError::Missing)?).await?;
    if claims.sub == portal::SUBJECT {
        audit.session_id = Some(claims.sid.clone());
        let link = portal::session(app, &claims).await?;
        if !portal_may {
            return Err(Error::InsufficientScope(scope.into()));
        }
        return Ok(Caller {
            owner: Some(link.owner.clone()),
            scopes: Scopes::parse(portal::SCOPE).map_err(|_| TokenError::Claims)?,
            origin: Origin {
                actor: Actor::portal(&link.id, link.owner),
                request_id: request.request_id,
                source_ip: request.source_ip,
            },
            portal: Some(Grant {
                session: link.id,
                allowed_scopes: link.allowed_scopes,
            }),
        });
    }
    let required = Scopes::parse(scope).map_err(|e| Error::internal(e.to_string()))?;
    let verified = verify::verify_authentic(app, claims, Some(&required), audit).await?;
    let key_id = KeyId::parse(&verified.claims.sub).ok_or(TokenError::Revoked)?;
    let scopes = Scopes::parse(&verified.claims.scope).map_err(|_| TokenError::Claims)?;
    let origin = Origin {
        actor: Actor::key(&key_id, verified.owner.clone()),
        request_id: request.request_id,
        source_ip: request.source_ip,
    };
    Ok(Caller {
        owner: verified.owner,
        scopes,
        origin,
        portal: None,
    })
}

/// Makes a customer portal link (see [`portal::create_link`]).
pub async fn create_portal_link(
    app: &App,
    caller: &Caller,
    request: LinkRequest,
) -> Result<Link, Error> {
    portal::create_link(app, caller.owner.as_ref(), caller.origin.clone(), request).await
}

/// What a key is, as lists filter it and views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Active,
    /// Revoked for good.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl Status {
    /// The status of `record` at `now`.
    pub fn of(record: &KeyRecord, now: u64) -> Self {
        match record.status {
            KeyStatus::Revoked => Self::Revoked,
            KeyStatus::Active if record.is_usable(now) => Self::Active,
            KeyStatus::Active => Self::Expired,
        }
    }

    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Result<Self, Error> {
        [Self::Active, Self::Revoked, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| invalid("status must be active, revoked or expired"))
    }
}

/// One page of a list, newest first.
#[derive(Debug)]
pub struct Page<T> {
    /// What it holds.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of a list.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    limit: usize,
    cursor: Option<String>,
}

impl Paging {
    /// Parses a limit (1 to [`MAX_LIMIT`], by default [`DEFAULT_LIMIT`]) and
    /// a cursor as the query gave them; the cursor is checked when used.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit must be an integer from 1 to 100"))?,
        };
        Ok(Self {
            limit,
            cursor: cursor.map(str::to_owned),
        })
    }
}

/// `?owner=&status=` of the key list.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    owner: Option<Owner>,
    status: Option<Status>,
}

impl KeyFilter {
    /// Parses the filters as the query gave them.
    pub fn parse(owner: Option<&str>, status: Option<&str>) -> Result<Self, Error> {
        Ok(Self {
            owner: owner.map(parse_owner).transpose()?,
            status: status.map(Status::parse).transpose()?,
        })
    }
}

/// What `POST /admin/v1/keys` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    name: String,
    scopes: Scopes,
    owner: Option<Owner>,
    meta: Option<Meta>,
    expiry: Option<Expiry>,
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    At(u64),
    In(u64),
}

impl CreateRequest {
    /// Reads `{name, scopes, owner?, meta?, expires_at? or expires_in?}`.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Error> {
        only(
            body,
            &[
                "name",
                "scopes",
                "owner",
                "meta",
                "expires_at",
                "expires_in",
            ],
        )?;
        let name = parse_name(required(body, "name")?)?;
        let scopes = parse_scopes(required(body, "scopes")?)?;
        let owner = present(body, "owner")
            .map(|v| string(v, "owner").and_then(parse_owner))
            .transpose()?;
        let meta = present(body, "meta").cloned().map(parse_meta).transpose()?;
        let expiry = match (present(body, "expires_at"), present(body, "expires_in")) {
            (Some(_), Some(_)) => return Err(invalid("send expires_at or expires_in, not both")),
            (Some(at), None) => Some(Expiry::At(parse_expiry(at)?)),
            (None, Some(secs)) => {
                Some(Expiry::In(secs.as_u64().filter(|s| *s > 0).ok_or_else(
                    || invalid("expires_in must be a positive integer of seconds"),
                )?))
            }
            (None, None) => None,
        };
        Ok(Self {
            name,
            scopes,
            owner,
            meta,
            expiry,
        })
    }
}

/// A JSON merge patch (RFC 7396) of a key: members given replace the old
/// values; `null` clears `meta` or `expires_at`; `meta` is replaced whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPatch {
    name: Option<String>,
    scopes: Option<Scopes>,
    meta: Option<Option<Meta>>,
    expires_at: Option<Option<u64>>,
}

impl KeyPatch {
    /// Reads a patch of `name`, `scopes`, `meta` and `expires_at`; an
    /// `expires_at` not after `now` is refused.
    pub fn from_json(body: &Map<String, Value>, now: u64) -> Result<Self, Error> {
        only(body, &["name", "scopes", "meta", "expires_at"])?;
        let not_null = |name: &str| match body.get(name) {
            Some(Value::Null) => Err(invalid(&format!("{name} cannot be null"))),
            other => Ok(other),
        };
        let nullable = |name: &str| body.get(name).map(|v| (!v.is_null()).then_some(v));
        let expires_at = nullable("expires_at")
            .map(|v| v.map(parse_expiry).transpose())
            .transpose()?;
        if expires_at.flatten().is_some_and(|at| at <= now) {
            return Err(invalid("expires_at must be in the future"));
        }
        Ok(Self {
            name: not_null("name")?.map(parse_name).transpose()?,
            scopes: not_null("scopes")?.map(parse_scopes).transpose()?,
            meta: nullable("meta")
                .map(|v| v.cloned().map(parse_meta).transpose())
                .transpose()?,
            expires_at,
        })
    }

    /// Writes the patch onto `record`.
    pub fn apply(&self, record: &mut KeyRecord) {
        if let Some(name) = &self.name {
            record.name.clone_from(name);
        }
        if let Some(scopes) = &self.scopes {
            record.scopes = scopes.clone();
        }
        if let Some(meta) = &self.meta {
            record.meta = meta.clone();
        }
        if let Some(expires_at) = self.expires_at {
            record.expires_at = expires_at;
        }
    }
}

/// How long a rotated key's old secret keeps working, from `{grace_seconds?}`.
pub fn grace_from_json(body: &Map<String, Value>) -> Result<u64, Error> {
    only(body, &["grace_seconds"])?;
    match present(body, "grace_seconds") {
        None => Ok(DEFAULT_GRACE_SECONDS),
        Some(v) => v
            .as_u64()
            .filter(|g| *g <= MAX_GRACE_SECONDS)
            .ok_or_else(|| invalid("grace_seconds must be an integer from 0 to 2592000")),
    }
}

/// Reads `{"owner", "allowed_scopes", "return_url"?}`, a portal link's request.
pub fn link_request_from_json(body: &Map<String, Value>) -> Result<LinkRequest, Error> {
    only(body, &["owner", "allowed_scopes", "return_url"])?;
    let owner = parse_owner(string(required(body, "owner")?, "owner")?)?;
    let allowed_scopes = parse_scopes(required(body, "allowed_scopes")?)?;
    let return_url = present(body, "return_url")
        .map(|v| string(v, "return_url").map(str::to_owned))
        .transpose()?;
    Ok(LinkRequest {
        owner,
        allowed_scopes,
        return_url,
    })
}

/// Reads `{"code"}`, a portal link's code to exchange.
pub fn code_from_json(body: &Map<String, Value>) -> Result<&str, Error> {
    only(body, &["code"])?;
    string(required(body, "code")?, "code")
}

/// A new key and its secret, shown this once.
#[derive(Debug)]
pub struct Made {
    /// The key as stored.
    pub record: KeyRecord,
    /// The key itself.
    pub api_key: ApiKey,
}

/// Makes a key. An owner-bound caller makes keys of its owner only (the
/// default), and no caller grants an admin scope its token lacks.
pub async fn create(app: &App, caller: &Caller, request: CreateRequest) -> Result<Made, Error> {
    caller.may_grant(&request.scopes)?;
    if let Some(grant) = &caller.portal {
        within_portal(app, grant, &request, caller.owner.as_ref()).await?;
    }
    let owner = match (&caller.owner, request.owner) {
        (Some(mine), Some(asked)) if *mine != asked => return Err(Error::OwnerMismatch),
        (mine, asked) => asked.or_else(|| mine.clone()),
    };
    let stamp = app.stamp(caller.origin.clone())?;
    let now = stamp.now_ms / 1000;
    let expires_at = match request.expiry {
        None => None,
        Some(Expiry::At(at)) => Some(at),
        Some(Expiry::In(secs)) => Some(
            now.checked_add(secs)
                .filter(|at| *at <= MAX_TIME)
                .ok_or_else(|| invalid("expires_in is too large"))?,
        ),
    };
    let new = NewKey {
        name: request.name,
        scopes: request.scopes,
        owner,
        meta: request.meta,
        expires_at,
    };
    // A taken id (one chance in 2^64) is drawn again, a few times at most.
    for _ in 0..3 {
        match admin::create(app.store.as_ref(), new.clone(), &stamp).await {
            Ok((api_key, record)) => return Ok(Made { record, api_key }),
            Err(CreateError::Collision) => continue,
            Err(CreateError::EmptyName) => return Err(invalid("name must not be blank")),
            Err(CreateError::Expired) => return Err(invalid("expires_at must be in the future")),
            Err(CreateError::Random(e)) => return Err(Error::internal(e)),
            Err(CreateError::Store(e)) => return Err(e.into()),
        }
    }
    Err(Error::internal("key ids collided three times"))
}

/// Refuses a portal key that names an owner or metadata, holds a scope
/// outside the link's allowed ones, or would be one live key too many.
async fn within_portal(
    app: &App,
    grant: &Grant,
    request: &CreateRequest,
    owner: Option<&Owner>,
) -> Result<(), Error> {
    if request.owner.is_some() || request.meta.is_some() {
        return Err(Error::InsufficientScope(KEYS_WRITE.into()));
    }
    if let Some(outside) = request
        .scopes
        .iter()
        .find(|s| !grant.allowed_scopes.iter().any(|a| a == *s))
    {
        return Err(Error::InvalidScope(format!(
            "{outside} is not among the scopes this portal allows"
        )));
    }
    let owner = owner.ok_or_else(|| Error::internal("a portal caller without its owner"))?;
    let now = app.clock.now()?;
    let (mut live, mut after) = (0u64, None);
    // A cap of a few dozen keys: paging through the owner's keys is cheap.
    // Two creates at once may both pass it; the cap is a courtesy limit,
    // not a security boundary.
    loop {
        let page = app
            .store
            .keys_page(Some(owner), after.as_ref(), MAX_LIMIT)
            .await?;
        live += page.iter().filter(|k| k.is_usable(now)).count() as u64;
        if live >= app.admin.portal_max_keys {
            return Err(Error::TooManyKeys);
        }
        match page.last() {
            Some(last) if page.len() == MAX_LIMIT => after = Some(KeyPosition::of(last)),
            _ => return Ok(()),
        }
    }
}

/// Lists the keys the caller sees, newest first, filtered.
pub async fn list_keys(
    app: &App,
    caller: &Caller,
    filter: KeyFilter,
    paging: Paging,
) -> Result<Page<KeyRecord>, Error> {
    let owner = match (&caller.owner, filter.owner) {
        (Some(mine), Some(asked)) if *mine != asked => {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        (mine, asked) => asked.or_else(|| mine.clone()),
    };
    let listing = format!(
        "keys|{}|{}",
        owner.as_ref().map_or("", Owner::as_str),
        filter.status.map_or("", Status::as_str)
    );
    let keys = app.keys.keys().await?;
    let mut after = paging
        .cursor
        .as_deref()
        .map(|c| open(&keys, &listing, c))
        .transpose()?;
    let now = app.clock.now()?;
    let store = app.store.as_ref();
    let wanted = paging.limit.saturating_add(1);
    let mut found = Vec::new();
    // Filtering by status may leave a page of the store short: read on
    // until one more than a page is found (so the next cursor is known) or
    // the keys run out.
    loop {
        let chunk = keys_page(store, owner.as_ref(), after.as_ref(), wanted).await?;
        let exhausted = chunk.len() < wanted;
        after = chunk.last().map(key_position).or(after);
        found.extend(
            chunk
                .into_iter()
                .filter(|k| filter.status.is_none_or(|s| Status::of(k, now) == s)),
        );
        if exhausted || found.len() >= wanted {
            break;
        }
    }
    page(&keys, &listing, found, paging.limit, key_position)
}

/// Keys newest first (by creation, then id), of `owner` when given, after
/// `after`, at most `limit`: the store's index listing, never a scan.
async fn keys_page(
    store: &dyn Store,
    owner: Option<&Owner>,
    after: Option<&Position>,
    limit: usize,
) -> Result<Vec<KeyRecord>, StoreError> {
    // A position whose id is no key id was never handed out: nothing is after it.
    let after = match after {
        None => None,
        Some(p) => match KeyId::parse(&p.id) {
            Some(id) => Some(KeyPosition {
                created_at: p.at,
                id,
            }),
            None => return Ok(Vec::new()),
        },
    };
    store.keys_page(owner, after.as_ref(), limit).await
}

/// The key `id`, if the caller sees it.
pub async fn show(app: &App, caller: &Caller, id: &str) -> Result<KeyRecord, Error> {
    let id = KeyId::parse(id).ok_or(Error::NotFound)?;
    app.store
        .key(&id)
        .await?
        .filter(|r| caller.sees(r))
        .ok_or(Error::NotFound)
}

/// Refuses a change of a key that holds an admin scope the caller lacks.
fn may_change(caller: &Caller, record: &KeyRecord) -> Result<(), Error> {
    caller.may_grant(&record.scopes)
}

/// Applies `patch` to the key `id`. A revoked key is [`Error::KeyRevoked`];
/// adding an admin scope the caller lacks, or changing a key holding one,
/// is refused.
pub async fn patch(
    app: &App,
    caller: &Caller,
    id: &str,
    patch: KeyPatch,
) -> Result<KeyRecord, Error> {
    let record = show(app, caller, id).await?;
    let stamp = app.stamp(caller.origin.clone())?;
    let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
        if r.status == KeyStatus::Revoked {
            return Err(Error::KeyRevoked);
        }
        may_change(caller, r)?;
        if let Some(scopes) = &patch.scopes {
            caller.may_grant(scopes)?;
        }
        patch.apply(r);
        Ok(())
    })
    .await?;
    Ok(updated.after)
}

/// A rotated key and its new secret.
#[derive(Debug)]
pub struct Rotated {
    /// The key as stored.
    pub record: KeyRecord,
    /// The key with its new secret, shown this once.
    pub api_key: ApiKey,
}

/// Gives the key `id` a new secret; the old one works `grace` seconds more.
pub async fn rotate(app: &App, caller: &Caller, id: &str, grace: u64) -> Result<Rotated, Error> {
    let record = show(app, caller, id).await?;
    let api_key = ApiKey::regenerate(&record.id).map_err(|e| Error::internal(e.to_string()))?;
    let stamp = app.stamp(caller.origin.clone())?;
    let now = stamp.now_ms / 1000;
    let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
        may_change(caller, r)?;
        admin::rotate(r, &api_key, now, grace).map_err(|e| match e {
            RotateError::Revoked => Error::KeyRevoked,
            RotateError::Store(e) => e.into(),
        })
    })
    .await?;
    Ok(Rotated {
        record: updated.after,
        api_key,
    })
}

/// Revokes the key `id` for good; revoking it again changes nothing.
pub async fn revoke(app: &App, caller: &Caller, id: &str) -> Result<KeyRecord, Error> {
    let record = show(app, caller, id).await?;
    let stamp = app.stamp(caller.origin.clone())?;
    let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
        may_change(caller, r)?;
        admin::revoke(r);
        Ok::<_, Error>(())
    })
    .await?;
    Ok(updated.after)
}

/// A live session, as the session list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Its id.
    pub session_id: String,
    /// The scope of its current token.
    pub scope: String,
    /// When its current token was issued, Unix seconds.
    pub issued_at: u64,
    /// When its current token expires, Unix seconds.
    pub expires_at: u64,
}

/// The live sessions of the key `id` (unexpired, not revoked), newest issue first.
pub async fn sessions(
    app: &App,
    caller: &Caller,
    id: &str,
    paging: Paging,
) -> Result<Page<SessionView>, Error> {
    let record = show(app, caller, id).await?;
    let listing = format!("sessions|{}", record.id);
    let keys = app.keys.keys().await?;
    let after = paging
        .cursor
        .as_deref()
        .map(|c| open(&keys, &listing, c))
        .transpose()?;
    let now = app.clock.now()?;
    let mut live: Vec<SessionRecord> = if record.is_usable(now) {
        app.store.list_sessions(&record.id).await?
    } else {
        Vec::new()
    };
    live.retain(|s| {
        s.current.claims.exp > now
            && !record.revoked_session_minted_at(s.current.minted_ms)
            && after
                .as_ref()
                .is_none_or(|p| session_position(s).cmp_newest_first(p) == Ordering::Greater)
    });
    live.sort_by(|a, b| session_position(a).cmp_newest_first(&session_position(b)));
    live.truncate(paging.limit.saturating_add(1));
    let page = page(&keys, &listing, live, paging.limit, session_position)?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|s| SessionView {
                session_id: s.current.claims.sid,
                scope: s.current.claims.scope,
                issued_at: s.current.claims.iat,
                expires_at: s.current.claims.exp,
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Ends the session `session` of the key `id`; whether a live one ended.
pub async fn revoke_session(
    app: &App,
    caller: &Caller,
    id: &str,
    session: &str,
) -> Result<bool, Error> {
    let record = show(app, caller, id).await?;
    let session = SessionId::parse(session).map_err(|e| invalid(&e.to_string()))?;
    let now = app.clock.now()?;
    let (_, stored) = app.store.key_and_session(&record.id, &session).await?;
    let live = record.is_usable(now)
        && stored.is_some_and(|s| {
            s.current.claims.exp > now && !record.revoked_session_minted_at(s.current.minted_ms)
        });
    let event = AuditEvent::of_session_revoke(
        &record.id,
        record.owner.as_ref(),
        session.as_str(),
        &app.stamp(caller.origin.clone())?,
    );
    let deleted = app
        .store
        .delete_session(&record.id, &session, None, &event)
        .await?;
    Ok(live && deleted)
}

/// Ends every session of the key `id` (one write); how many live ones ended.
pub async fn revoke_sessions(app: &App, caller: &Caller, id: &str) -> Result<u64, Error> {
    let record = show(app, caller, id).await?;
    let stamp = app.stamp(caller.origin.clone())?;
    let updated = admin::update_from(app.store.as_ref(), record, &stamp, |r| {
        admin::revoke_sessions(r, stamp.now_ms);
        Ok::<_, Error>(())
    })
    .await?;
    Ok(admin::sessions_ended(app.store.as_ref(), &updated, stamp.now_ms / 1000).await?)
}

/// Events newest first: of the key `id` when given, else of `owner` (an
/// owner-bound caller's own when it names none), else of every key.
pub async fn events(
    app: &App,
    caller: &Caller,
    id: Option<&str>,
    owner: Option<&str>,
    paging: Paging,
) -> Result<Page<AuditEvent>, Error> {
    let owner = owner.map(parse_owner).transpose()?;
    let keys = app.keys.keys().await?;
    let (listing, record) = match id {
        Some(id) => {
            let record = show(app, caller, id).await?;
            if owner
                .as_ref()
                .is_some_and(|o| record.owner.as_ref() != Some(o))
            {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            (format!("events|key|{}", record.id), Some(record))
        }
        None => (String::new(), None),
    };
    let owner = match (&caller.owner, owner) {
        (Some(mine), Some(asked)) if *mine != asked => {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        (mine, asked) => asked.or_else(|| mine.clone()),
    };
    let listing = match &record {
        Some(_) => listing,
        None => format!("events|owner|{}", owner.as_ref().map_or("", Owner::as_str)),
    };
    let before = paging
        .cursor
        .as_deref()
        .map(|c| open(&keys, &listing, c))
        .transpose()?;
    let before = before.as_ref().map(|p| p.id.as_str());
    let wanted = paging.limit.saturating_add(1);
    let found = match &record {
        Some(record) => app.store.key_events(&record.id, before, wanted).await?,
        None => {
            app.store
                .events_page(owner.as_ref(), before, wanted)
                .await?
        }
    };
    page(&keys, &listing, found, paging.limit, |e| Position {
        at: 0,
        id: e.id.clone(),
    })
}

/// Where a list's order puts an item: a time, then an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    at: u64,
    id: String,
}

impl Position {
    /// Newest first: the later position is the lesser.
    fn cmp_newest_first(&self, other: &Self) -> Ordering {
        (other.at, &other.id).cmp(&(self.at, &self.id))
    }
}

fn key_position(k: &KeyRecord) -> Position {
    Position {
        at: k.created_at,
        id: k.id.to_string(),
    }
}

fn session_position(s: &SessionRecord) -> Position {
    Position {
        at: s.current.minted_ms,
        id: s.session_id().to_owned(),
    }
}

/// The first `limit` of `found` (read one past a page) and, when there
/// was more, the cursor after the last of them.
fn page<T>(
    keys: &KeySet,
    listing: &str,
    mut found: Vec<T>,
    limit: usize,
    position: impl Fn(&T) -> Position,
) -> Result<Page<T>, Error> {
    let more = found.len() > limit;
    found.truncate(limit);
    let next_cursor = match found.last() {
        Some(last) if more => Some(seal(&keys.current, listing, &position(last))?),
        _ => None,
    };
    Ok(Page {
        items: found,
        next_cursor,
    })
}

/// What a cursor holds: the listing it pages (kind and filters) and the
/// position of the last item shown.
#[derive(Serialize, Deserialize)]
struct CursorBody {
    listing: String,
    at: u64,
    id: String,
}

/// The label the cursor key is derived with from the signing key.
const CURSOR_LABEL: &[u8] = b"bauth admin list cursor v1";
/// The longest cursor read; ours are far shorter.
const MAX_CURSOR_CHARS: usize = 1024;

/// Seals a position of `listing` into a cursor:
/// `base64url(JSON).base64url(HMAC-SHA256)` under a key derived from the
/// signing key, so a client can neither forge nor edit one, and no cursor
/// is ever a token signature.
fn seal(key: &SigningKey, listing: &str, position: &Position) -> Result<String, Error> {
    let body = serde_json::to_vec(&CursorBody {
        listing: listing.to_owned(),
        at: position.at,
        id: position.id.clone(),
    })
    .map_err(Error::internal)?;
    let tag = cursor_mac(key, &body)?.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// The position a cursor of `listing` holds, sealed by the current or the
/// previous signing key. Anything else is [`Error::InvalidRequest`].
fn open(keys: &KeySet, listing: &str, cursor: &str) -> Result<Position, Error> {
    let bad = || invalid("the cursor is not valid for this list");
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let (body, tag) = cursor.split_once('.').ok_or_else(bad)?;
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad())?;
    let mut authentic = false;
    for key in std::iter::once(&keys.current).chain(keys.previous.as_ref()) {
        authentic |= cursor_mac(key, &body)?.verify_slice(&tag).is_ok();
    }
    if !authentic {
        return Err(bad());
    }
    let body: CursorBody = serde_json::from_slice(&body).map_err(|_| bad())?;
    if body.listing != listing {
        return Err(bad());
    }
    Ok(Position {
        at: body.at,
        id: body.id,
    })
}

fn cursor_mac(key: &SigningKey, body: &[u8]) -> Result<Hmac<Sha256>, Error> {
    let mac = Hmac::<Sha256>::new_from_slice(&key.derive(CURSOR_LABEL))
        .map_err(|_| Error::internal("unusable cursor key"))?;
    Ok(mac.chain_update(body))
}

/// Unix seconds as RFC 3339 UTC (`2030-01-01T00:00:00Z`); `None` past [`MAX_TIME`].
pub fn format_time(secs: u64) -> Option<String> {
    use std::fmt::Write;
    if secs > MAX_TIME {
        return None;
    }
    let time = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    let mut text = String::new();
    write!(text, "{}", humantime::format_rfc3339_seconds(time)).ok()?;
    Some(text)
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds; `None` past [`MAX_TIME`].
pub fn format_time_ms(ms: u64) -> Option<String> {
    use std::fmt::Write;
    let time = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    let mut text = String::new();
    write!(text, "{}", humantime::format_rfc3339_millis(time)).ok()?;
    Some(text)
}

/// RFC 3339 UTC text (`Z` or `+00:00`) as Unix seconds, a fraction dropped.
pub fn parse_time(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs <= MAX_TIME).then_some(secs)
}

fn invalid(message: &str) -> Error {
    Error::InvalidRequest(message.to_owned())
}

/// Refuses a body naming a member other than `allowed`, without echoing it.
fn only(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Error> {
    if body.keys().all(|k| allowed.contains(&k.as_str())) {
        Ok(())
    } else {
        Err(invalid(&format!(
            "the body may only name {}",
            allowed.join(", ")
        )))
    }
}

/// A member given and not `null`.
fn present<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn required<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Error> {
    present(body, name).ok_or_else(|| invalid(&format!("{name} is required")))
}

fn string<'a>(value: &'a Value, name: &str) -> Result<&'a str, Error> {
    value
        .as_str()
        .ok_or_else(|| invalid(&format!("{name} must be a string")))
}

fn parse_name(value: &Value) -> Result<String, Error> {
    let name = string(value, "name")?;
    if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid("name must be 1 to 256 bytes, not blank"));
    }
    Ok(name.to_owned())
}

fn parse_scopes(value: &Value) -> Result<Scopes, Error> {
    Scopes::parse(string(value, "scopes")?).map_err(|e| invalid(&format!("scopes: {e}")))
}

fn parse_owner(text: &str) -> Result<Owner, Error> {
    Owner::parse(text).map_err(|e| invalid(&e.to_string()))
}

fn parse_meta(value: Value) -> Result<Meta, Error> {
    Meta::new(value).map_err(|e| invalid(&e.to_string()))
}

fn parse_expiry(value: &Value) -> Result<u64, Error> {
    string(value, "expires_at")
        .ok()
        .and_then(parse_time)
        .ok_or_else(|| {
            invalid("expires_at must be an RFC 3339 UTC time such as 2030-01-01T00:00:00Z")
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use secrecy::SecretString;
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn record() -> KeyRecord {
        let key = ApiKey::generate().unwrap();
        let mut r = KeyRecord::new(&key, "a", Scopes::parse("read").unwrap(), 100, Some(500));
        r.meta = Some(Meta::new(json!({"plan": "free"})).unwrap());
        r
    }

    fn signing(secret: &str) -> Arc<SigningKey> {
        Arc::new(SigningKey::new("v1", &SecretString::from(secret.repeat(32))).unwrap())
    }

    fn key_set(current: &Arc<SigningKey>, previous: Option<&Arc<SigningKey>>) -> KeySet {
        KeySet {
            current: current.clone(),
            previous: previous.cloned(),
        }
    }

    fn at(n: u64) -> Position {
        Position {
            at: n,
            id: format!("{n:016x}"),
        }
    }

    #[test]
    fn a_patch_replaces_the_members_given_and_leaves_the_rest() {
        let mut r = record();
        let patch =
            KeyPatch::from_json(&map(json!({"name": "b", "meta": {"plan": "pro"}})), 100).unwrap();
        patch.apply(&mut r);
        assert_eq!(r.name, "b");
        assert_eq!(r.scopes.to_string(), "read");
        assert_eq!(r.expires_at, Some(500));
        assert_eq!(
            r.meta.unwrap().to_json(),
            r#"{"plan":"pro"}"#,
            "replaced whole"
        );
    }

    #[test]
    fn a_null_clears_meta_and_expires_at_and_an_empty_patch_changes_nothing() {
        let mut r = record();
        let before = r.clone();
        KeyPatch::from_json(&Map::new(), 100).unwrap().apply(&mut r);
        assert_eq!(r, before);
        KeyPatch::from_json(&map(json!({"meta": null, "expires_at": null})), 100)
            .unwrap()
            .apply(&mut r);
        assert_eq!((r.meta, r.expires_at), (None, None));
    }

    #[test]
    fn a_patch_sets_an_rfc_3339_expiry_and_refuses_one_in_the_past() {
        let mut r = record();
        let patch = KeyPatch::from_json(&map(json!({"expires_at": "2030-01-01T00:00:00Z"})), 100);
        patch.unwrap().apply(&mut r);
        assert_eq!(r.expires_at, Some(1_893_456_000));
        let past = KeyPatch::from_json(
            &map(json!({"expires_at": "2030-01-01T00:00:00Z"})),
            1_893_456_000,
        );
        assert_eq!(
            past.unwrap_err().to_string(),
            "invalid request: expires_at must be in the future"
        );
    }

    #[test]
    fn a_patch_refuses_null_names_and_scopes_unknown_members_and_bad_values() {
        for (body, want) in [
            (json!({"name": null}), "name cannot be null"),
            (json!({"scopes": null}), "scopes cannot be null"),
            (json!({"owner": "acme"}), "the body may only name"),
            (json!({"secret_hash": "x"}), "the body may only name"),
            (json!({"name": " "}), "not blank"),
            (json!({"name": 7}), "name must be a string"),
            (json!({"scopes": "a  b"}), "scopes:"),
            (json!({"meta": [1]}), "meta must be a JSON object"),
            (json!({"meta": {"a": "x".repeat(4096)}}), "at most 4 KiB"),
            (json!({"expires_at": 1_900_000_000}), "RFC 3339"),
            (json!({"expires_at": "tomorrow"}), "RFC 3339"),
        ] {
            let e = KeyPatch::from_json(&map(body.clone()), 100).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidRequest(m) if m.contains(want)),
                "{body}: {e}"
            );
        }
    }

    #[test]
    fn a_create_request_takes_one_of_expires_at_and_expires_in() {
        let both = json!({"name": "a", "scopes": "read", "expires_at": "2030-01-01T00:00:00Z", "expires_in": 60});
        assert!(CreateRequest::from_json(&map(both)).is_err());
        for bad in [
            json!({"scopes": "read"}),
            json!({"name": "a"}),
            json!({"name": "a", "scopes": "read", "expires_in": 0}),
            json!({"name": "a", "scopes": "read", "owner": "a b"}),
        ] {
            assert!(
                CreateRequest::from_json(&map(bad.clone())).is_err(),
                "{bad}"
            );
        }
        let ok = CreateRequest::from_json(&map(
            json!({"name": "a", "scopes": "read", "owner": "acme", "expires_in": 60}),
        ))
        .unwrap();
        assert_eq!(ok.owner.map(|o| o.to_string()).as_deref(), Some("acme"));
    }

    #[test]
    fn grace_defaults_to_a_day_and_is_bounded() {
        assert_eq!(grace_from_json(&Map::new()).unwrap(), DEFAULT_GRACE_SECONDS);
        assert_eq!(
            grace_from_json(&map(json!({"grace_seconds": 0}))).unwrap(),
            0
        );
        for bad in [
            json!({"grace_seconds": -1}),
            json!({"grace_seconds": 2_592_001}),
            json!({"grace_seconds": "60"}),
            json!({"grace": 1}),
        ] {
            assert!(grace_from_json(&map(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sealed_cursor_opens_to_its_position_under_the_current_or_previous_key() {
        let (old, new) = (signing("a"), signing("b"));
        let cursor = seal(&old, "keys||", &at(7)).unwrap();
        assert_eq!(
            open(&key_set(&old, None), "keys||", &cursor).unwrap(),
            at(7)
        );
        assert_eq!(
            open(&key_set(&new, Some(&old)), "keys||", &cursor).unwrap(),
            at(7),
            "after a rotation"
        );
        assert!(
            open(&key_set(&new, None), "keys||", &cursor).is_err(),
            "once the old key is gone"
        );
    }

    #[test]
    fn a_cursor_of_another_listing_or_edited_anywhere_is_refused() {
        let key = signing("a");
        let keys = key_set(&key, None);
        let cursor = seal(&key, "keys|acme|", &at(7)).unwrap();
        assert!(open(&keys, "keys|other|", &cursor).is_err());
        let (body, tag) = cursor.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"listing": "keys|acme|", "at": 8, "id": at(7).id})).unwrap(),
        );
        for bad in [
            format!("{forged_body}.{tag}"),
            format!("{body}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            body.to_owned(),
            format!("{body}.{tag}.x"),
            String::new(),
            "é.é".into(),
            "x".repeat(2000),
        ] {
            let e = open(&keys, "keys|acme|", &bad).unwrap_err();
            assert!(matches!(e, Error::InvalidRequest(_)), "{bad:?}");
        }
    }

    #[test]
    fn newest_first_orders_by_time_then_id_descending() {
        let mut positions = [
            at(1),
            at(3),
            at(2),
            Position {
                at: 3,
                id: "0".into(),
            },
        ];
        positions.sort_by(Position::cmp_newest_first);
        let order: Vec<(u64, &str)> = positions.iter().map(|p| (p.at, p.id.as_str())).collect();
        assert_eq!(
            order,
            [
                (3, at(3).id.as_str()),
                (3, "0"),
                (2, at(2).id.as_str()),
                (1, at(1).id.as_str())
            ]
        );
    }

    #[test]
    fn times_are_rfc_3339_utc_both_ways_within_the_years_it_can_write() {
        assert_eq!(
            format_time(1_893_456_000).as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
        assert_eq!(parse_time("2030-01-01T00:00:00.9Z"), Some(1_893_456_000));
        assert_eq!(parse_time("2030-01-01T00:00:00+00:00"), Some(1_893_456_000));
        assert_eq!(parse_time("2030-01-01T00:00:00+02:00"), None);
        assert_eq!(
            format_time(MAX_TIME).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(format_time(MAX_TIME + 1), None);
        assert_eq!(format_time(u64::MAX), None);
        assert_eq!(
            format_time_ms(1_893_456_000_123).as_deref(),
            Some("2030-01-01T00:00:00.123Z")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_text_is_no_time_or_one_that_formats_back_to_the_same_second(
            s in prop_oneof![any::<String>(), "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?(Z|\\+00:00|é)"],
        ) {
            if let Some(secs) = parse_time(&s) {
                let text = format_time(secs).unwrap();
                prop_assert_eq!(parse_time(&text), Some(secs));
            }
        }

        #[test]
        fn any_second_up_to_the_last_formats_and_parses_back(secs in 0..=MAX_TIME) {
            prop_assert_eq!(parse_time(&format_time(secs).unwrap()), Some(secs));
        }

        #[test]
        fn any_text_as_a_cursor_is_refused_without_a_panic(s in any::<String>()) {
            let key = signing("a");
            prop_assert!(open(&key_set(&key, None), "keys||", &s).is_err());
        }
    }
}
