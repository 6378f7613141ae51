//! What waits for the people who decide, in a user's scope: cases awaiting review, with
//! incomplete evidence, with integrity flags, and overdue — the overdue ones also per zone and per
//! accountable person (the zone, road and section chiefs on the roster now), so the console's
//! overview can say who is behind, not only how many.

use gridline_sync::Role;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::ApiResult;
use crate::store::review::{self as store_review, OverviewCounts};
use crate::store::{reference, Db};

/// The roles that answer for a zone's cases: they are who an overdue case is late for.
pub const ACCOUNTABLE: [Role; 3] = [Role::ZoneChief, Role::RoadChief, Role::SectionChief];

/// Overdue cases of one accountable person: the zones they are rostered on now, in one role.
#[derive(Debug, Clone)]
pub struct PersonOverdue {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    /// Their zones with overdue cases, with each zone's count.
    pub zones: Vec<(Uuid, i64)>,
    pub overdue: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub counts: OverviewCounts,
    /// Overdue cases per zone, most first.
    pub overdue_by_zone: Vec<(Uuid, i64)>,
    /// Overdue cases per accountable person, most first.
    pub overdue_by_person: Vec<PersonOverdue>,
}

/// The overview of `user`'s scope at `now` (Unix ms).
pub async fn overview(db: &Db, user: &AuthUser, now: i64) -> ApiResult<Overview> {
    let zones = crate::ledger::closing::scoped_zones(db, user, None).await?;
    let counts =
        store_review::overview_counts(&db.pool, zones.as_deref(), user.confidential_reader(), now)
            .await?;
    let by_zone = store_review::overdue_by_zone(&db.pool, zones.as_deref(), now).await?;
    let roster = reference::roster(&db.pool, None, None, Some(now)).await?;
    let mut people: Vec<PersonOverdue> = Vec::new();
    for r in roster.iter().filter(|r| ACCOUNTABLE.contains(&r.role)) {
        let theirs: Vec<(Uuid, i64)> = by_zone
            .iter()
            .filter(|(z, _)| r.zone_id.is_none_or(|mine| mine == *z))
            .copied()
            .collect();
        if theirs.is_empty() {
            continue;
        }
        match people
            .iter_mut()
            .find(|p| p.user_id == r.user_id && p.role == r.role)
        {
            Some(p) => {
                for z in theirs {
                    if !p.zones.iter().any(|(have, _)| *have == z.0) {
                        p.zones.push(z);
                    }
                }
            }
            None => people.push(PersonOverdue {
                user_id: r.user_id,
                username: r.username.clone(),
                role: r.role,
                zones: theirs,
                overdue: 0,
            }),
        }
    }
    for p in &mut people {
        p.overdue = p.zones.iter().map(|(_, n)| n).sum();
    }
    people.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then(a.role.cmp(&b.role))
            .then(a.username.cmp(&b.username))
    });
    Ok(Overview {
        counts,
        overdue_by_zone: by_zone,
        overdue_by_person: people,
    })
}

/// An open case for the map, and whether it is past its deadline.
#[derive(Debug, Clone)]
pub struct OpenCase {
    pub case: crate::store::cases::CaseRow,
    pub overdue: bool,
}

/// The newest open cases in `user`'s scope, at most `limit`, each with whether it is overdue
/// at `now` (Unix ms): what the console's map draws.
pub async fn open_cases(
    db: &Db,
    user: &AuthUser,
    limit: i64,
    now: i64,
) -> ApiResult<Vec<OpenCase>> {
    let scope = user.scope(db).await?;
    let open =
        crate::store::cases::open_newest(db, scope.zones(), user.confidential_reader(), limit)
            .await?;
    let ids: Vec<Uuid> = open.iter().map(|c| c.id).collect();
    let mut conn = db.pool.acquire().await?;
    let workflows = store_review::workflows(&mut conn, &ids).await?;
    Ok(open
        .into_iter()
        .map(|case| {
            let deadline = workflows.get(&case.id).and_then(|w| w.deadline_at);
            let overdue = gridline_sync::workflow::is_overdue(case.state, deadline, now);
            OpenCase { case, overdue }
        })
        .collect())
}
