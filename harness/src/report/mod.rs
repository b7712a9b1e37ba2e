//! Reporters: views of a run's history and verdicts (console, JUnit XML,
//! run.json, the HTML page).

pub mod compare;
pub mod console;
mod error;
pub mod html;
pub mod json;
pub mod junit;
pub mod model;
#[cfg(test)]
mod sample;
mod text;

pub use console::{DEFAULT_WIDTH, render_console, render_console_width};
pub use error::ReportError;
pub use html::render_html;
pub use json::render_json;
pub use junit::render_junit;
#[cfg(test)]
pub(crate) use sample::sample_report;

use model::RunReport;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `junit.xml`, `run.json` and `index.html` into `dir`, creating it,
/// and returns the paths written.
pub fn write_all(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let junit_path = dir.join("junit.xml");
    let xml = render_junit(report)?;
    fs::write(&junit_path, xml).map_err(|source| ReportError::Write {
        path: junit_path.clone(),
        source,
    })?;
    let json_path = dir.join("run.json");
    write_json_file(report, &json_path)?;
    let html_path = dir.join("index.html");
    let html = render_html(report)?;
    fs::write(&html_path, html).map_err(|source| ReportError::Write {
        path: html_path.clone(),
        source,
    })?;
    Ok(vec![junit_path, json_path, html_path])
}

fn write_json_file(report: &RunReport, path: &Path) -> Result<(), ReportError> {
    let io_error = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(io_error)?);
    json::write_json(report, &mut out).map_err(|e| match e.io_error_kind() {
        // serde_json wraps the writer's I/O errors; report them against the file.
        Some(_) => io_error(e.into()),
        None => ReportError::Json(e),
    })?;
    out.write_all(b"\n").map_err(io_error)?;
    out.flush().map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_all_creates_the_directory_and_the_files() {
        let dir = std::env::temp_dir().join(format!("chaosgate-report-{}", std::process::id()));
        let nested = dir.join("nested");
        let paths = write_all(&sample_report(), &nested).expect("writes");
        assert_eq!(
            paths,
            vec![nested.join("junit.xml"), nested.join("run.json"), nested.join("index.html")]
        );
        let json = fs::read_to_string(&paths[1]).expect("run.json");
        assert!(json.contains("\"schema_version\":2"));
        let xml = fs::read_to_string(&paths[0]).expect("junit.xml");
        assert!(xml.starts_with("<?xml"));
        let html = fs::read_to_string(&paths[2]).expect("index.html");
        assert!(html.starts_with("<!DOCTYPE html>"));
        fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn io_errors_name_the_file() {
        let file = std::env::temp_dir().join(format!("chaosgate-report-file-{}", std::process::id()));
        fs::write(&file, "not a directory").expect("setup");
        let err = write_all(&sample_report(), &file.join("sub")).expect_err("cannot create under a file");
        assert!(err.to_string().contains(&file.display().to_string()), "{err}");
        fs::remove_file(&file).expect("cleans up");
    }
}
