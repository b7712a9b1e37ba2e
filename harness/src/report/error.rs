//! What can go wrong while rendering or writing reports.

use std::io;
use std::path::PathBuf;

/// A report could not be rendered or written; I/O errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create report directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot render the JUnit report")]
    Junit(#[source] junit_report::Error),
    #[error("cannot render run.json")]
    Json(#[source] serde_json::Error),
    #[error("cannot render index.html")]
    Html(#[source] minijinja::Error),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a chaosgate run.json: {reason}", path.display())]
    NotARun { path: PathBuf, reason: String },
}
