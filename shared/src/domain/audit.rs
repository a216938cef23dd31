//! The audit trail: who changed a key, when and what, written by the store in
//! the same transaction as the change itself (no change without its event,
//! no event without its change) and never updated. A signing-key rotation
//! happens outside the store: its event is written after it, by a write that
//! fails the rotation's last step until it lands and that its retries repeat
//! without a second event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::domain::api_key::{KeyId, KeyRecord};
use crate::domain::owner::Owner;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `key` (a caller's API key), `cli` (`authctl`), `portal` or `system`.
    pub kind: ActorKind,
    /// The key id, `user@host` for the CLI, the function's name for the system.
    pub id: String,
    /// The acting key's owner, when it has one.
    #[serde(default)]
    pub owner: Option<Owner>,
}

/// What kind of caller an [`Actor`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// An API key: a root key on the management API, or a key revoking itself.
    Key,
    /// `authctl`, run by someone holding the store's credentials.
    Cli,
    /// A customer portal session.
    Portal,
    /// The service itself, on a schedule: the signing-key rotation function.
    System,
}

impl Actor {
    /// A key acting on its own behalf or as a root key.
    pub fn key(id: &KeyId, owner: Option<Owner>) -> Self {
        Self {
            kind: ActorKind::Key,
            id: id.to_string(),
            owner,
        }
    }

    /// A customer portal session (`id`, the link's) of `owner`.
    pub fn portal(id: &str, owner: Owner) -> Self {
        Self {
            kind: ActorKind::Portal,
            id: id.to_owned(),
            owner: Some(owner),
        }
    }

    /// The service acting on its own, as the function `name` that acts.
    pub fn system(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::System,
            id: name.into(),
            owner: None,
        }
    }

    /// `authctl`, as `user@host`.
    pub fn cli(user_at_host: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Cli,
            id: user_at_host.into(),
            owner: None,
        }
    }
}

/// Where a change came from: the actor and, over HTTP, the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Who.
    pub actor: Actor,
    /// The request id of the call that made it.
    pub request_id: Option<String>,
    /// The caller's address, as the platform saw it.
    pub source_ip: Option<String>,
}

impl Origin {
    /// A change by `actor` outside any request.
    pub fn of(actor: Actor) -> Self {
        Self {
            actor,
            request_id: None,
            source_ip: None,
        }
    }
}

/// What every change writes into its event besides the change itself: who
/// made it, when, and how long the trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Who, and from which request.
    pub origin: Origin,
    /// When, in Unix milliseconds.
    pub now_ms: u64,
    /// Days the event is kept (`AUDIT_RETENTION_DAYS`).
    pub retention_days: u64,
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A key was made.
    #[serde(rename = "key.created")]
    KeyCreated,
    /// A key's name, scopes, owner, metadata or expiry changed.
    #[serde(rename = "key.updated")]
    KeyUpdated,
    /// A key got a new secret.
    #[serde(rename = "key.rotated")]
    KeyRotated,
    /// A key was revoked.
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    /// One session was revoked.
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// Every session of a key was revoked (its revoke-all cutoff moved).
    #[serde(rename = "sessions.revoked")]
    SessionsRevoked,
    /// A customer portal link was made.
    #[serde(rename = "portal.session_created")]
    PortalSessionCreated,
    /// The token signing key was rotated.
    #[serde(rename = "signing_key.rotated")]
    SigningKeyRotated,
}

/// One entry of the audit trail. Never a secret or a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique, and in time order within one key.
    pub id: String,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub action: Action,
    /// Who did it.
    pub actor: Actor,
    /// The key concerned; none for a portal link or a signing-key rotation.
    #[serde(default)]
    pub key_id: Option<KeyId>,
    /// That key's owner, when it has one.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// The session concerned, for a session revoke.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The request that made the change.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The caller's address.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// Changed fields with their old and new values (`{"field": {"old", "new"}}`).
    pub changes: Map<String, Value>,
    /// When the store may drop it (Unix seconds).
    pub ttl: u64,
}

impl AuditEvent {
    /// The event of a change of `before` into `after` (or of a new key when
    /// `before` is `None`); `None` when nothing an event records changed.
    pub fn of_change(before: Option<&KeyRecord>, after: &KeyRecord, stamp: &Stamp) -> Option<Self> {
        let changes = changes(before, after);
        let action = match before {
            None => Action::KeyCreated,
            Some(b) if b.status != after.status => Action::KeyRevoked,
            Some(b) if b.secret_hash != after.secret_hash => Action::KeyRotated,
            Some(b) if b.sessions_revoked_before != after.sessions_revoked_before => {
                Action::SessionsRevoked
            }
            Some(_) if changes.is_empty() => return None,
            Some(_) => Action::KeyUpdated,
        };
        let written = (
            Some(&after.id),
            after.owner.as_ref(),
            after.version.saturating_add(1),
        );
        Some(Self::new(action, written, None, changes, stamp))
    }

