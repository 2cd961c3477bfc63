//! TLS for `amqps://` and `rediss://` (rustls, ring provider): turns the
//! `amqp.tls.*` and `redis.tls.*` files into a rustls client configuration
//! for lapin and into certificates for the Redis client. Verification is on
//! unless `insecure_skip_verify` says otherwise.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use serde::{Deserialize, Serialize};

/// `amqp.tls.*` and `redis.tls.*`: an empty path means unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA(s) to trust instead of the system's roots.
    pub ca_file: String,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// Accept any server certificate. For experiments only.
    pub insecure_skip_verify: bool,
}

/// A TLS file or setting that cannot be used; names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
pub struct TlsError {
    /// The offending key, as in `config/default.toml`.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The configuration keys of one section's TLS settings, for error messages.
#[derive(Debug)]
pub struct Keys {
    /// `<section>.tls.ca_file`.
    pub ca_file: &'static str,
    /// `<section>.tls.cert_file`.
    pub cert_file: &'static str,
    /// `<section>.tls.key_file`.
    pub key_file: &'static str,
}

/// The keys of `amqp.tls.*`.
pub const AMQP_KEYS: Keys = Keys {
    ca_file: "amqp.tls.ca_file",
    cert_file: "amqp.tls.cert_file",
    key_file: "amqp.tls.key_file",
};

/// The keys of `redis.tls.*`.
pub const REDIS_KEYS: Keys = Keys {
    ca_file: "redis.tls.ca_file",
    cert_file: "redis.tls.cert_file",
    key_file: "redis.tls.key_file",
};

/// Makes ring the process's rustls provider; the Redis client asks for it.
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = crypto::ring::default_provider().install_default();
}

/// Checks that the configured files can be read and parsed.
pub fn check(tls: &TlsSettings, keys: &Keys) -> Result<(), TlsError> {
    if !tls.ca_file.is_empty() {
        certificates(&tls.ca_file, keys.ca_file)?;
    }
    identity(tls, keys).map(drop)
}

/// The rustls client configuration of `amqps://` connections.
pub fn client_config(tls: &TlsSettings, keys: &Keys) -> Result<Arc<ClientConfig>, TlsError> {
    install_crypto_provider();
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError {
            key: keys.ca_file,
            reason: format!("rustls: {error}"),
        })?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(tls, keys)?)
    };
    let config = match identity(tls, keys)? {
        Some((chain, key)) => {
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| TlsError {
                    key: keys.key_file,
                    reason: format!("does not fit the certificate: {error}"),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The file at `path`; the error names `key`.
pub fn read(path: &str, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError {
        key,
        reason: format!("cannot read {path}: {error}"),
    })
}

fn certificates(path: &str, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, key)?;
    let invalid = |reason: String| TlsError { key, reason };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("{path}: not PEM certificates: {error}")))?;
    if certificates.is_empty() {
        return Err(invalid(format!("{path} holds no PEM certificate")));
    }
    Ok(certificates)
}

/// The configured CA, or the system's roots when none is configured.
fn roots(tls: &TlsSettings, keys: &Keys) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if tls.ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        return Ok(store);
    }
    for certificate in certificates(&tls.ca_file, keys.ca_file)? {
        store.add(certificate).map_err(|error| TlsError {
            key: keys.ca_file,
            reason: format!("{}: not a usable CA certificate: {error}", tls.ca_file),
        })?;
    }
    Ok(store)
}

/// A client certificate chain and its private key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate chain and key for mutual TLS, when configured.
pub fn identity(tls: &TlsSettings, keys: &Keys) -> Result<Option<Identity>, TlsError> {
    match (tls.cert_file.is_empty(), tls.key_file.is_empty()) {
        (true, true) => Ok(None),
        (false, true) => Err(TlsError {
            key: keys.key_file,
            reason: format!("must be set together with `{}`", keys.cert_file),
        }),
        (true, false) => Err(TlsError {
            key: keys.cert_file,
            reason: format!("must be set together with `{}`", keys.key_file),
        }),
        (false, false) => {
            let chain = certificates(&tls.cert_file, keys.cert_file)?;
            let pem = read(&tls.key_file, keys.key_file)?;
            // The parse error says what is wrong without quoting the key.
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|error| TlsError {
                key: keys.key_file,
                reason: format!("{}: no usable PEM private key ({error})", tls.key_file),
            })?;
            Ok(Some((chain, key)))
        }
    }
}

/// `insecure_skip_verify`: accepts any certificate, but still checks that
/// the server holds its key, so the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS settings naming these files, verification on; for tests.
#[cfg(test)]
pub(crate) fn tls(ca: &str, cert: &str, key: &str) -> TlsSettings {
    TlsSettings {
        ca_file: ca.into(),
        cert_file: cert.into(),
        key_file: key.into(),
        insecure_skip_verify: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_its_key_and_path() {
        let error = check(&tls("/x", "", ""), &AMQP_KEYS).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("invalid `amqp.tls.ca_file`: cannot read /x:"),
            "{text}"
        );
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let error = check(&tls("", "/cert.pem", ""), &REDIS_KEYS).unwrap_err();
        assert_eq!(error.key, "redis.tls.key_file");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("lcm-not-pem-{}", std::process::id()));
        std::fs::write(&path, "hello").unwrap();
        let error = check(&tls(&path.to_string_lossy(), "", ""), &AMQP_KEYS).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn without_files_the_system_roots_are_used() {
        client_config(&TlsSettings::default(), &AMQP_KEYS).unwrap();
        let insecure = TlsSettings {
            insecure_skip_verify: true,
            ..TlsSettings::default()
        };
        client_config(&insecure, &AMQP_KEYS).unwrap();
    }
}
