//! `authctl keys ...`: API keys are created, shown once, listed, revoked and rotated.

use std::time::{Duration, UNIX_EPOCH};

use auth_shared::config::AdminPolicy;
use auth_shared::domain::admin::{self, NewKey, RotateError};
use auth_shared::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use auth_shared::domain::audit::{Actor, Origin, Stamp};
use auth_shared::domain::clock::{Clock, SystemClock};
use auth_shared::domain::owner::{Meta, Owner};
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::store::{KeyPosition, Store};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::cli::{BackendArgs, EventsArgs, KeysCommand};
use crate::error::CliError;

pub async fn run(backend: &BackendArgs, command: KeysCommand) -> Result<(), CliError> {
    let store = backend.store().await?;
    let stamp = operator()?;
    let now = stamp.now_ms / 1000;
    match command {
        KeysCommand::Create {
            name,
            scopes,
            owner,
            meta,
            expires_in,
            json,
        } => {
            let scopes = parse_scopes(&scopes)?;
            let owner = owner
                .map(|o| Owner::parse(&o))
                .transpose()
                .map_err(|e| CliError::Invalid(format!("bad --owner: {e}")))?;
            let meta = meta.map(|m| parse_meta(&m)).transpose()?;
            let new = NewKey {
                name,
                scopes,
                owner,
                meta,
                expires_at: expires_in.map(|d| now.saturating_add(d.as_secs())),
            };
            let (key, record) = admin::create(store.as_ref(), new, &stamp).await?;
            print_new_key(&key, &record, json, "Created");
        }
        KeysCommand::List { owner, json } => {
            let owner = owner
                .map(|o| Owner::parse(&o))
                .transpose()
                .map_err(|e| CliError::Invalid(format!("bad --owner: {e}")))?;
            // Newest first, a page at a time: an index Query, never a scan.
            // The first page is read before anything is printed, so a
            // backend that is down prints no header.
            let mut page = store.keys_page(owner.as_ref(), None, 100).await?;
            if !json {
                println!(
                    "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  SCOPES",
                    "ID", "STATUS", "NAME", "CREATED", "EXPIRES"
                );
            }
            while let Some(last) = page.last().map(KeyPosition::of) {
                for record in &page {
                    print_key(record, now, json);
                }
                page = store.keys_page(owner.as_ref(), Some(&last), 100).await?;
            }
        }
        KeysCommand::Show { id, json } => {
            print_key(&existing(store.as_ref(), &id).await?, now, json)
        }
        KeysCommand::Update {
            id,
            name,
            scopes,
            meta,
            clear_meta,
            expires_in,
            no_expiry,
            json,
        } => {
            let record = existing(store.as_ref(), &id).await?;
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(CliError::Invalid("--name must not be empty".into()));
            }
            let scopes = scopes.map(|s| parse_scopes(&s)).transpose()?;
            let meta = match (meta, clear_meta) {
                (Some(m), _) => Some(Some(parse_meta(&m)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let expires_at = match (expires_in, no_expiry) {
                (Some(d), _) => Some(Some(now.saturating_add(d.as_secs()))),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let updated = admin::update_from(store.as_ref(), record, &stamp, |r| {
                if r.status == KeyStatus::Revoked {
                    return Err(CliError::Failed(format!("key {id} is revoked")));
                }
                if let Some(name) = &name {
                    r.name = name.clone();
                }
                if let Some(scopes) = &scopes {
                    r.scopes = scopes.clone();
                }
                if let Some(meta) = &meta {
                    r.meta = meta.clone();
                }
                if let Some(expires_at) = expires_at {
                    r.expires_at = expires_at;
                }
                Ok(())
            })
            .await?;
            if json {
                print_key(&updated.after, now, true);
            } else if updated.changed() {
                println!("Updated key {}.", updated.after.id);
            } else {
                println!("Key {} already was so; nothing changed.", updated.after.id);
            }
        }
        KeysCommand::Revoke { id } => {
            let record = existing(store.as_ref(), &id).await?;
            let updated = admin::update_from(store.as_ref(), record, &stamp, |r| {
                admin::revoke(r);
                Ok::<_, CliError>(())
            })
            .await?;
            let sessions = admin::sessions_ended(store.as_ref(), &updated, now).await?;
            println!(
                "Revoked key {} and {sessions} session(s); its tokens no longer verify.",
                updated.after.id
            );
        }
        KeysCommand::Rotate { id, grace, json } => {
            let record = existing(store.as_ref(), &id).await?;
            let key = ApiKey::regenerate(&record.id)
                .map_err(|e| CliError::Failed(format!("no randomness: {e}")))?;
            let rotated = admin::update_from(store.as_ref(), record, &stamp, |r| {
                admin::rotate(r, &key, now, grace.as_secs()).map_err(|e| match e {
                    RotateError::Revoked => {
                        CliError::Failed(format!("key {id} is revoked; create a new key instead"))
                    }
                    RotateError::Store(e) => e.into(),
                })
            })
            .await?;
            let record = rotated.after;
            print_new_key(&key, &record, json, "Rotated");
            if !json {
                let until = if grace.is_zero() {
                    "no longer works".to_owned()
                } else {
                    format!("works until {}", time(now + grace.as_secs()))
                };
                println!("The old secret {until}.");
            }
        }
    }
    Ok(())
}

/// Scopes as people type them: any run of whitespace separates them.
fn parse_scopes(text: &str) -> Result<Scopes, CliError> {
    Scopes::parse(&text.split_whitespace().collect::<Vec<_>>().join(" "))
        .map_err(|e| CliError::Invalid(format!("bad --scopes: {e}")))
}

fn parse_meta(text: &str) -> Result<Meta, CliError> {
    let value =
        serde_json::from_str(text).map_err(|e| CliError::Invalid(format!("bad --meta: {e}")))?;
    Meta::new(value).map_err(|e| CliError::Invalid(format!("bad --meta: {e}")))
}

/// `authctl events [KEY_ID | --owner OWNER]`: the audit trail, newest first.
pub async fn events(backend: &BackendArgs, args: EventsArgs) -> Result<(), CliError> {
    let store = backend.store().await?;
    let limit = usize::from(args.limit);
    let events = match (&args.key_id, &args.owner) {
        (Some(id), _) => {
            let record = existing(store.as_ref(), id).await?;
            store.key_events(&record.id, None, limit).await?
        }
        (None, owner) => {
            let owner = owner
                .as_deref()
                .map(Owner::parse)
                .transpose()
                .map_err(|e| CliError::Invalid(format!("bad --owner: {e}")))?;
            store.events_page(owner.as_ref(), None, limit).await?
        }
    };
    if !args.json {
        println!("{:<20}  {:<17}  {:<30}  CHANGES", "TIME", "ACTION", "ACTOR");
    }
    for event in events {
        if args.json {
            let mut body =
                serde_json::to_value(&event).map_err(|e| CliError::Failed(e.to_string()))?;
            if let Some(body) = body.as_object_mut() {
                body.remove("ttl");
                body.insert("time".into(), json!(time(event.time_ms / 1000)));
            }
            println!("{body}");
        } else {
            let action = serde_json::to_value(event.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let actor = format!(
                "{}:{}",
                serde_json::to_value(event.actor.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                event.actor.id
            );
            let fields: Vec<&str> = event.changes.keys().map(String::as_str).collect();
            println!(
                "{:<20}  {:<17}  {:<30}  {}",
                time(event.time_ms / 1000),
                action,
                actor,
                fields.join(", ")
            );
        }
    }
    Ok(())
}

/// A change made now by the person running `authctl` (`user@host`), its
/// event kept `AUDIT_RETENTION_DAYS` as the deployed functions keep theirs.
pub fn operator() -> Result<Stamp, CliError> {
    let admin = AdminPolicy::from_lookup(&|name| std::env::var(name).ok())
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(Stamp {
        origin: operator_origin(),
        now_ms: SystemClock
            .now_ms()
            .map_err(|e| CliError::Failed(e.to_string()))?,
        retention_days: admin.audit_retention_days,
    })
}

fn operator_origin() -> Origin {
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    Origin::of(Actor::cli(format!("{user}@{host}")))
}

/// The record of an existing key id given on the command line.
pub async fn existing(store: &dyn Store, id: &str) -> Result<KeyRecord, CliError> {
    let key_id = KeyId::parse(id)
        .ok_or_else(|| CliError::Invalid(format!("{id:?} is not a key id (16 hex characters)")))?;
    store
        .key(&key_id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("no key {id}")))
}

fn print_new_key(key: &ApiKey, record: &KeyRecord, json: bool, verb: &str) {
    let api_key = key.expose();
    if json {
        let body = json!({
            "api_key": api_key.expose_secret(),
            "key_id": record.id.as_str(),
            "name": record.name,
            "scopes": record.scopes.to_string(),
        });
        println!("{body}");
    } else {
        println!(
            "{verb} API key {} (name {:?}, scopes {:?}).",
            record.id,
            record.name,
            record.scopes.to_string()
        );
        println!(
            "Store it now; it is not shown again:\n\n  {}\n",
            api_key.expose_secret()
        );
    }
}

fn print_key(record: &KeyRecord, now: u64, json: bool) {
    let status = status(record, now);
    if json {
        let body = json!({
            "key_id": record.id.as_str(),
            "name": record.name,
            "scopes": record.scopes.to_string(),
            "status": status,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "owner": record.owner,
            "meta": record.meta,
            "last_used_at": record.last_used_at,
        });
        println!("{body}");
    } else {
        let expires = record.expires_at.map_or_else(|| "never".to_owned(), time);
        println!(
            "{:<16}  {:<8}  {:<20}  {:<20}  {:<20}  {}",
            record.id,
            status,
            record.name,
            time(record.created_at),
            expires,
            record.scopes
        );
    }
}

fn status(record: &KeyRecord, now: u64) -> &'static str {
    match record.status {
        KeyStatus::Revoked => "revoked",
        KeyStatus::Active if !record.is_usable(now) => "expired",
        KeyStatus::Active => "active",
    }
}

/// A Unix time as RFC 3339, for people.
pub fn time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}
