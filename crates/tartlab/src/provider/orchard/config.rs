//! Where the controller is and who tartlab is to it, found in the order the `orchard` CLI
//! uses: the lab file's `provider.orchard`, then `ORCHARD_URL`,
//! `ORCHARD_SERVICE_ACCOUNT_NAME` and `ORCHARD_SERVICE_ACCOUNT_TOKEN`, then a context of the
//! orchard CLI's own file (`$ORCHARD_HOME/.orchard/orchard.yml`, else `~/.orchard/orchard.yml`;
//! Orchard's internal/config/config.go and orchardhome.go). The token is kept in a
//! `Secret`, which no `Debug`, message or file ever shows.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lab::model::OrchardSpec;
use crate::provider::ProviderError;

/// A token: shown nowhere, compared nowhere, only sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// The controller and the credentials to use with it, with where each came from (for
/// messages that say what to fix).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The base URL, normalized: a scheme, a port, no trailing `/`.
    pub url: String,
    pub account: String,
    pub token: Secret,
    /// Where the account and token came from, in words: "the lab file",
    /// "ORCHARD_SERVICE_ACCOUNT_TOKEN", "the orchard context `x` in FILE".
    pub from: String,
    /// The controller's certificate (PEM) to trust alone, if one is pinned.
    pub certificate: Option<Vec<u8>>,
}

/// One context of the orchard CLI's file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    url: Option<String>,
    #[serde(rename = "serviceAccountName")]
    service_account_name: Option<String>,
    #[serde(rename = "serviceAccountToken")]
    service_account_token: Option<String>,
    /// The controller's certificate: base64 of its PEM text.
    certificate: Option<String>,
}

/// The orchard CLI's file: its contexts and which is the default.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContextFile {
    #[serde(rename = "default-context")]
    default_context: Option<String>,
    contexts: BTreeMap<String, Context>,
}

