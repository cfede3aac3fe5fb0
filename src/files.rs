//! Output files written whole or not at all (a temp file beside the target, then a rename),
//! and checked for writability before any load. Used by every writer: reports, the server's
//! stats file.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Writes `bytes` to `path` atomically: a temp file beside it, then a rename, so readers see
/// the old file or the whole new one, never half.
pub fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("could not write '{}'", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("could not write '{}'", path.display()))?;
    // Temp files are created private (0600); a report is for others too. Keep the mode of a
    // file being replaced, else the usual 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("could not write '{}'", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("could not write '{}'", path.display()))?;
    Ok(())
}

/// Fails early (before any load) when an output file could not be written later.
pub fn check_writable(target: Option<&str>) -> anyhow::Result<()> {
    let Some(target) = target.filter(|t| *t != "-") else {
        return Ok(());
    };
    // NOTE: every output flag must pass through here (see `app::run::main`).
    let path = Path::new(target);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::NamedTempFile::new_in(dir).map(drop).map_err(|e| {
        // The OS's reason, without the name of the probe file it could not create.
        let text = e.to_string();
        let why = text.split(" at path ").next().unwrap_or(&text).to_owned();
        anyhow::anyhow!("cannot write there ({why})")
    })
}
