//! The ledger as a person reads it page by page: every entry in their scope with the note of
//! its proposal and the description of its case, which entries have been reversed, and whether
//! the whole chain still verifies.

use std::collections::HashSet;

use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::ApiResult;
use crate::ledger::chain::ChainBreak;
use crate::ledger::closing::scoped_zones;
use crate::store::ledger::{self as store, ExportedEntry};
use crate::store::Db;

/// The entries a reader may see, in chain order, with the chain's check.
pub struct Book {
    pub entries: Vec<ExportedEntry>,
    /// Ids of the entries a reversal points at: they are never reversed again.
    pub reversed: HashSet<String>,
    /// How many entries of the whole chain were checked, and the first that failed.
    pub checked: i64,
    pub broken: Option<ChainBreak>,
}

/// The entries of `period` (or of every period) in `user`'s zones, narrowed to `zone` if given,
/// and the verification of the whole chain (not only the part shown, since a break anywhere
/// puts every later entry in doubt).
pub async fn read(
    db: &Db,
    user: &AuthUser,
    period: Option<Uuid>,
    zone: Option<Uuid>,
) -> ApiResult<Book> {
    let zones = scoped_zones(db, user, zone).await?;
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store::export_entries(&db.pool, period, zones.as_deref(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.entry.seq;
        entries.extend(page);
    }
    let reversed = entries
        .iter()
        .filter_map(|x| x.entry.reverses_id.clone())
        .collect();
    let (checked, broken) = store::verify_chain(&db.pool).await?;
    Ok(Book {
        entries,
        reversed,
        checked,
        broken,
    })
}
