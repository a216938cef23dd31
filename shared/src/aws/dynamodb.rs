//! The DynamoDB backend: one table of keys, sessions and events.
//!
//! | pk                          | sk        | holds |
//! |-----------------------------|-----------|-------|
//! | `KEY#<id>`                  | `KEY`     | name, secret hash(es), scopes, status, created_at, expires_at, sessions_revoked_before, version, the listing indexes' keys |
//! | `KEY#<id>#R<n>`             | `KEY`     | copy `n` (1 to `KEY_REPLICAS - 1`) of the key: the same, without the listing indexes' keys |
//! | `KEY#<id>`                  | `EVENT#<id>` | an audit event of the key |
//! | `SESSION#<id>#<session>`    | `SESSION` | current token's claims, kid and minted_ms, predecessor's (`prev_*`), `ttl`, and `sessions_pk`/`sessions_sk` (the key id and session id) |
//!
//! Each session is a partition of its own, apart from its key's, so a busy
//! key's sessions spread over the table; a key's sessions are listed through
//! the index [`SESSIONS_INDEX`].
//!
//! Each key item has `KEY_REPLICAS` copies, the primary among them, each on
//! a partition of its own: a read picks one at random, so one key's
//! verifies spread over them. Every key write sets them all with the
//! primary, in one transaction (see `put_key`).
//!
//! Every key write is conditional on the `version` it read and writes the
//! next one, so no write built from an older read (a rotation racing a
//! revoke) lands.
//!
//! Reads are strongly consistent: a revoke must be seen by the very next verify.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
    Update,
};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use crate::config::{DEFAULT_KEY_REPLICAS, MAX_KEY_REPLICAS};
use crate::domain::api_key::{KeyId, KeyRecord};
use crate::domain::audit::AuditEvent;
use crate::domain::owner::Owner;
use crate::domain::portal::PortalLink;
use crate::domain::session_id::SessionId;
use crate::domain::store::{
    KeyAndSession, KeyPosition, SessionRecord, SessionTimes, Store, StoreError,
};

type Item = HashMap<String, AttributeValue>;

/// Attempts at items DynamoDB returns as unprocessed (throttling) before giving up.
const UNPROCESSED_ATTEMPTS: u32 = 4;

/// [`Store`] on a DynamoDB table.
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    session_page: Option<i32>,
    copies: u8,
    reading: Option<u8>,
}

