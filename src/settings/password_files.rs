//! Secrets mounted as files (container orchestrators' habit):
//! `amqp.password_file` and `redis.password_file` put the file's content
//! into the passwords of that section's URLs. The content never appears in
//! a log line or an error message; only the file's path does.

use super::{SecretUrl, Settings, SettingsError};

/// Replaces the password of every AMQP URL and of the Redis URL with the
/// content of the configured password files, when set.
pub(super) fn resolve(settings: &mut Settings) -> Result<(), SettingsError> {
    if let Some(password) = read("amqp.password_file", &settings.amqp.password_file)? {
        let amqp = &mut settings.amqp;
        amqp.url = with_password(&amqp.url, &password, "amqp.url")?;
        for url in &mut amqp.urls {
            *url = with_password(url, &password, "amqp.urls")?;
        }
    }
    if let Some(password) = read("redis.password_file", &settings.redis.password_file)? {
        let redis = &mut settings.redis;
        redis.url = with_password(&redis.url, &password, "redis.url")?;
    }
    Ok(())
}

/// The file's content, trimmed; `None` when `path` is empty.
fn read(key: &'static str, path: &str) -> Result<Option<String>, SettingsError> {
    if path.is_empty() {
        return Ok(None);
    }
    let content = std::fs::read_to_string(path).map_err(|error| SettingsError::Invalid {
        key,
        reason: format!("cannot read {path}: {error}"),
    })?;
    let password = content.trim();
    if password.is_empty() {
        return Err(SettingsError::Invalid {
            key,
            reason: format!("{path} is empty"),
        });
    }
    Ok(Some(password.to_owned()))
}

/// Schemes of a Redis Unix socket, whose password redis-rs takes from the
/// `pass` query key: such a URL has no user info.
const SOCKET_SCHEMES: [&str; 3] = ["unix", "redis+unix", "valkey+unix"];

/// `url` with its password set to `password` (percent-encoded as needed):
/// in the user info, or for a Unix socket in the `pass` query key.
fn with_password(
    url: &SecretUrl,
    password: &str,
    key: &'static str,
) -> Result<SecretUrl, SettingsError> {
    let invalid = |reason: &str| SettingsError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    // The parse error never quotes the URL, which may hold a password.
    let mut parsed = url::Url::parse(url.expose()).map_err(|_| invalid("not a URL"))?;
    if SOCKET_SCHEMES.contains(&parsed.scheme()) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(key, _)| key != "pass")
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair("pass", password);
        return Ok(SecretUrl::new(parsed.to_string()));
    }
    parsed
        .set_password(Some(password))
        .map_err(|()| invalid("this URL cannot carry a password"))?;
    Ok(SecretUrl::new(parsed.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn secret_file(name: &str, content: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("lcm-{name}-{}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, Some(env))
    }

    #[test]
    fn a_password_file_replaces_the_password_of_every_url_and_is_redacted() {
        let path = secret_file("amqp-pw", "s3cr3t/pw\n");
        let path_text = path.to_string_lossy().into_owned();
        let settings = load(&[
            (
                "LCM__AMQP__URLS",
                "amqp://app@a:5672/%2f,amqp://app:old@b:5672/%2f",
            ),
            ("LCM__AMQP__PASSWORD_FILE", &path_text),
        ]);
        std::fs::remove_file(&path).unwrap();
        let settings = settings.unwrap();
        let urls: Vec<&str> = settings.amqp.urls.iter().map(|u| u.expose()).collect();
        assert_eq!(
            urls,
            [
                "amqp://app:s3cr3t%2Fpw@a:5672/%2f",
                "amqp://app:s3cr3t%2Fpw@b:5672/%2f"
            ]
        );
        assert_eq!(
            settings.amqp.url.expose(),
            "amqp://guest:s3cr3t%2Fpw@127.0.0.1:5672/%2f"
        );
        let parsed = url::Url::parse(settings.amqp.urls[0].expose()).unwrap();
        assert_eq!(parsed.password(), Some("s3cr3t%2Fpw"));
        let shown = format!("{:?}", settings);
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn a_redis_password_file_fills_a_url_without_credentials() {
        let path = secret_file("redis-pw", "hunter2");
        let path_text = path.to_string_lossy().into_owned();
        let settings = load(&[
            ("LCM__REDIS__URL", "rediss://cache:6380/0"),
            ("LCM__REDIS__PASSWORD_FILE", &path_text),
        ]);
        std::fs::remove_file(&path).unwrap();
        let settings = settings.unwrap();
        assert_eq!(
            settings.redis.url.expose(),
            "rediss://:hunter2@cache:6380/0"
        );
        assert!(!format!("{:?}", settings).contains("hunter2"));
    }

    #[test]
    fn a_redis_password_file_fills_the_pass_of_a_unix_socket_url() {
        let path = secret_file("socket-pw", "s3cret&=?\n");
        let path_text = path.to_string_lossy().into_owned();
        let settings = load(&[
            (
                "LCM__REDIS__URL",
                "redis+unix:///run/redis.sock?db=2&pass=old",
            ),
            ("LCM__REDIS__PASSWORD_FILE", &path_text),
        ]);
        std::fs::remove_file(&path).unwrap();
        let settings = settings.unwrap();
        let parsed = url::Url::parse(settings.redis.url.expose()).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("db".into(), "2".into()),
                ("pass".into(), "s3cret&=?".into())
            ]
        );
        let shown = format!("{:?}", settings);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("redis+unix:///run/redis.sock?db=2&pass=***"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_or_empty_password_file_names_its_key_but_not_its_content() {
        let error = load(&[("LCM__AMQP__PASSWORD_FILE", "/nonexistent/pw")]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`amqp.password_file`"), "{text}");
        assert!(text.contains("cannot read /nonexistent/pw"), "{text}");

        let path = secret_file("empty-pw", " \n");
        let error = load(&[("LCM__REDIS__PASSWORD_FILE", &path.to_string_lossy())]).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.to_string().contains("`redis.password_file`"),
            "{error}"
        );
    }
}
