//! `sessions`: one row per session; rotation is a compare-and-swap on its generation.

use super::{insert_events, Backend, NewEvent, Store};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub generation: i64,
    pub nonce: String,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub remember_me: bool,
    pub cookie_transport: bool,
    pub created_at: i64,
    pub last_used_at: i64,
    pub rotated_at: i64,
    pub rotated_by_device: Option<String>,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// SHA-256 (hex) of the `Idempotency-Key` of the request that made the last rotation.
    pub rotated_by_key: Option<String>,
    /// The thumbprint of the DPoP key the session is bound to (see `dpop`).
    pub dpop_jkt: Option<String>,
    /// How the user signed in (RFC 8176 `amr` values: `pwd`, `email`, `otp`, `recovery`).
    pub amr: Vec<String>,
    /// The assurance level of the sign-in: 2 with a second factor.
    pub aal: i64,
    /// Until when (unix ms) a step-up raised the session to level 2.
    pub step_up_until: Option<i64>,
}

impl SessionRow {
    /// The session ends at the earlier of its idle and absolute deadlines.
    pub fn ends_at(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

const SESSION_COLUMNS: &str = "id, user_id, generation, nonce, device_id, user_agent, ip, \
    remember_me, cookie_transport, created_at, last_used_at, rotated_at, rotated_by_device, \
    idle_expires_at, absolute_expires_at, revoked_at, revoked_reason, rotated_by_key, dpop_jkt, \
    amr, aal, step_up_until";

impl Store {
    /// Inserts a session with its events (sign-in, new device), in one transaction, and
    /// records the sign-in on the user; `Ok(false)` (nothing stored) when the account is
    /// disabled or deleted. The user's row is written first: a concurrent disabling or
    /// deletion (which writes it too, then ends the sessions) either comes after this
    /// session exists, and ends it, or is seen here.
    pub async fn insert_session(
        &self,
        s: &SessionRow,
        events: &[&NewEvent],
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let may = sqlx::query(
            "UPDATE users SET last_sign_in_at = $1 WHERE id = $2 AND deleted_at IS NULL \
             AND (disabled_until IS NULL OR disabled_until <= $1)",
        )
        .bind(s.created_at)
        .bind(&s.user_id)
        .execute(&mut *tx)
        .await?;
        if may.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, generation, nonce, device_id, user_agent, ip, \
             remember_me, cookie_transport, created_at, last_used_at, rotated_at, \
             rotated_by_device, idle_expires_at, absolute_expires_at, dpop_jkt, amr, aal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.generation)
        .bind(&s.nonce)
        .bind(&s.device_id)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .bind(i64::from(s.remember_me))
        .bind(i64::from(s.cookie_transport))
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.rotated_at)
        .bind(&s.rotated_by_device)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.dpop_jkt)
        .bind(serde_json::to_string(&s.amr).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
        .bind(s.aal)
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        self.published(events);
        Ok(true)
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| session_row(&r))
        .transpose()
    }

    /// Many rotations (group commit) and their `token_refreshed` events in one transaction:
    /// a rotation is never stored without its event, nor an event without its rotation, nor
    /// (on PostgreSQL) without its DPoP proof's record. Returns the sessions that rotated and
    /// those left out because their proof was used before; each session id may appear once.
    /// Not to be given up halfway: on SQLite the transaction spans the statements of one query,
    /// and a caller dropped while they run could leave the writer inside it (`Rotator` runs it
    /// in a task of its own).
    pub async fn rotate_batch(&self, all: &[OwnedRotation]) -> Result<Rotations, sqlx::Error> {
        if self.backend == Backend::Postgres {
            return self.rotate_batch_in_one_statement(all).await;
        }
        // SQLite remembers DPoP proofs in the process (`ReplayCache`): none come here.
        let batch: Vec<&OwnedRotation> = all.iter().filter(|r| r.proof.is_none()).collect();
        if batch.is_empty() {
            return Ok(Rotations {
                rotated: HashSet::new(),
                replayed: HashSet::new(),
            });
        }
        // The batch is one argument, a JSON array of rows (`RotationRow`) that the query
        // copies once into a table of this connection: a statement with `$N` arguments costs
        // SQLite and sqlx time quadratic in their number to bind (each lookup of a numbered
        // argument walks the list of them), which at 64 rotations of nineteen arguments was
        // a third of the server's CPU; and one text serves every size of batch, so the
        // statement is prepared once.
        let rows = RotationRow::json(&batch)?;
        // One round trip to SQLite's thread, one transaction: the rotations that will happen
        // are chosen once (compare-and-swap, and fewer than `hlimit` refreshes of the session
        // counted since `hsince`) and marked; then their events, their counted refreshes and
        // the rotations themselves. `BEGIN IMMEDIATE` takes the write lock first, waiting for
        // it: with another instance on the same file, a transaction that read first would be
        // refused at once (SQLITE_BUSY) if that instance committed between its read and its
        // first write.
        const SQL: &str = "BEGIN IMMEDIATE; \
             CREATE TEMP TABLE IF NOT EXISTS rotation_batch (id TEXT NOT NULL, gen INTEGER, \
             now INTEGER, dev TEXT, idle INTEGER, ip TEXT, ua TEXT, rkey TEXT, e_user TEXT, \
             e_at INTEGER, e_type TEXT, e_sev TEXT, e_sid TEXT, e_dev TEXT, e_ip TEXT, \
             e_detail TEXT, hkey TEXT, hlimit INTEGER, hsince INTEGER, \
             rotating INTEGER NOT NULL DEFAULT 0); \
             DELETE FROM temp.rotation_batch; \
             INSERT INTO temp.rotation_batch (id, gen, now, dev, idle, ip, ua, rkey, e_user, \
             e_at, e_type, e_sev, e_sid, e_dev, e_ip, e_detail, hkey, hlimit, hsince) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
             value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, \
             value ->> 11, value ->> 12, value ->> 13, value ->> 14, value ->> 15, \
             value ->> 16, value ->> 17, value ->> 18 FROM json_each($1); \
             UPDATE temp.rotation_batch AS v SET rotating = 1 WHERE EXISTS (SELECT 1 FROM \
             sessions WHERE sessions.id = v.id AND sessions.generation = v.gen \
             AND sessions.revoked_at IS NULL AND sessions.idle_expires_at > v.now \
             AND sessions.absolute_expires_at > v.now) \
             AND (v.hkey IS NULL OR (SELECT COUNT(*) FROM rate_hits h \
             WHERE h.key = v.hkey AND h.at > v.hsince) < v.hlimit); \
             INSERT INTO audit_events (user_id, at, type, severity, session_id, device_id, ip, \
             detail) SELECT v.e_user, v.e_at, v.e_type, v.e_sev, v.e_sid, v.e_dev, v.e_ip, \
             v.e_detail FROM temp.rotation_batch AS v WHERE v.rotating = 1; \
             INSERT INTO rate_hits (key, at) SELECT v.hkey, v.now FROM temp.rotation_batch AS v \
             WHERE v.hkey IS NOT NULL AND v.rotating = 1; \
             UPDATE sessions SET generation = sessions.generation + 1, \
             rotated_at = v.now, rotated_by_device = v.dev, last_used_at = v.now, \
             idle_expires_at = v.idle, ip = v.ip, user_agent = v.ua, rotated_by_key = v.rkey \
             FROM temp.rotation_batch AS v WHERE sessions.id = v.id AND v.rotating = 1 \
             RETURNING sessions.id; COMMIT";
        let mut conn = self.writer.acquire().await?;
        let q = sqlx::query(SQL).bind(rows);
        let done = async {
            q.fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<HashSet<String>, _>>()
        }
        .await;
        let done = done.map(|rotated| {
            let events: Vec<&NewEvent> = batch
                .iter()
                .filter(|r| rotated.contains(&r.session_id))
                .map(|r| &r.event)
                .collect();
            (rotated, events)
        });
        match done {
            Ok((rotated, events)) => {
                self.published(&events);
                Ok(Rotations {
                    rotated,
                    replayed: HashSet::new(),
                })
            }
            Err(e) => {
                // Nothing of the batch stays: the transaction is rolled back, and a connection
                // that could not say so is closed rather than handed out inside it.
                match sqlx::query("ROLLBACK").execute(&mut *conn).await {
                    Err(r) if !self.memory && !r.to_string().contains("no transaction") => {
                        let _ = conn.close().await;
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// `rotate_batch` on PostgreSQL: the proofs' records, the compare-and-swap and the events
    /// as one statement (data-modifying `WITH` parts, one transaction by themselves), so a
    /// batch costs one round trip instead of five (begin, proofs, rotations, events, commit).
    async fn rotate_batch_in_one_statement(
        &self,
        all: &[OwnedRotation],
    ) -> Result<Rotations, sqlx::Error> {
        // A proof presented for two sessions of the batch is used once: the first (in the
        // batch's order) has it, the other is a replay.
        let mut claimed = HashSet::new();
        let mut replayed = HashSet::new();
        let batch: Vec<&OwnedRotation> = all
            .iter()
            .filter(|r| match &r.proof {
                Some((id, _)) if !claimed.insert(id.as_str()) => {
                    replayed.insert(r.session_id.clone());
                    false
                }
                _ => true,
            })
            .collect();
        if batch.is_empty() {
            return Ok(Rotations {
                rotated: HashSet::new(),
                replayed,
            });
        }
        // The batch is one argument, as on SQLite (`RotationRow`): one statement text for every
        // size of batch, prepared once per connection instead of once per size, and no
        // parsing and planning of a VALUES list of 21 arguments per rotation.
        let rows = RotationRow::json(&batch)?;
        // The proofs go in in one order for every instance's batches (no deadlock between
        // them); a rotation whose proof was not new is left out of the compare-and-swap; a
        // rotation whose compare-and-swap fails still has its proof recorded (it was used); a
        // rotation happens only with fewer than `hlimit` refreshes of its session counted
        // since `hsince` (`under`), and is counted (`h`). The count is made once per rotation
        // in `v`, a materialised CTE: in the compare-and-swap's join the planner may run a
        // condition once per pair of rows (a count per session per rotation in the batch).
        const SQL: &str = "WITH r AS (SELECT e ->> 0 AS id, (e ->> 1)::bigint AS gen, \
             (e ->> 2)::bigint AS now, e ->> 3 AS dev, (e ->> 4)::bigint AS idle, e ->> 5 AS ip, \
             e ->> 6 AS ua, e ->> 7 AS rkey, e ->> 8 AS e_user, (e ->> 9)::bigint AS e_at, \
             e ->> 10 AS e_type, e ->> 11 AS e_sev, e ->> 12 AS e_sid, e ->> 13 AS e_dev, \
             e ->> 14 AS e_ip, e ->> 15 AS e_detail, e ->> 16 AS hkey, \
             (e ->> 17)::bigint AS hlimit, (e ->> 18)::bigint AS hsince, e ->> 19 AS proof, \
             (e ->> 20)::bigint AS proof_exp \
             FROM jsonb_array_elements(CAST($1 AS TEXT)::jsonb) AS e), \
             v AS MATERIALIZED (SELECT r.*, (r.hkey IS NULL OR (SELECT COUNT(*) FROM rate_hits \
             h WHERE h.key = r.hkey AND h.at > r.hsince) < r.hlimit) AS under FROM r), \
             p AS (INSERT INTO dpop_proofs (id, expires_at) SELECT proof, proof_exp FROM v \
             WHERE proof IS NOT NULL ORDER BY proof ON CONFLICT (id) DO NOTHING RETURNING id), \
             u AS (UPDATE sessions SET generation = sessions.generation + 1, \
             rotated_at = v.now, rotated_by_device = v.dev, last_used_at = v.now, \
             idle_expires_at = v.idle, ip = v.ip, user_agent = v.ua, rotated_by_key = v.rkey \
             FROM v WHERE sessions.id = v.id AND sessions.generation = v.gen \
             AND sessions.revoked_at IS NULL AND sessions.idle_expires_at > v.now \
             AND sessions.absolute_expires_at > v.now \
             AND (v.proof IS NULL OR v.proof IN (SELECT id FROM p)) \
             AND v.under RETURNING sessions.id), \
             h AS (INSERT INTO rate_hits (key, at) SELECT v.hkey, v.now FROM v \
             JOIN u ON u.id = v.id WHERE v.hkey IS NOT NULL), \
             e AS (INSERT INTO audit_events (user_id, at, type, severity, session_id, \
             device_id, ip, detail) SELECT v.e_user, v.e_at, v.e_type, v.e_sev, v.e_sid, \
             v.e_dev, v.e_ip, v.e_detail FROM v JOIN u ON u.id = v.id) \
             SELECT 'p' AS what, id FROM p UNION ALL SELECT 'r' AS what, id FROM u";
        let q = sqlx::query(SQL).bind(rows);
        let mut new = HashSet::new();
        let mut rotated = HashSet::new();
        for row in q.fetch_all(&self.writer).await? {
            let (what, id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            if what == "p" {
                new.insert(id);
            } else {
                rotated.insert(id);
            }
        }
        for r in &batch {
            if r.proof.as_ref().is_some_and(|(id, _)| !new.contains(id)) {
                replayed.insert(r.session_id.clone());
            }
        }
        let events: Vec<&NewEvent> = batch
            .iter()
            .filter(|r| rotated.contains(&r.session_id))
            .map(|r| &r.event)
            .collect();
        self.published(&events);
        Ok(Rotations { rotated, replayed })
    }

    /// Ends a session for good, with its event, in one transaction; `false` (and no event)
    /// when it had already ended.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            insert_events(&mut tx, &[event]).await?;
            tx.commit().await?;
            self.published(&[event]);
        }
        Ok(done)
    }

    /// Ends every live session of a user, with the event `event(count)`, in one transaction;
    /// returns their ids.
    pub async fn revoke_all(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        event: impl FnOnce(usize) -> NewEvent,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let ids = revoke_all_in(&mut tx, user_id, reason, now).await?;
        let e = event(ids.len());
        insert_events(&mut tx, &[&e]).await?;
        tx.commit().await?;
        self.published(&[&e]);
        Ok(ids)
    }

    /// The user's sessions that are neither revoked nor past their end, newest first.
    pub async fn live_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    /// Every session of the user still stored (live, ended, revoked), newest first.
    pub async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<SessionRow>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY created_at DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    /// Sessions revoked at or after `since` (for the revocation view of every instance).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("revoked_at")?)))
            .collect()
    }

    pub async fn count_live_sessions(&self, now: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL \
             AND idle_expires_at > $1 AND absolute_expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    /// Whether `device_id` was ever used by one of the user's sessions.
    pub async fn device_known(&self, user_id: &str, device_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Whether the user has any session on record (live or ended, within the retention).
    pub async fn has_sessions(&self, user_id: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Deletes sessions that ended before `cutoff`.
    pub async fn purge_sessions(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        let s = sqlx::query(
            "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < $1) \
             OR idle_expires_at < $1 OR absolute_expires_at < $1",
        )
        .bind(cutoff)
        .execute(&self.writer)
        .await?;
        Ok(s.rows_affected())
    }
}

/// What a batch of rotations did, by session id.
#[derive(Debug, Default)]
pub struct Rotations {
    /// The compare-and-swap matched: rotated, with its event (and DPoP proof) stored.
    pub rotated: HashSet<String>,
    /// Left out: its DPoP proof was used before (by this instance or another).
    pub replayed: HashSet<String>,
}

/// A rotation that can wait in a queue, with the event that records it.
#[derive(Debug, Clone)]
pub struct OwnedRotation {
    pub session_id: String,
    pub generation: i64,
    pub now: i64,
    pub device_id: Option<String>,
    pub idle_expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// SHA-256 (hex) of the request's `Idempotency-Key`.
    pub key: Option<String>,
    pub event: NewEvent,
    /// On PostgreSQL, the DPoP proof's row of the replay table (`ReplayCache::shared_row`),
    /// written in the rotation's transaction.
    pub proof: Option<(String, i64)>,
    /// On SQLite, the refresh limit this rotation counts against in its own transaction
    /// a rotation over it does not happen.
    pub limit: Option<RotationLimit>,
}

/// A sliding-window limit (`limits`) checked and counted by a rotation: it happens only while
/// fewer than `limit` attempts of `key` are counted after `since`, and then counts one at its
/// time. The rotations of one session are serialised by its compare-and-swap (on PostgreSQL a
/// batch that waited for the row's lock finds the generation moved on), so a rotation counts
/// every rotation of its session before it. Attempts that do not rotate are counted apart
/// (`limits`); on PostgreSQL a rotation at the same moment may miss those still in flight,
/// since its statement sees what was committed when it started.
#[derive(Debug, Clone)]
pub struct RotationLimit {
    pub key: String,
    pub limit: i64,
    pub since: i64,
}

/// A rotation of a batch as its statement reads it from JSON (`->> N`): its eight columns (id,
/// generation, now, device, idle expiry, address, user agent, request key), its event's eight
/// (`bind_event`'s order), its limit's three (key, limit, start of the window) and its DPoP
/// proof's two (id, expiry; PostgreSQL only). Every text in it is ASCII without control
/// characters (ids, hex digests, header values `to_str` accepted, the server's own words),
/// which PostgreSQL's `jsonb` takes as it is.
#[derive(serde::Serialize)]
struct RotationRow<'a>(
    &'a str,
    i64,
    i64,
    Option<&'a str>,
    i64,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    i64,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    Option<&'a str>,
    Option<i64>,
);

impl<'a> RotationRow<'a> {
    /// The batch's one argument: a JSON array of its rotations' rows.
    fn json(batch: &[&'a OwnedRotation]) -> Result<String, sqlx::Error> {
        serde_json::to_string(&batch.iter().map(|r| Self::of(r)).collect::<Vec<_>>())
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))
    }

    fn of(r: &'a OwnedRotation) -> Self {
        let e = &r.event;
        let limit = r.limit.as_ref();
        Self(
            &r.session_id,
            r.generation,
            r.now,
            r.device_id.as_deref(),
            r.idle_expires_at,
            r.ip.as_deref(),
            r.user_agent.as_deref(),
            r.key.as_deref(),
            e.user_id.as_deref(),
            e.at,
            e.kind,
            e.severity,
            e.session_id.as_deref(),
            e.device_id.as_deref(),
            e.ip.as_deref(),
            &e.detail,
            limit.map(|l| l.key.as_str()),
            limit.map(|l| l.limit),
            limit.map(|l| l.since),
            r.proof.as_ref().map(|(id, _)| id.as_str()),
            r.proof.as_ref().map(|(_, expires_at)| *expires_at),
        )
    }
}

fn session_row(r: &AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        generation: r.try_get("generation")?,
        nonce: r.try_get("nonce")?,
        device_id: r.try_get("device_id")?,
        user_agent: r.try_get("user_agent")?,
        ip: r.try_get("ip")?,
        remember_me: r.try_get::<i64, _>("remember_me")? != 0,
        cookie_transport: r.try_get::<i64, _>("cookie_transport")? != 0,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        rotated_at: r.try_get("rotated_at")?,
        rotated_by_device: r.try_get("rotated_by_device")?,
        idle_expires_at: r.try_get("idle_expires_at")?,
        absolute_expires_at: r.try_get("absolute_expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_reason: r.try_get("revoked_reason")?,
        rotated_by_key: r.try_get("rotated_by_key")?,
        dpop_jkt: r.try_get("dpop_jkt")?,
        amr: serde_json::from_str(&r.try_get::<String, _>("amr")?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        aal: r.try_get("aal")?,
        step_up_until: r.try_get("step_up_until")?,
    })
}

/// Ends every live session of a user inside a transaction; their ids.
pub(super) async fn revoke_all_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
         WHERE user_id = $3 AND revoked_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await
}