impl DynamoDbStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            session_page: None,
            copies: DEFAULT_KEY_REPLICAS,
            reading: None,
        }
    }

    /// Keeps `copies` copies of each key item, the primary among them
    /// (`KEY_REPLICAS`; by default [`DEFAULT_KEY_REPLICAS`]), clamped to
    /// 1 to [`MAX_KEY_REPLICAS`].
    pub fn with_key_replicas(mut self, copies: u8) -> Self {
        self.copies = copies.clamp(1, MAX_KEY_REPLICAS);
        self
    }

    /// Reads copy `copy` of every key (0 is the primary) instead of one at
    /// random: for tests, which show that each copy sees every write.
    pub fn reading_copy(mut self, copy: u8) -> Self {
        self.reading = Some(copy);
        self
    }

    /// The copy of a key a read asks for: one at random, so that a busy
    /// key's reads spread evenly over its copies' partitions.
    fn copy_to_read(&self) -> u8 {
        self.reading
            .unwrap_or_else(|| rand::random_range(0..self.copies))
    }

    /// Lists a key's sessions in pages of at most `items` (by default
    /// DynamoDB's own, 1 MB): for tests, which cannot afford a megabyte of
    /// sessions to show that every page is read.
    pub fn with_session_page(mut self, items: u16) -> Self {
        self.session_page = Some(i32::from(items));
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(internal)?,
        );
        let mut items = Vec::new();
        for attempt in 0..UNPROCESSED_ATTEMPTS {
            let Some(request) = pending.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(mut found) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                items.append(&mut found);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
        }
        match pending {
            None => Ok(items),
            Some(_) => Err(StoreError::Unavailable(
                "read throttled: keys left unprocessed".into(),
            )),
        }
    }

    /// `keys`, each from one of its copies, and one session of `key`, in
    /// one strongly consistent BatchGetItem; the keys come back in no
    /// particular order.
    ///
    /// A copy that is absent, of a key last written before copies existed
    /// or with a lower `KEY_REPLICAS` than this reader's (every write
    /// deletes the copies above its own count), is no answer: that key is
    /// read again from its primary, in a second call. Correct, because the
    /// primary is what every write is conditional on, and rare: a key's
    /// next write makes its copies. An unknown key id costs that second
    /// call too; it is refused all the same.
    async fn keys_and_session(
        &self,
        keys: &[&KeyId],
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Vec<KeyRecord>, Option<SessionRecord>), StoreError> {
        let copies: Vec<(&KeyId, u8)> = keys.iter().map(|k| (*k, self.copy_to_read())).collect();
        let mut asked: Vec<Item> = copies
            .iter()
            .map(|(k, copy)| primary(key_copy_pk(k, *copy), KEY_SK.into()))
            .collect();
        asked.push(primary(session_pk(key, session), SESSION_SK.into()));
        let mut records = Vec::new();
        let mut stored = None;
        for item in &self.batch_get(asked).await? {
            match get_s(item, "sk")? {
                KEY_SK => records.push(decode_key(item)?),
                SESSION_SK => stored = Some(decode_session(item)?),
                _ => return Err(StoreError::Internal("an item of another kind".into())),
            }
        }
        let missing: Vec<Item> = copies
            .iter()
            .filter(|(k, copy)| *copy != 0 && !records.iter().any(|r| r.id == **k))
            .map(|(k, _)| primary(key_pk(k), KEY_SK.into()))
            .collect();
        if !missing.is_empty() {
            for item in &self.batch_get(missing).await? {
                records.push(decode_key(item)?);
            }
        }
        Ok((records, stored))
    }

    /// A key's session items through [`SESSIONS_INDEX`], every page; with
    /// `unexpired_at`, only those whose current token expires after it, and
    /// only their times.
    ///
    /// An index is read eventually consistent (DynamoDB offers nothing
    /// else on a GSI): a session written a moment ago may be missing for
    /// that moment. Its readers can bear it: the admin listing, the session
    /// cap (which a burst of concurrent logins could overshoot anyway) and
    /// the count a revoke reports. No revocation depends on it: revoking
    /// every session is the key's one `sessions_revoked_before` write.
    async fn query_sessions(
        &self,
        key: &KeyId,
        unexpired_at: Option<u64>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SESSIONS_INDEX)
                .key_condition_expression("#key = :key")
                .expression_attribute_names("#key", SESSIONS_PK)
                .expression_attribute_values(":key", s(key.to_string()))
                .set_limit(self.session_page)
                .set_exclusive_start_key(start);
            let request = match unexpired_at {
                None => request,
                Some(now) => request
                    .filter_expression("#exp > :now")
                    .projection_expression("#exp, minted_ms")
                    .expression_attribute_names("#exp", "exp")
                    .expression_attribute_values(":now", n(now)),
            };
            let out = request.send().await.map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn key_and_session(
        &self,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<KeyAndSession, StoreError> {
        let (mut keys, stored) = self.keys_and_session(&[key], key, session).await?;
        Ok((keys.pop(), stored))
    }

    async fn caller_key_and_session(
        &self,
        caller: &KeyId,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
        // BatchGetItem refuses a key asked for twice: ask for a caller
        // introspecting its own token once.
        let asked: &[&KeyId] = if caller == key {
            &[key]
        } else {
            &[caller, key]
        };
        let (keys, stored) = self.keys_and_session(asked, key, session).await?;
        let find = |id: &KeyId| keys.iter().find(|r| &r.id == id).cloned();
        Ok((find(caller), (find(key), stored)))
    }

    async fn put_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_session(session)?));
        let request = match replaces {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(jti) => request
                .condition_expression("jti = :jti")
                .expression_attribute_values(":jti", s(jti)),
        };
        Ok(landed(request.send().await)?.is_some())
    }

    async fn delete_session(
        &self,
        key: &KeyId,
        session: &SessionId,
        holding: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(primary(session_pk(key, session), SESSION_SK.into())));
        let delete = match holding {
            None => delete.condition_expression("attribute_exists(pk)"),
            Some(jti) => delete
                .condition_expression("attribute_exists(pk) AND (jti = :jti OR prev_jti = :jti)")
                .expression_attribute_values(":jti", s(jti)),
        };
        let write = TransactWriteItem::builder()
            .delete(delete.build().map_err(internal)?)
            .build();
        self.write_with_event(vec![write], event).await
    }

    async fn list_sessions(&self, key: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        self.query_sessions(key, None)
            .await?
            .iter()
            .map(decode_session)
            .collect()
    }

    async fn unexpired_sessions(
        &self,
        key: &KeyId,
        now: u64,
    ) -> Result<Vec<SessionTimes>, StoreError> {
        self.query_sessions(key, Some(now))
            .await?
            .iter()
            .map(|item| {
                Ok(SessionTimes {
                    exp: get_n(item, "exp")?,
                    minted_ms: opt_n(item, "minted_ms")?.unwrap_or(0),
                })
            })
            .collect()
    }

    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(primary(key_pk(key), KEY_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(decode_key).transpose()
    }

    async fn create_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        self.put_key(record, event, "attribute_not_exists(pk)", None)
            .await
    }

    async fn save_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        // Items written before versions existed have none: version 0.
        match record.version {
            0 => {
                self.put_key(
                    record,
                    event,
                    "attribute_exists(pk) AND attribute_not_exists(version)",
                    None,
                )
                .await
            }
            v => self.put_key(record, event, "version = :v", Some(v)).await,
        }
    }

    /// The primary and every copy of the key get the time in one
    /// transaction, decided on the primary's time (a copy's is the same:
    /// they are only ever written together). Readers decide staleness from
    /// the copy they read, so a copy left behind would have every
    /// environment reading it try again each hour.
    ///
    /// An Update of an absent copy would create it holding nothing but
    /// this time, a corrupt key item, so each copy's Update requires the
    /// copy to exist. When some do not (a key last written before copies
    /// existed, or with a lower `KEY_REPLICAS`), the transaction is
    /// refused and its cancellation reasons name them: it runs once more
    /// with the copies that exist.
    async fn touch_key(&self, key: &KeyId, at: u64, stale_before: u64) -> Result<bool, StoreError> {
        let mut copies: Vec<u8> = (1..self.copies).collect();
        for _ in 0..2 {
            let update = |copy: u8, condition: &str| {
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(primary(key_copy_pk(key, copy), KEY_SK.into())))
                    .update_expression("SET last_used_at = :at")
                    .condition_expression(condition)
                    .expression_attribute_values(":at", n(at))
            };
            let first = update(
                0,
                "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :stale)",
            )
            .expression_attribute_values(":stale", n(stale_before));
            let writes = std::iter::once(first)
                .chain(copies.iter().map(|c| update(*c, "attribute_exists(pk)")))
                .map(|u| {
                    u.build()
                        .map(|u| TransactWriteItem::builder().update(u).build())
                        .map_err(internal)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let failed = match self.transact(writes).await {
                Ok(_) => return Ok(true),
                Err(e) => failed_conditions(&e).ok_or_else(|| unavailable(e))?,
            };
            match failed.split_first() {
                Some((true, _)) => return Ok(false),
                Some((false, of_copies)) if of_copies.contains(&true) => {
                    copies = copies
                        .iter()
                        .zip(of_copies)
                        .filter(|(_, failed)| !**failed)
                        .map(|(copy, _)| *copy)
                        .collect();
                }
                _ => {
                    return Err(StoreError::Unavailable(
                        "last use not written: transaction cancelled".into(),
                    ));
                }
            }
        }
        // The copies changed between the two attempts (a key write with
        // another KEY_REPLICAS): the use is written by a later request.
        Ok(false)
    }

    async fn create_portal_link(
        &self,
        link: &PortalLink,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode_link(link)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(internal)?;
        let write = TransactWriteItem::builder().put(put).build();
        if self.write_with_event(vec![write], event).await? {
            Ok(())
        } else {
            Err(StoreError::Internal("portal link id collision".into()))
        }
    }

    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        // Refused by its condition = stored by an earlier attempt.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_event(event)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        landed(result).map(drop)
    }

    async fn redeem_portal_link(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<PortalLink>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(primary(link_pk(id), PORTAL_SK.into())))
            .update_expression("SET session_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(session_until) AND expires_at > :now",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        landed(result)?
            .and_then(|out| out.attributes)
            .as_ref()
            .map(decode_link)
            .transpose()
    }

    async fn portal_link(&self, id: &str) -> Result<Option<PortalLink>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(primary(link_pk(id), PORTAL_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(decode_link).transpose()
    }

    async fn end_portal_session(&self, id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(primary(link_pk(id), PORTAL_SK.into())))
            .condition_expression("attribute_exists(session_until)")
            .send()
            .await;
        Ok(landed(result)?.is_some())
    }

    async fn keys_page(
        &self,
        owner: Option<&Owner>,
        after: Option<&KeyPosition>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let listing = Listing {
            owner,
            all: ALL_KEYS,
            prefix: "KEY#",
            bound: after.map(listed_sk),
        };
        let keys = self
            .listed(listing, limit)
            .await?
            .iter()
            .map(decode_key)
            .collect::<Result<Vec<_>, _>>()?;
        // BETWEEN includes its bound, the last key of the page before.
        Ok(keys
            .into_iter()
            .filter(|k| after.is_none_or(|a| &KeyPosition::of(k) < a))
            .take(limit)
            .collect())
    }

    async fn events_page(
        &self,
        owner: Option<&Owner>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let listing = Listing {
            owner,
            all: ALL_EVENTS,
            prefix: EVENT_PREFIX,
            bound: before.map(|id| format!("{EVENT_PREFIX}{id}")),
        };
        let events = self
            .listed(listing, limit)
            .await?
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(events
            .into_iter()
            .filter(|e| before.is_none_or(|b| e.id.as_str() < b))
            .take(limit)
            .collect())
    }

    async fn key_events(
        &self,
        key: &KeyId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .expression_attribute_values(":pk", s(key_pk(key)));
        // Event sort keys sort below the only other item of a key's
        // partition, "KEY", so "below this event" needs no prefix check.
        let request = match before {
            None => request
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(EVENT_PREFIX)),
            Some(id) => request
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":before", s(format!("{EVENT_PREFIX}{id}"))),
        };
        let out = request.send().await.map_err(unavailable)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(decode_event)
            .collect()
    }

    async fn warm_up(&self) -> Result<(), StoreError> {
        // A read of a key id that cannot exist: the same call and permission
        // as verify, so the connection it opens is the one requests reuse.
        self.batch_get(vec![primary("KEY#warm-up".into(), KEY_SK.into())])
            .await
            .map(drop)
    }
}