/// The orchard CLI's file: `$ORCHARD_HOME/.orchard/orchard.yml`, else under `$HOME`.
pub fn context_file_path() -> Option<PathBuf> {
    let home = std::env::var_os("ORCHARD_HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var_os("HOME"))?;
    Some(Path::new(&home).join(".orchard").join("orchard.yml"))
}

/// The context the lab names, else the file's default; `None` without a file. Never
/// writes the file (the orchard CLI makes a `default` context when it reads one without).
fn read_context(name: Option<&str>) -> Result<Option<(String, Context, PathBuf)>, ProviderError> {
    let Some(path) = context_file_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.is_none() => return Ok(None),
        Err(e) => {
            return Err(ProviderError::new(
                format!("cannot read the orchard context file {}: {e}", path.display()),
                "check the file, or give `url`, `service_account` and `token_env` under `provider.orchard` in the lab file",
            ))
        }
    };
    // Without snippets: the lines around a mistake can hold any context's token.
    let options = serde_saphyr::options! { with_snippet: false };
    let mut file: ContextFile =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
            ProviderError::new(
                format!(
                    "the orchard context file {} is not what orchard writes: {e}",
                    path.display()
                ),
                "fix it with `orchard context create`, or give the controller in the lab file",
            )
        })?;
    let wanted = name.map(str::to_string).or(file.default_context.clone());
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    match file.contexts.remove(&wanted) {
        Some(context) => Ok(Some((wanted, context, path))),
        None if name.is_some() => Err(ProviderError::new(
            format!(
                "the orchard context file {} has no context `{wanted}` (it has: {})",
                path.display(),
                file.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            "fix `provider.orchard.context` in the lab file, or list them with `orchard context list`",
        )),
        None => Ok(None),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A URL as the orchard CLI takes it: `https://` when it has no scheme, `:6120` when it has
/// no port, no trailing `/`.
pub fn normalize_url(url: &str) -> Result<String, String> {
    normalize(url)
        .map_err(|why| why.replace(url.trim().trim_end_matches('/'), &without_userinfo(url)))
}

/// `url` for messages: whatever stands between `://` (or the start) and the last `@` of its
/// authority, a user and a token perhaps, replaced by `…`.
fn without_userinfo(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}…{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

fn normalize(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let (scheme, rest) = with_scheme
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}` is not an http or https URL"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "`{url}` has no host, or has credentials in it (give them as `service_account` and `token_env`)"
        ));
    }
    // A port is after the last `:`, outside an IPv6 address's brackets.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']') && !port.is_empty());
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:6120")
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// The controller and credentials for `spec`, from the lab file, the environment and the
/// orchard CLI's file, in that order.
pub fn resolve(spec: &OrchardSpec, lab_dir: &Path) -> Result<Credentials, ProviderError> {
    let context = read_context(spec.context.as_deref())?;
    let context_words = |what: &str| match &context {
        Some((name, _, path)) => {
            format!(
                "the orchard context `{name}` in {} has no {what}",
                path.display()
            )
        }
        None => "there is no orchard context file".to_string(),
    };
    let (ctx_url, ctx_account, ctx_token, ctx_certificate) = match &context {
        Some((_, c, _)) => (
            c.url.clone(),
            c.service_account_name.clone(),
            c.service_account_token.clone(),
            c.certificate.clone(),
        ),
        None => (None, None, None, None),
    };
    let certificate = match (&spec.certificate, &spec.url, ctx_certificate) {
        (Some(path), _, _) => Some(read_certificate(path, lab_dir)?),
        // The context's certificate goes with the context's controller.
        (None, None, Some(encoded)) if env("ORCHARD_URL").is_none() => Some(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
                .map_err(|e| {
                    ProviderError::new(
                        format!("the orchard context's certificate is not base64: {e}"),
                        "fix the context with `orchard context create`, or give `certificate:` in the lab file",
                    )
                })?,
        ),
        _ => None,
    };
    let context_from = context
        .as_ref()
        .map(|(name, _, path)| format!("the orchard context `{name}` in {}", path.display()));
    let context_url = ctx_url.as_deref().and_then(|u| normalize_url(u).ok());
    let url = spec
        .url
        .clone()
        .or_else(|| env("ORCHARD_URL"))
        .or(ctx_url)
        .ok_or_else(|| {
            ProviderError::new(
                format!("no Orchard controller is named: `provider.orchard` has no `url`, ORCHARD_URL is not set, and {}", context_words("url")),
                "add `url: https://HOST:6120` under `provider.orchard` in the lab file",
            )
        })?;
    let url = normalize_url(&url).map_err(|why| {
        ProviderError::new(
            format!("the Orchard controller's URL: {why}"),
            "write it as `https://HOST:6120` (or `http://` for a controller run with --insecure-no-tls)",
        )
    })?;
    let (account, account_from) = if let Some(a) = &spec.service_account {
        (a.clone(), "the lab file".to_string())
    } else if let Some(a) = env("ORCHARD_SERVICE_ACCOUNT_NAME") {
        (a, "ORCHARD_SERVICE_ACCOUNT_NAME".to_string())
    } else if let Some(a) = ctx_account {
        (a, context_from.clone().unwrap_or_default())
    } else {
        return Err(ProviderError::new(
            format!("no Orchard service account is named: `provider.orchard` has no `service_account`, ORCHARD_SERVICE_ACCOUNT_NAME is not set, and {}", context_words("serviceAccountName")),
            "add `service_account: NAME` under `provider.orchard` (an account with the roles compute:read and compute:write)",
        ));
    };
    let (token, token_from) = if let Some(t) = &spec.token {
        (t.clone(), "the lab file's `token`".to_string())
    } else if let Some(var) = &spec.token_env {
        let token = env(var).ok_or_else(|| {
            ProviderError::new(
                format!("the lab file takes the Orchard token from ${var}, which is not set"),
                format!("set it (`export {var}=...`, the token of service account {account}), or change `token_env`"),
            )
        })?;
        (token, format!("${var}"))
    } else if let Some(t) = env("ORCHARD_SERVICE_ACCOUNT_TOKEN") {
        (t, "ORCHARD_SERVICE_ACCOUNT_TOKEN".to_string())
    } else if let Some(t) = ctx_token.filter(|_| {
        // The context's token goes only to the context's controller, as its certificate
        // does: never to a URL a lab file or ORCHARD_URL named.
        context_url.as_deref() == Some(url.as_str())
    }) {
        (t, context_from.unwrap_or_default())
    } else {
        return Err(ProviderError::new(
            format!("no token for the Orchard service account {account}: `provider.orchard` has no `token_env`, ORCHARD_SERVICE_ACCOUNT_TOKEN is not set, and {}", context_words("serviceAccountToken")),
            "add `token_env: VARIABLE` under `provider.orchard` and put the token in that variable",
        ));
    };
    if certificate.is_some() && url.starts_with("http://") {
        return Err(ProviderError::new(
            format!("a controller certificate is pinned, but {url} is plain http: nothing would be verified, and the token would travel in clear"),
            "use the controller's https:// URL, or remove `certificate` for a controller run with --insecure-no-tls",
        ));
    }
    Ok(Credentials {
        url,
        account,
        token: Secret::new(token),
        from: format!("the account from {account_from}, its token from {token_from}"),
        certificate,
    })
}

