//! Photo evidence: resumable uploads verified by the server, validation, derivatives, links,
//! integrity flags, and memory bounds.
//!
//! Cases and their photo manifests are inserted directly here (the sync push fills them in
//! production): these specs are about what happens to the bytes.

/// Runs each `async fn(Db)` on SQLite and on PostgreSQL; each spec builds its own server.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(gridline_testkit::Db::Sqlite).await; }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(gridline_testkit::Db::Postgres).await; }
            )*
        }
    };
}

mod derivatives;
mod fixtures;
mod garage;
mod integrity;
mod links;
mod memory;
mod upload;
mod validation;

pub(crate) use fixtures::{original, put_photo};