impl DynamoDbStore {
    /// Writes `record` at its next version under `condition`, which may
    /// name the version read as `:v`, its copies, and `event` beside it, in
    /// one transaction: all land or none.
    ///
    /// The copies are Puts of copies 1 to `KEY_REPLICAS - 1` and Deletes of
    /// the rest up to [`MAX_KEY_REPLICAS`]: every write sets every copy
    /// there can be. So no copy ever holds an older state than the
    /// primary: had KEY_REPLICAS been lowered, a key then revoked, and
    /// KEY_REPLICAS raised again, a copy kept from before would otherwise
    /// come back to readers unrevoked. A transaction commits its writes at
    /// once, so a strongly consistent read of any copy sees the change as
    /// soon as it is acknowledged.
    async fn put_key(
        &self,
        record: &KeyRecord,
        event: &AuditEvent,
        condition: &str,
        read_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let item = encode_key(record)?;
        let mut writes = self.copy_writes(&record.id, &item)?;
        let key = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(
                read_version.map(|v| HashMap::from([(":v".to_owned(), n(v))])),
            )
            .build()
            .map_err(internal)?;
        writes.insert(0, TransactWriteItem::builder().put(key).build());
        self.write_with_event(writes, event).await
    }

    /// The writes that make every copy of the key match `item`, its
    /// primary: a Put of each copy this store keeps, without the listing
    /// indexes' attributes (no copy is ever listed), and a Delete of each
    /// copy above.
    fn copy_writes(&self, key: &KeyId, item: &Item) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut copy = item.clone();
        for listed in [ALL_PK, OWNER_PK, LISTED_SK] {
            copy.remove(listed);
        }
        (1..MAX_KEY_REPLICAS)
            .map(|n| {
                let pk = key_copy_pk(key, n);
                if n < self.copies {
                    let mut item = copy.clone();
                    item.insert("pk".into(), s(pk));
                    let put = Put::builder().table_name(&self.table).set_item(Some(item));
                    Ok(TransactWriteItem::builder()
                        .put(put.build().map_err(internal)?)
                        .build())
                } else {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(primary(pk, KEY_SK.into())));
                    Ok(TransactWriteItem::builder()
                        .delete(delete.build().map_err(internal)?)
                        .build())
                }
            })
            .collect()
    }

    async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map(drop)
    }

    /// Runs `writes` and the put of `event` as one transaction: all land
    /// or none; `false` when a condition of `writes` refused it.
    async fn write_with_event(
        &self,
        mut writes: Vec<TransactWriteItem>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(encode_event(event)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(internal)?;
        writes.push(TransactWriteItem::builder().put(event).build());
        match self.transact(writes).await {
            Ok(_) => Ok(true),
            Err(e) if is_cancelled_by_a_condition(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// One page of a listing index: the items of `owner`'s partition (or of
/// every key's, named `all`) whose sort key starts with `prefix`, newest
/// first, at or below `bound`.
struct Listing<'a> {
    owner: Option<&'a Owner>,
    all: &'static str,
    prefix: &'static str,
    bound: Option<String>,
}

impl DynamoDbStore {
    /// The items of `listing`, `limit` of them (and the bound itself, which
    /// BETWEEN includes and the caller drops).
    async fn listed(&self, listing: Listing<'_>, limit: usize) -> Result<Vec<Item>, StoreError> {
        let (index, pk, partition) = match listing.owner {
            None => (ALL_INDEX, ALL_PK, listing.all.to_owned()),
            Some(owner) => (OWNER_INDEX, OWNER_PK, owner_pk(owner)),
        };
        let wanted = limit.saturating_add(usize::from(listing.bound.is_some()));
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .scan_index_forward(false)
            .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
            .expression_attribute_names("#pk", pk)
            .expression_attribute_names("#sk", LISTED_SK)
            .expression_attribute_values(":pk", s(partition));
        // An owner's partition holds keys ("KEY#...") and events
        // ("EVENT#..."): the prefix keeps to one kind.
        let request = match listing.bound {
            None => request
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_values(":prefix", s(listing.prefix)),
            Some(bound) => request
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :first AND :bound")
                .expression_attribute_values(":first", s(listing.prefix))
                .expression_attribute_values(":bound", s(bound)),
        };
        let out = request.send().await.map_err(unavailable)?;
        Ok(out.items.unwrap_or_default())
    }
}

/// Whether a transaction was refused because a condition failed (another
/// write came first), rather than for a conflict or a fault.
fn is_cancelled_by_a_condition(e: &SdkError<TransactWriteItemsError, HttpResponse>) -> bool {
    failed_conditions(e).is_some_and(|failed| failed.contains(&true))
}

/// For a cancelled transaction, whether each of its items (in the order
/// sent) failed its condition; `None` for any other error.
fn failed_conditions(e: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<Vec<bool>> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

/// An index on `partition` and `sort`, every attribute projected.
fn index(
    name: &str,
    partition: &str,
    sort: &str,
    key: &dyn Fn(&str, KeyType) -> Result<KeySchemaElement, StoreError>,
) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(partition, KeyType::Hash)?)
        .key_schema(key(sort, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(internal)
}

/// Creates the table with the key schema and TTL the store expects, on-demand
/// billing, and waits until it is active. For emulators, tests and dev
/// accounts. Idempotent: a table of that name that exists already (made by a
/// retry of this very call whose first answer was lost, or by an earlier run)
/// is waited for and kept.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(internal)
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(internal)
    };
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr(ALL_PK)?)
        .attribute_definitions(attr(OWNER_PK)?)
        .attribute_definitions(attr(LISTED_SK)?)
        .attribute_definitions(attr(SESSIONS_PK)?)
        .attribute_definitions(attr(SESSIONS_SK)?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index(ALL_INDEX, ALL_PK, LISTED_SK, &key)?)
        .global_secondary_indexes(index(OWNER_INDEX, OWNER_PK, LISTED_SK, &key)?)
        .global_secondary_indexes(index(SESSIONS_INDEX, SESSIONS_PK, SESSIONS_SK, &key)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    // A retry whose first attempt made the table is told it exists.
    if let Err(e) = created
        && !e
            .as_service_error()
            .is_some_and(|e| e.is_resource_in_use_exception())
    {
        return Err(unavailable(e));
    }
    for attempt in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(unavailable)?;
        if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            break;
        }
        if attempt == 119 {
            return Err(StoreError::Unavailable(
                "table did not become active in 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // DynamoDB refuses to enable TTL twice, so a kept table is asked first.
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(unavailable)?
        .time_to_live_description;
    let ttl_on = ttl.is_some_and(|d| {
        d.attribute_name() == Some("ttl")
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if !ttl_on {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(internal)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

const KEY_SK: &str = "KEY";
const SESSION_SK: &str = "SESSION";
/// The index of one key's sessions: partition [`SESSIONS_PK`] = the key
/// id, sorted by [`SESSIONS_SK`]. Only session items carry them.
pub const SESSIONS_INDEX: &str = "sessions_by_key";
const SESSIONS_PK: &str = "sessions_pk";
const SESSIONS_SK: &str = "sessions_sk";
/// The index of every key and every event, newest first: partition
/// [`ALL_PK`] = [`ALL_KEYS`] or [`ALL_EVENTS`].
pub const ALL_INDEX: &str = "listing_all";
/// The index of one owner's keys and events: partition [`OWNER_PK`] =
/// `OWNER#<owner>`, sort keys `KEY#...` and `EVENT#...`.
pub const OWNER_INDEX: &str = "listing_by_owner";
const ALL_PK: &str = "all_pk";
const OWNER_PK: &str = "owner_pk";
const LISTED_SK: &str = "listed_sk";
const ALL_KEYS: &str = "KEYS";
const ALL_EVENTS: &str = "EVENTS";
const EVENT_PREFIX: &str = "EVENT#";
const PORTAL_SK: &str = "PORTAL";

fn key_pk(key: &KeyId) -> String {
    format!("KEY#{key}")
}

/// Copy `copy` of a key item: 0 is the primary, the others each a
/// partition of their own.
fn key_copy_pk(key: &KeyId, copy: u8) -> String {
    match copy {
        0 => key_pk(key),
        n => format!("KEY#{key}#R{n}"),
    }
}

fn owner_pk(owner: &Owner) -> String {
    format!("OWNER#{owner}")
}

/// Sorts by creation time, then id: zero-padded so text order is time order.
fn listed_sk(position: &KeyPosition) -> String {
    format!("KEY#{:015}#{}", position.created_at, position.id)
}

/// A session's own partition, apart from its key's and every other
/// session's: a busy key's sessions spread over the table.
fn session_pk(key: &KeyId, session: &SessionId) -> String {
    format!("SESSION#{key}#{session}")
}

fn primary(pk: String, sk: String) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ])
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25 << attempt)
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(e))
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// A conditional write's output, or `None` when its condition refused it.
fn landed<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<Option<O>, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if is_condition_failure(&e) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn is_condition_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// A key item: the record's serde form (see [`KeyRecord`]) under its keys,
/// with the version it is written at. The id is the `pk`, not an attribute.
fn encode_key(r: &KeyRecord) -> Result<Item, StoreError> {
    let stored = r
        .as_written()
        .ok_or_else(|| StoreError::Internal("key version overflow".into()))?;
    let mut item: Item = serde_dynamo::to_item(&stored).map_err(internal)?;
    item.remove("id");
    item.extend(primary(key_pk(&r.id), KEY_SK.into()));
    // The listing indexes' keys: what the admin listing queries.
    let listed = listed_sk(&KeyPosition::of(r));
    item.insert(ALL_PK.into(), s(ALL_KEYS));
    item.insert(LISTED_SK.into(), s(listed));
    if let Some(owner) = &r.owner {
        item.insert(OWNER_PK.into(), s(owner_pk(owner)));
    }
    Ok(item)
}

fn decode_key(item: &Item) -> Result<KeyRecord, StoreError> {
    // A copy's pk is its primary's and `#R<n>`.
    let id = get_s(item, "pk")?
        .strip_prefix("KEY#")
        .and_then(|rest| rest.split('#').next())
        .ok_or_else(|| StoreError::Internal("key item with a bad pk".into()))?;
    let mut fields = item.clone();
    fields.insert("id".into(), s(id));
    serde_dynamo::from_item(fields)
        .map_err(|e| StoreError::Internal(format!("corrupt key item: {e}")))
}

/// A session item: the record's serde form (see [`SessionRecord`]) under
/// its keys; its key id and session id are [`SESSIONS_INDEX`]'s keys.
fn encode_session(r: &SessionRecord) -> Result<Item, StoreError> {
    let key = KeyId::parse(r.key_id())
        .ok_or_else(|| StoreError::Internal("session with a bad key id".into()))?;
    let sid = SessionId::parse(r.session_id()).map_err(internal)?;
    let mut item: Item = serde_dynamo::to_item(r).map_err(internal)?;
    item.remove("sub");
    item.remove("sid");
    item.extend(primary(session_pk(&key, &sid), SESSION_SK.into()));
    item.insert(SESSIONS_PK.into(), s(key.to_string()));
    item.insert(SESSIONS_SK.into(), s(sid.to_string()));
    Ok(item)
}

/// An event item: the event's serde form under the key's `pk`, sorted by its
/// id; an event of no key is a partition of its own (`EVENT#<id>`), so such
/// events spread like keys do.
fn encode_event(event: &AuditEvent) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(event).map_err(internal)?;
    item.remove("key_id");
    let sk = format!("{EVENT_PREFIX}{}", event.id);
    let pk = event.key_id.as_ref().map_or_else(|| sk.clone(), key_pk);
    item.extend(primary(pk, sk.clone()));
    // The listing indexes' keys, as a key item has them.
    item.insert(ALL_PK.into(), s(ALL_EVENTS));
    item.insert(LISTED_SK.into(), s(sk));
    if let Some(owner) = &event.owner {
        item.insert(OWNER_PK.into(), s(owner_pk(owner)));
    }
    Ok(item)
}

fn decode_event(item: &Item) -> Result<AuditEvent, StoreError> {
    let pk = get_s(item, "pk")?;
    let mut fields = item.clone();
    if let Some(id) = pk.strip_prefix("KEY#") {
        fields.insert("key_id".into(), s(id));
    } else if !pk.starts_with(EVENT_PREFIX) {
        return Err(StoreError::Internal("event item with a bad pk".into()));
    }
    serde_dynamo::from_item(fields)
        .map_err(|e| StoreError::Internal(format!("corrupt event item: {e}")))
}

/// A portal link item: its serde form under `PORTAL#<id>`, with its TTL.
fn encode_link(link: &PortalLink) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(link).map_err(internal)?;
    item.remove("id");
    item.insert("ttl".into(), n(link.ttl()));
    item.extend(primary(link_pk(&link.id), PORTAL_SK.into()));
    Ok(item)
}

fn decode_link(item: &Item) -> Result<PortalLink, StoreError> {
    let id = get_s(item, "pk")?
        .strip_prefix("PORTAL#")
        .ok_or_else(|| StoreError::Internal("portal item with a bad pk".into()))?;
    let mut fields = item.clone();
    fields.insert("id".into(), s(id));
    serde_dynamo::from_item(fields)
        .map_err(|e| StoreError::Internal(format!("corrupt portal item: {e}")))
}

fn link_pk(id: &str) -> String {
    format!("PORTAL#{id}")
}

fn decode_session(item: &Item) -> Result<SessionRecord, StoreError> {
    let mut fields = item.clone();
    let sub = fields
        .remove(SESSIONS_PK)
        .ok_or_else(|| StoreError::Internal("session item without its key".into()))?;
    let sid = fields
        .remove(SESSIONS_SK)
        .ok_or_else(|| StoreError::Internal("session item without its id".into()))?;
    fields.insert("sub".into(), sub);
    fields.insert("sid".into(), sid);
    serde_dynamo::from_item(fields)
        .map_err(|e| StoreError::Internal(format!("corrupt session item: {e}")))
}

fn opt_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(StoreError::Internal(format!(
            "attribute {name} is not a string"
        ))),
    }
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    opt_s(item, name)?.ok_or_else(|| StoreError::Internal(format!("attribute {name} is missing")))
}