/// The PEM file a lab file pins: absolute, `~/...`, or relative to the lab file.
fn read_certificate(path: &str, lab_dir: &Path) -> Result<Vec<u8>, ProviderError> {
    let full = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => lab_dir.join(path),
    };
    std::fs::read(&full).map_err(|e| {
        ProviderError::new(
            format!(
                "cannot read the Orchard controller's certificate {}: {e}",
                full.display()
            ),
            "fix `provider.orchard.certificate` (the controller's controller.crt, in its data directory)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_in_it_is_refused_without_showing_them() {
        let why = normalize_url("https://ci:s3cret-token@ctl.example:6120").unwrap_err();
        assert!(!why.contains("s3cret"), "{why}");
        assert!(why.contains("https://…@ctl.example:6120"), "{why}");
        let why = normalize_url("ftp://ci:s3cret-token@ctl").unwrap_err();
        assert!(!why.contains("s3cret"), "{why}");
    }

    #[test]
    fn urls_get_a_scheme_and_a_port_as_the_orchard_cli_gives_them() {
        assert_eq!(
            normalize_url("orchard.example.com").unwrap(),
            "https://orchard.example.com:6120"
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:7000/").unwrap(),
            "http://127.0.0.1:7000"
        );
        assert_eq!(
            normalize_url("https://[::1]/prefix").unwrap(),
            "https://[::1]:6120/prefix"
        );
        assert!(normalize_url("ftp://x").is_err());
        assert!(normalize_url("https://user:pw@host").is_err());
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let creds = Credentials {
            url: "http://x:1".into(),
            account: "a".into(),
            token: secret,
            from: String::new(),
            certificate: None,
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn the_context_file_is_read_as_orchard_writes_it() {
        let text = "default-context: bootstrap-context\ncontexts:\n  bootstrap-context:\n    url: https://127.0.0.1:6120\n    certificate: LS0t\n    serviceAccountName: bootstrap-admin\n    serviceAccountToken: 'p@ss'\n";
        let file: ContextFile = serde_saphyr::from_str(text).unwrap();
        assert_eq!(file.default_context.as_deref(), Some("bootstrap-context"));
        let context = &file.contexts["bootstrap-context"];
        assert_eq!(
            context.service_account_name.as_deref(),
            Some("bootstrap-admin")
        );
        assert_eq!(context.service_account_token.as_deref(), Some("p@ss"));
    }
}