    /// The event of the revoke of `session` of the key `key_id` (of `owner`).
    pub fn of_session_revoke(
        key_id: &KeyId,
        owner: Option<&Owner>,
        session: &str,
        stamp: &Stamp,
    ) -> Self {
        // A session revoke writes no key version: 0 sorts it before the key
        // changes of its millisecond.
        Self::new(
            Action::SessionRevoked,
            (Some(key_id), owner, 0),
            Some(session.to_owned()),
            Map::new(),
            stamp,
        )
    }

    /// The event of a change of no key: a portal link for `owner`, a
    /// signing-key rotation.
    pub fn of_unkeyed(
        action: Action,
        owner: Option<&Owner>,
        changes: Map<String, Value>,
        stamp: &Stamp,
    ) -> Self {
        Self::new(action, (None, owner, 0), None, changes, stamp)
    }

    /// The event of a rotation of the signing key from `old` (none when no
    /// key was current) to `new`: the key ids, never a key. Its id is not
    /// random but the stamp's time and a digest of `new`, so a retried
    /// rotation step builds the very same event and the store keeps it once
    /// ([`crate::domain::store::Store::record_event`]).
    pub fn of_signing_key_rotation(old: Option<&str>, new: &str, stamp: &Stamp) -> Self {
        let changes = Map::from_iter([("kid".to_owned(), json!({"old": old, "new": new}))]);
        let mut event = Self::of_unkeyed(Action::SigningKeyRotated, None, changes, stamp);
        let digest = Sha256::digest(format!("signing_key.rotated:{new}"));
        // 128 bits, as many as the random ids carry: two kids never collide.
        let digest = hex::encode(digest.get(..16).unwrap_or_default());
        event.id = event_id(stamp.now_ms, 0, &digest);
        event
    }

    fn new(
        action: Action,
        (key_id, owner, version): (Option<&KeyId>, Option<&Owner>, u64),
        session_id: Option<String>,
        changes: Map<String, Value>,
        stamp: &Stamp,
    ) -> Self {
        let (origin, now_ms) = (&stamp.origin, stamp.now_ms);
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            id: event_id(now_ms, version, &random),
            time_ms: now_ms,
            action,
            actor: origin.actor.clone(),
            key_id: key_id.cloned(),
            owner: owner.cloned(),
            session_id,
            request_id: origin.request_id.clone(),
            source_ip: origin.source_ip.clone(),
            changes,
            ttl: (now_ms / 1000).saturating_add(stamp.retention_days.saturating_mul(86_400)),
        }
    }
}

/// An event id. Time first, so ids sort as events happened; then the key
/// version the change writes, so one key's events of one millisecond keep
/// their order; the `unique` rest (32 hex digits) keeps other events apart.
fn event_id(now_ms: u64, version: u64, unique: &str) -> String {
    format!("{now_ms:015}-{version:010}-{unique}")
}

