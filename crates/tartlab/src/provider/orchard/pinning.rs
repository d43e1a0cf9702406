//! Trusting one controller certificate and nothing else, as the orchard CLI pins the
//! certificate a controller makes itself (a self-signed leaf, serial 0, named
//! `orchard-controller` whatever host serves it; shared/orchard-api.md §3.4): the server's
//! certificate must be the pinned one, byte for byte, and the handshake is still verified
//! against its key. rustls with ring, as the rest of tartlab's TLS.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::provider::ProviderError;

/// Accepts exactly the pinned certificate.
#[derive(Debug)]
struct PinnedCertificate {
    pinned: CertificateDer<'static>,
    crypto: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the controller's certificate is not the one pinned in the lab file (or the orchard context)".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.crypto
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client set-up that trusts the certificate in `pem` alone, speaking HTTP/1.1 (the
/// port-forward is an HTTP/1.1 upgrade).
pub fn client_config(pem: &[u8]) -> Result<rustls::ClientConfig, ProviderError> {
    let pinned = CertificateDer::from_pem_slice(pem).map_err(|e| {
        ProviderError::new(
            format!("the pinned Orchard controller certificate is not a PEM certificate: {e}"),
            "give the controller's controller.crt (from its data directory) as `provider.orchard.certificate`",
        )
    })?;
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificate {
        pinned,
        crypto: crypto.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProviderError::new(format!("TLS set-up: {e}"), ""))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
