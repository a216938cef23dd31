//! `authctl sessions ...`: the sessions of a key, and revoking one.

use auth_shared::domain::audit::AuditEvent;
use auth_shared::domain::clock::{Clock, SystemClock};
use auth_shared::domain::session_id::SessionId;
use serde_json::json;

use crate::cli::{BackendArgs, SessionsCommand};
use crate::error::CliError;
use crate::keys::{existing, operator, time};

pub async fn run(backend: &BackendArgs, command: SessionsCommand) -> Result<(), CliError> {
    let store = backend.store().await?;
    match command {
        SessionsCommand::List { key_id, json } => {
            let key = existing(store.as_ref(), &key_id).await?;
            let now = SystemClock
                .now()
                .map_err(|e| CliError::Failed(e.to_string()))?;
            if !json {
                println!(
                    "{:<24}  {:<7}  {:<20}  {:<20}  SCOPE",
                    "SESSION", "STATUS", "ISSUED", "EXPIRES"
                );
            }
            for session in store.list_sessions(&key.id).await? {
                let claims = &session.current.claims;
                let status = if now < claims.exp { "live" } else { "expired" };
                if json {
                    let line = json!({
                        "session_id": claims.sid, "status": status, "jti": claims.jti,
                        "iat": claims.iat, "exp": claims.exp, "scope": claims.scope,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{:<24}  {:<7}  {:<20}  {:<20}  {}",
                        claims.sid,
                        status,
                        time(claims.iat),
                        time(claims.exp),
                        claims.scope
                    );
                }
            }
        }
        SessionsCommand::Revoke { key_id, session_id } => {
            let key = existing(store.as_ref(), &key_id).await?;
            let session =
                SessionId::parse(&session_id).map_err(|e| CliError::Invalid(e.to_string()))?;
            let event = AuditEvent::of_session_revoke(
                &key.id,
                key.owner.as_ref(),
                session.as_str(),
                &operator()?,
            );
            if !store
                .delete_session(&key.id, &session, None, &event)
                .await?
            {
                return Err(CliError::NotFound(format!(
                    "no session {session_id} for key {key_id}"
                )));
            }
            println!("Revoked session {session_id} of key {key_id}; its tokens no longer verify.");
        }
    }
    Ok(())
}
