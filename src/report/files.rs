//! Writing report files: the directory, and each file through a temporary one.

use std::path::{Path, PathBuf};

use super::error::ReportError;

pub(crate) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Write `contents` to `dir/name` through a temporary file, so a reader never sees half a file.
pub(crate) fn write_file(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, ReportError> {
    create_dir(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let write_err = |source| ReportError::Write {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, contents).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}
