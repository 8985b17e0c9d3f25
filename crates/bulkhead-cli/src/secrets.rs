//! Where the master key and the admin token come from: a file given on the command line (or in
//! `serve`'s config file), else the environment, else a development one kept in the data directory
//! (generated loudly on first use by the commands that open the data directory, read by `admin`
//! next to a development server). Also `bulkhead generate-master-key`.

use anyhow::{Context, Result};
use bulkhead_query::{MASTER_KEY_ENV, MasterKey};
use bulkhead_server::{ADMIN_TOKEN_ENV, APPROVER_TOKEN_ENV, AdminToken};
use std::path::{Path, PathBuf};

/// The development master key's file in the data directory.
pub(crate) const DEV_MASTER_KEY: &str = "dev-master.key";

/// The development admin token's file in the data directory.
pub(crate) const DEV_ADMIN_TOKEN: &str = "dev-admin.token";

/// `bulkhead generate-master-key FILE`.
pub(crate) fn generate_master_key(file: &Path) -> Result<()> {
    MasterKey::generate().write_new_file(file).with_context(|| format!("writing {}", file.display()))
}

/// The master key: from `--master-key-file`, else the environment, else a development key kept in the
/// data directory (created on first use, with a warning).
pub(crate) fn master_key(data_dir: &Path, file: Option<&Path>) -> Result<MasterKey> {
    if let Some(file) = file {
        return Ok(MasterKey::from_file(file)?);
    }
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        return Ok(MasterKey::from_env(MASTER_KEY_ENV)?);
    }
    let dev_key = development_file(
        data_dir,
        DEV_MASTER_KEY,
        |path| Ok(MasterKey::generate().write_new_file(path)?),
        &format!(
            "generated a DEVELOPMENT master key inside the data directory; anyone who can read the directory \
             can read the data. Use --master-key-file or {MASTER_KEY_ENV} in production"
        ),
    )?;
    Ok(MasterKey::from_file(&dev_key)?)
}

/// The development secret `name` in the data directory; if it is not there yet, it is made with
/// `write` (which never overwrites a file) and `warning` is logged with its path.
fn development_file(
    data_dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<()>,
    warning: &str,
) -> Result<PathBuf> {
    let path = data_dir.join(name);
    if !path.exists() {
        std::fs::create_dir_all(data_dir)?;
        write(&path)?;
        tracing::warn!(path = %path.display(), "{warning}");
    }
    Ok(path)
}

/// The admin token from `file`, else from the environment; `None` when neither is given.
fn explicit_admin_token(file: Option<&Path>) -> Result<Option<AdminToken>> {
    if let Some(file) = file {
        return Ok(Some(AdminToken::from_file(file)?));
    }
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) => Ok(Some(AdminToken::new(token).with_context(|| format!("reading {ADMIN_TOKEN_ENV}"))?)),
        Err(_) => Ok(None),
    }
}

/// The admin token of `bulkhead serve`: from the file, else the environment, else a development token
/// kept in the data directory (created on first use, loudly). With whether it is the development
/// one (whose IssueApiKey may issue any key, not only a tenant's first).
pub(crate) fn server_admin_token(data_dir: &Path, file: Option<&Path>) -> Result<(AdminToken, bool)> {
    if let Some(token) = explicit_admin_token(file)? {
        return Ok((token, false));
    }
    let dev = development_file(
        data_dir,
        DEV_ADMIN_TOKEN,
        |path| Ok(AdminToken::generate().write_new_file(path)?),
        &format!(
            "generated a DEVELOPMENT admin token inside the data directory; anyone who can read it \
             administers every tenant. Use --admin-token-file or {ADMIN_TOKEN_ENV} in production"
        ),
    )?;
    Ok((AdminToken::from_file(&dev)?, true))
}

/// The approver token (the second credential of break-glass grants): from the file, else the
/// environment; `None` when neither is given. Never generated: break-glass stays off until an
/// operator sets one up.
pub(crate) fn approver_token(file: Option<&Path>) -> Result<Option<AdminToken>> {
    if let Some(file) = file {
        return Ok(Some(AdminToken::from_file_named(file, "approver token")?));
    }
    match std::env::var(APPROVER_TOKEN_ENV) {
        Ok(token) => {
            Ok(Some(AdminToken::new(token).with_context(|| format!("reading {APPROVER_TOKEN_ENV}"))?))
        }
        Err(_) => Ok(None),
    }
}

/// The admin token of `bulkhead admin`: from the file, else the environment, else the development
/// token of a server running on the same data directory.
pub(crate) fn client_admin_token(data_dir: &Path, file: Option<&Path>) -> Result<AdminToken> {
    if let Some(token) = explicit_admin_token(file)? {
        return Ok(token);
    }
    AdminToken::from_file(&data_dir.join(DEV_ADMIN_TOKEN)).with_context(|| {
        format!(
            "no admin token: pass --admin-token-file, set {ADMIN_TOKEN_ENV}, or run next to a development \
             server"
        )
    })
}