/// The fields an event names, old and new; secrets and hashes never.
fn changes(before: Option<&KeyRecord>, after: &KeyRecord) -> Map<String, Value> {
    let fields = |r: &KeyRecord| {
        [
            ("name", json!(r.name)),
            ("scopes", json!(r.scopes.to_string())),
            ("owner", json!(r.owner)),
            ("expires_at", json!(r.expires_at)),
            ("status", json!(r.status.as_str())),
            ("meta", json!(r.meta)),
            (
                "previous_secret_valid_until",
                json!(r.previous_secret.as_ref().map(|(_, until)| until)),
            ),
            // A new key has no cut-off to report.
            ("sessions_revoked_before", json!(r.sessions_cut_off())),
        ]
    };
    let new = fields(after);
    let mut changes = Map::new();
    match before {
        None => {
            for (name, value) in new {
                if !value.is_null() {
                    changes.insert(name.into(), json!({"old": null, "new": value}));
                }
            }
        }
        Some(before) => {
            for ((name, old), (_, value)) in fields(before).into_iter().zip(new) {
                if old != value {
                    changes.insert(name.into(), json!({"old": old, "new": value}));
                }
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{ApiKey, KeyStatus};
    use crate::domain::scope::Scopes;

    fn record() -> KeyRecord {
        let key = ApiKey::generate().unwrap();
        KeyRecord::new(&key, "a", Scopes::parse("read").unwrap(), 10, None)
    }

    fn stamp(now_ms: u64, retention_days: u64) -> Stamp {
        Stamp {
            origin: Origin::of(Actor::cli("ops@host")),
            now_ms,
            retention_days,
        }
    }

    #[test]
    fn a_new_key_records_its_initial_fields_and_never_its_secret() {
        let r = record();
        let e = AuditEvent::of_change(None, &r, &stamp(5_000, 400)).unwrap();
        assert_eq!(e.action, Action::KeyCreated);
        assert_eq!(e.changes["name"], json!({"old": null, "new": "a"}));
        assert_eq!(e.changes["scopes"], json!({"old": null, "new": "read"}));
        for absent in ["owner", "sessions_revoked_before"] {
            assert!(
                !e.changes.contains_key(absent),
                "absent values are left out: {absent} in {:?}",
                e.changes
            );
        }
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains(&r.secret_hash.0), "no hash in {text}");
        assert_eq!(e.ttl, 5 + 400 * 86_400);
    }

    #[test]
    fn each_change_names_its_action_and_a_change_of_nothing_is_no_event() {
        let before = record();
        let mut revoked = before.clone();
        revoked.status = KeyStatus::Revoked;
        let e = AuditEvent::of_change(Some(&before), &revoked, &stamp(1, 1)).unwrap();
        assert_eq!(e.action, Action::KeyRevoked);
        assert_eq!(
            e.changes["status"],
            json!({"old": "active", "new": "revoked"})
        );
        let mut renamed = before.clone();
        renamed.name = "b".into();
        let e = AuditEvent::of_change(Some(&before), &renamed, &stamp(1, 1)).unwrap();
        assert_eq!((e.action, e.changes.len()), (Action::KeyUpdated, 1));
        let mut cut = before.clone();
        cut.sessions_revoked_before = 7;
        let e = AuditEvent::of_change(Some(&before), &cut, &stamp(1, 1)).unwrap();
        assert_eq!(e.action, Action::SessionsRevoked);
        assert_eq!(
            e.changes["sessions_revoked_before"],
            json!({"old": null, "new": 7})
        );
        let mut used = before.clone();
        used.last_used_at = Some(99);
        assert_eq!(
            AuditEvent::of_change(Some(&before), &used, &stamp(1, 1)),
            None
        );
    }

    #[test]
    fn a_rotation_event_names_both_kids_and_its_id_is_the_same_each_time_it_is_built() {
        let at = |ms| stamp(ms, 400);
        let first = AuditEvent::of_signing_key_rotation(Some("k0"), "k1", &at(9_000));
        assert_eq!(first.action, Action::SigningKeyRotated);
        assert_eq!(
            first.changes,
            Map::from_iter([("kid".into(), json!({"old": "k0", "new": "k1"}))])
        );
        assert_eq!((first.key_id.clone(), first.owner.clone()), (None, None));
        assert_eq!(
            AuditEvent::of_signing_key_rotation(Some("k0"), "k1", &at(9_000)),
            first,
            "a retry builds the same event"
        );
        let other = AuditEvent::of_signing_key_rotation(Some("k1"), "k2", &at(9_000));
        assert_ne!(other.id, first.id, "another kid, another event");
        let later = AuditEvent::of_signing_key_rotation(Some("k1"), "k2", &at(9_001));
        assert!(later.id > other.id, "ids still sort by time");
        assert_eq!(first.id.len(), created().id.len(), "the shape of every id");
        let none = AuditEvent::of_signing_key_rotation(None, "k1", &at(9_000));
        assert_eq!(none.changes["kid"], json!({"old": null, "new": "k1"}));
    }

    fn created() -> AuditEvent {
        AuditEvent::of_change(None, &record(), &stamp(9_000, 400)).unwrap()
    }

    #[test]
    fn a_system_actor_is_serialized_as_system() {
        let actor = Actor::system("auth-rotate");
        assert_eq!(
            serde_json::to_value(&actor).unwrap(),
            json!({"kind": "system", "id": "auth-rotate", "owner": null})
        );
    }

    #[test]
    fn one_keys_events_of_one_millisecond_sort_in_the_order_they_were_written() {
        let mut r = record();
        let created = AuditEvent::of_change(None, &r, &stamp(7, 1)).unwrap();
        let mut ids = vec![created.id];
        r.version = 1; // as stored by the create

        for name in ["b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"] {
            let mut next = r.clone();
            next.name = name.into();
            ids.push(
                AuditEvent::of_change(Some(&r), &next, &stamp(7, 1))
                    .unwrap()
                    .id,
            );
            r = KeyRecord {
                version: r.version + 1,
                ..next
            };
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }
}
