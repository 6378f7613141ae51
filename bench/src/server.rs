//! The server under test: in-process on `127.0.0.1:0`, on a fresh database loaded with the demo
//! subdistrict, with rate limiting off (a fleet of simulated phones is not abuse) and tokens
//! that outlive the run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gridline_server::config::{BlobBackend, Config, Secret};
use gridline_server::AppState;
use tokio::sync::oneshot;

use super::{Backend, Options};

/// A database made for the run; dropped (PostgreSQL) or deleted with its folder (SQLite).
pub struct Database {
    pub backend: Backend,
    pub url: String,
    /// `(admin URL, database name)` of a PostgreSQL database to drop at the end.
    pg: Option<(String, String)>,
}

impl Database {
    /// A new, empty database: a file in `dir`, or a new PostgreSQL database.
    pub async fn create(backend: Backend, opts: &Options, dir: &Path) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => Ok(Database {
                backend,
                url: format!("sqlite://{}?mode=rwc", dir.join("gridline.db").display()),
                pg: None,
            }),
            Backend::Postgres => {
                let (url, name) = gridline_testkit::create_postgres_database(&opts.postgres_url)
                    .await
                    .with_context(|| format!("create a database on {}", opts.postgres_url))?;
                Ok(Database {
                    backend,
                    url,
                    pg: Some((opts.postgres_url.clone(), name)),
                })
            }
        }
    }

    /// A copy of this database as it stands (no server may be connected to it): the SQLite
    /// file copied into `dir`, or a PostgreSQL database made from it as a template.
    pub async fn snapshot(&self, dir: &Path) -> anyhow::Result<Database> {
        match &self.pg {
            None => {
                let src = sqlite_path(&self.url);
                let dst = dir.join("snapshot.db");
                // `VACUUM INTO` copies what is committed, including what still sits in the
                // write-ahead log; copying the main file alone could miss the last commits
                // (the devices just enrolled), and the limit's inserts then fail their
                // foreign keys.
                use sqlx::Connection;
                let mut conn =
                    sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", src.display()))
                        .await
                        .context("open the SQLite file to copy it")?;
                let target = dst.display().to_string().replace('\'', "''");
                sqlx::Executor::execute(&mut conn, format!("VACUUM INTO '{target}'").as_str())
                    .await
                    .context("copy the SQLite file (VACUUM INTO)")?;
                conn.close().await?;
                Ok(Database {
                    backend: self.backend,
                    url: format!("sqlite://{}?mode=rwc", dst.display()),
                    pg: None,
                })
            }
            Some((admin, name)) => {
                use sqlx::Connection;
                let copy = format!("{name}_snap");
                let mut conn = sqlx::postgres::PgConnection::connect(admin).await?;
                sqlx::Executor::execute(
                    &mut conn,
                    format!("CREATE DATABASE {copy} TEMPLATE {name}").as_str(),
                )
                .await
                .context("copy the PostgreSQL database")?;
                conn.close().await?;
                Ok(Database {
                    backend: self.backend,
                    url: self.url.replacen(name.as_str(), &copy, 1),
                    pg: Some((admin.clone(), copy)),
                })
            }
        }
    }

    pub async fn drop_now(mut self) {
        if let Some((admin, name)) = self.pg.take() {
            gridline_testkit::drop_postgres_database(&admin, &name).await;
        }
    }
}

fn sqlite_path(url: &str) -> PathBuf {
    let path = url.trim_start_matches("sqlite://");
    PathBuf::from(path.split('?').next().unwrap_or(path))
}

/// A running server.
pub struct Server {
    pub base: String,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts the server on `db`, keeping keys in `data_dir` (a restart on the same folder keeps
    /// issued tokens valid). Loads the demo subdistrict if the database has none.
    pub async fn start(db: &Database, data_dir: &Path) -> anyhow::Result<Server> {
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            database_url: Some(Secret::new(db.url.clone())),
            ..Config::default()
        };
        config.blob.backend = BlobBackend::Memory;
        config.limits.requests_per_minute = 0;
        config.auth.access_ttl_secs = 24 * 3600;
        let state = AppState::build(config).await?;
        gridline_server::demo::load(&state, gridline_server::demo::DemoSite::English).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gridline_server::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Ok(Server {
            base: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops serving and closes every database connection.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.state.db.pool.close().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