fn opt_n(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Internal(format!("attribute {name} is not a whole number"))),
        Some(_) => Err(StoreError::Internal(format!(
            "attribute {name} is not a number"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    opt_n(item, name)?.ok_or_else(|| StoreError::Internal(format!("attribute {name} is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::StoredToken;
    use crate::domain::token::Claims;

    fn session() -> SessionRecord {
        let claims = Claims {
            iss: "https://auth.test".into(),
            aud: Some("api".into()),
            sub: "0123456789abcdef".into(),
            sid: "worker-1".into(),
            jti: "j2".into(),
            iat: 10,
            nbf: None,
            exp: 7210,
            scope: "read write".into(),
        };
        let previous = StoredToken {
            claims: Claims {
                jti: "j1".into(),
                aud: None,
                ..claims.clone()
            },
            kid: "v0".into(),
            minted_ms: 1_000,
        };
        SessionRecord {
            current: StoredToken {
                claims,
                kid: "v1".into(),
                minted_ms: 2_000,
            },
            previous: Some(previous),
            ttl: 7240,
        }
    }

    #[test]
    fn sessions_round_trip_through_items() {
        let record = session();
        let item = encode_session(&record).unwrap();
        assert_eq!(item["pk"], s("SESSION#0123456789abcdef#worker-1"));
        assert_eq!(item["sk"], s("SESSION"));
        assert_eq!(item["sessions_pk"], s("0123456789abcdef"));
        assert_eq!(item["sessions_sk"], s("worker-1"));
        assert!(!item.contains_key("prev_aud"));
        assert_eq!(decode_session(&item).unwrap(), record);
    }

    fn key() -> KeyRecord {
        let key = crate::domain::api_key::ApiKey::generate().unwrap();
        let scopes = crate::domain::scope::Scopes::parse("read write").unwrap();
        let mut record = KeyRecord::new(&key, "ci", scopes, 1_700_000_000, Some(1_800_000_000));
        record.rotate(
            &crate::domain::api_key::ApiKey::generate().unwrap(),
            1_700_000_100,
            60,
        );
        record.sessions_revoked_before = 1_700_000_050_123;
        record.version = 4;
        record
    }

    #[test]
    fn a_key_item_is_its_record_at_the_next_version_under_its_keys() {
        let record = key();
        let item = encode_key(&record).unwrap();
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "all_pk",
                "created_at",
                "expires_at",
                "listed_sk",
                "name",
                "pk",
                "prev_secret_hash",
                "prev_secret_until",
                "scopes",
                "secret_hash",
                "sessions_revoked_before",
                "sk",
                "status",
                "version"
            ],
            "the attributes key items have always had, the listing's keys, and no id beside the pk"
        );
        assert_eq!(item["scopes"], s("read write"));
        assert_eq!(item["version"], n(5));
        assert_eq!(decode_key(&item).unwrap(), record.as_written().unwrap());
    }

    #[test]
    fn a_key_write_sets_every_copy_slot_and_no_copy_is_listed() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DynamoDbStore::new(Client::from_conf(config), "t").with_key_replicas(3);
        let mut record = key();
        record.owner = Some(Owner::parse("acme").unwrap());
        let item = encode_key(&record).unwrap();
        let writes = store.copy_writes(&record.id, &item).unwrap();
        assert_eq!(writes.len(), usize::from(MAX_KEY_REPLICAS) - 1);
        for (n, write) in (1u8..).zip(&writes) {
            let pk = s(format!("KEY#{}#R{n}", record.id));
            match (&write.put, &write.delete) {
                (Some(put), None) if n < 3 => {
                    assert_eq!(put.item["pk"], pk);
                    for listed in [ALL_PK, OWNER_PK, LISTED_SK] {
                        assert!(!put.item.contains_key(listed), "copy {n} has {listed}");
                    }
                    assert_eq!(
                        decode_key(&put.item).unwrap(),
                        decode_key(&item).unwrap(),
                        "copy {n} holds the record"
                    );
                }
                (None, Some(delete)) if n >= 3 => assert_eq!(delete.key["pk"], pk),
                _ => panic!("copy {n}: {write:?}"),
            }
        }
    }

    #[test]
    fn a_key_item_written_before_versions_and_revoke_all_reads_them_as_zero() {
        let mut record = key();
        record.previous_secret = None;
        record.expires_at = None;
        let mut item = encode_key(&record).unwrap();
        item.remove("version");
        item.remove("sessions_revoked_before");
        let read = decode_key(&item).unwrap();
        assert_eq!((read.version, read.sessions_revoked_before), (0, 0));
        assert_eq!((read.previous_secret, read.expires_at), (None, None));
        item.insert("scopes".into(), n(3));
        assert!(matches!(decode_key(&item), Err(StoreError::Internal(_))));
    }

    #[test]
    fn a_wrongly_typed_attribute_is_an_error_not_a_default() {
        let mut item = encode_session(&session()).unwrap();
        item.insert("exp".into(), s("7210"));
        assert!(matches!(
            decode_session(&item),
            Err(StoreError::Internal(_))
        ));
    }
}
