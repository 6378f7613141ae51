//! The inbox operation of a batch: a read receipt from the phone.

use super::*;

impl Batch<'_> {
    /// `notice.read@1`: the caller read a notice of their own inbox. The first reading counts
    /// (on a phone or on the console); a later one is applied and changes nothing. The time
    /// kept is the phone's, but never before the notice was made nor after the server got it.
    pub(super) fn notice_read(&mut self, p: &NoticeReadV1) -> OpResult {
        let Some(entry) = self.inbox.get_mut(&p.notice_id) else {
            return rejected(
                ErrorCode::NoticeNotFound,
                "this notice is not in your inbox",
            );
        };
        if entry.read_at.is_none() {
            let at =
                ms_from_time(p.read_at).clamp(entry.created_at, self.now.max(entry.created_at));
            entry.read_at = Some(at);
            self.reads.push((p.notice_id, at));
        }
        OpResult {
            status: OpStatus::Applied,
            entity_id: Some(p.notice_id),
            ..blank()
        }
    }
}
