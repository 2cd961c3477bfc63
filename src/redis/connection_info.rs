//! A Redis URL, with the `redis.tls.*` files for `rediss://`, as the
//! client's connection info.

use deadpool_redis::redis::{self, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::settings::tls::{identity, install_crypto_provider, read, TlsError, REDIS_KEYS};
use crate::settings::TlsSettings;

/// The Redis connection info for `url`, with the CA, client certificate and
/// verification settings of `tls` when the URL is `rediss://`.
pub fn connection_info(url: &str, tls: &TlsSettings) -> Result<ConnectionInfo, TlsError> {
    let invalid = |key, reason| TlsError { key, reason };
    let info = url
        .into_connection_info()
        .map_err(|e| invalid("redis.url", format!("not a Redis URL ({:?})", e.kind())))?;
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        return Ok(info);
    }
    install_crypto_provider();
    let keys = &REDIS_KEYS;
    let root_cert = match tls.ca_file.as_str() {
        "" => None,
        path => Some(read(path, keys.ca_file)?),
    };
    let client_tls = match identity(tls, keys)? {
        Some(_) => Some(redis::ClientTlsConfig {
            client_cert: read(&tls.cert_file, keys.cert_file)?,
            client_key: read(&tls.key_file, keys.key_file)?,
        }),
        None => None,
    };
    let info = if root_cert.is_some() || client_tls.is_some() {
        let certificates = redis::TlsCertificates {
            client_tls,
            root_cert,
        };
        redis::Client::build_with_tls(info, certificates)
            .map_err(|e| invalid(keys.ca_file, format!("unusable TLS files: {e}")))?
            .get_connection_info()
            .clone()
    } else {
        info
    };
    if !tls.insecure_skip_verify {
        return Ok(info);
    }
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls {
            host,
            port,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: true,
            tls_params,
        },
        other => other,
    };
    Ok(info.set_addr(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tls::tls;

    #[test]
    fn a_plain_redis_url_is_left_alone_and_a_tls_one_may_skip_verification() {
        let plain = connection_info("redis://127.0.0.1:6379", &tls("/x", "", "")).unwrap();
        assert!(matches!(plain.addr(), ConnectionAddr::Tcp(..)));
        let insecure = TlsSettings {
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        let info = connection_info("rediss://cache:6380", &insecure).unwrap();
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
    }
}
