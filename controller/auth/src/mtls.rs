//! Mutual TLS: the server's TLS settings and the client certificate's
//! subject common name.
//!
//! Trust is decided in the handshake: rustls verifies the client's chain
//! against the configured CA bundle, so a certificate from any other CA (or
//! an expired one) never reaches a service. Build the server's TLS settings
//! with [`server_tls_config`]. tonic then records the verified chain in each
//! request's extensions (`TlsConnectInfo<TcpConnectInfo>`), where
//! [`peer_common_name`] finds the leaf and reads its subject CN.

use std::{path::Path, sync::Arc};

use http::Extensions;
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tonic::transport::{
    Certificate, Identity, ServerTlsConfig,
    server::{TcpConnectInfo, TlsConnectInfo},
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{
    config::MtlsConfig,
    error::{AuthError, Result},
    reject::RejectReason,
};

/// The server's TLS settings: its own certificate and key, and — when
/// `mtls` is set — the client CA bundle, with client certificates required
/// or optional as configured. Without `mtls`, clients are not asked for a
/// certificate.
///
/// tonic builds its rustls configuration with the process-wide crypto
/// provider; this installs ring as that provider unless one is installed
/// already, so the server works even if another crate also enables rustls'
/// aws-lc-rs backend.
pub fn server_tls_config(identity: Identity, mtls: Option<&MtlsConfig>) -> Result<ServerTlsConfig> {
    // An error only means a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = ServerTlsConfig::new().identity(identity);
    let Some(mtls) = mtls else {
        return Ok(tls);
    };
    let pem = read_ca_bundle(&mtls.client_ca_file)?;
    Ok(tls
        .client_ca_root(Certificate::from_pem(pem))
        .client_auth_optional(!mtls.require_client_cert))
}

/// Reads a PEM bundle and checks it holds at least one certificate and
/// nothing unparsable, so a broken file fails at start-up instead of
/// silently trusting no one.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<u8>> {
    const WHAT: &str = "client CA bundle";
    let pem = std::fs::read(path).map_err(|source| AuthError::ReadFile {
        what: WHAT,
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |reason: &str| AuthError::ParsePem {
        what: WHAT,
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| parse_error("malformed PEM"))?;
    if certs.is_empty() {
        return Err(parse_error("no CERTIFICATE block"));
    }
    for cert in &certs {
        X509Certificate::from_der(cert)
            .map_err(|_| parse_error("a certificate is not valid X.509"))?;
    }
    Ok(pem)
}

/// The verified client chain tonic recorded for this request's connection,
/// if the client presented one.
pub fn peer_certificates(extensions: &Extensions) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .filter(|certs| !certs.is_empty())
}

/// The subject CN of the leaf certificate. Exactly one CN, valid text and
/// non-empty, is required.
pub fn peer_common_name(leaf: &CertificateDer<'_>) -> Result<String, RejectReason> {
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|_| RejectReason::CertificateUnusable)?;
    let mut names = cert.subject().iter_common_name();
    let (Some(cn), None) = (names.next(), names.next()) else {
        return Err(RejectReason::CertificateUnusable);
    };
    match cn.as_str() {
        Ok(s) if !s.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(RejectReason::CertificateUnusable),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn cert_with(dn: DistinguishedName) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = dn;
        params.self_signed(&key).expect("sign").der().clone()
    }

    #[test]
    fn reads_the_single_common_name() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "City of Example");
        dn.push(DnType::CommonName, "ci.health");
        assert_eq!(peer_common_name(&cert_with(dn)), Ok("ci.health".to_owned()));
    }

    #[test]
    fn refuses_no_or_blank_common_name() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "No CN Inc");
        assert_eq!(
            peer_common_name(&cert_with(dn)),
            Err(RejectReason::CertificateUnusable)
        );
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, " ");
        assert_eq!(
            peer_common_name(&cert_with(dn)),
            Err(RejectReason::CertificateUnusable)
        );
        assert_eq!(
            peer_common_name(&CertificateDer::from(vec![0x30, 0x00])),
            Err(RejectReason::CertificateUnusable)
        );
    }

    #[test]
    fn ca_bundle_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        assert!(matches!(
            read_ca_bundle(&empty),
            Err(AuthError::ParsePem { .. })
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            read_ca_bundle(&missing),
            Err(AuthError::ReadFile { .. })
        ));
        let key = KeyPair::generate().expect("key");
        let ca = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&key)
            .expect("ca");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).expect("write");
        assert!(read_ca_bundle(&good).is_ok());
    }
}
