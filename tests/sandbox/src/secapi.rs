//! WeChat Pay's `secapi` host: the calls that move money back (`/secapi/pay/refund`) need the
//! merchant's client certificate (`apiclient_cert.pem` / `apiclient_key.pem`), so they are served
//! on a second, mutual-TLS listener. At start the sandbox makes its own small PKI in memory: a
//! CA, a server certificate for loopback (and the configured host names), and the merchant's
//! client certificate, whose subject CN is the mch_id as on WeChat's `apiclient_cert.pem`. A
//! client without a certificate from that CA fails the TLS handshake.
//!
//! The merchant's key is RSA 2048, as WeChat's are: API v3 signs every request with it, so the
//! same `apiclient_key.pem` serves both. It is made when first asked for (RSA key generation
//! takes a moment, and most tests never refund or use v3). The CA and the server's key are
//! ECDSA P-256: no merchant sees their keys.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// What a merchant installs to call the sandbox's `secapi`: the CA to trust for the server, and
/// its client certificate and key. All PEM.
#[derive(Clone, Debug)]
pub struct MerchantTls {
    pub ca_pem: String,
    /// `apiclient_cert.pem`.
    pub client_cert_pem: String,
    /// `apiclient_key.pem` (PKCS#8, RSA 2048).
    pub client_key_pem: String,
    /// The certificate's serial number as WeChat Pay writes it: API v3's `serial_no`.
    pub serial_no: String,
}

impl MerchantTls {
    /// Writes the files a merchant configures for WeChat Pay's secapi into `dir`: `ca.pem` (the
    /// CA to trust), and `apiclient_cert.pem` / `apiclient_key.pem` as the merchant platform
    /// hands them out.
    pub fn write_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.pem"), &self.ca_pem)?;
        std::fs::write(dir.join("apiclient_cert.pem"), &self.client_cert_pem)?;
        std::fs::write(dir.join("apiclient_key.pem"), &self.client_key_pem)?;
        Ok(())
    }
}

/// The issued PKI: the CA that signs the merchant's certificate, and the server's TLS
/// configuration.
pub(crate) struct Pki {
    pub ca: Issuer<'static, KeyPair>,
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

fn other(err: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::other(err)
}

/// Issues the CA and the server certificate (loopback plus `hosts`), and builds a server config
/// that requires a client certificate from that CA.
pub(crate) fn issue(hosts: &[String], ip: IpAddr) -> std::io::Result<Pki> {
    let ca_key = KeyPair::generate().map_err(other)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Xintu sandbox WeChat Pay CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(other)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    for host in hosts {
        if !host.is_empty() && !names.contains(host) {
            names.push(host.clone());
        }
    }
    let server_key = KeyPair::generate().map_err(other)?;
    let mut server_params = CertificateParams::new(names).map_err(other)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "api.mch.weixin.qq.com (sandbox)");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &ca).map_err(other)?;

    // Explicitly ring, the provider reqwest's rustls uses: nothing depends on a process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).map_err(other)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(other)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![server_cert.der().clone()];
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(other)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];

    Ok(Pki {
        ca,
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
}

/// Issues the merchant's API certificate for `mch_id`: an RSA 2048 key, and a certificate from
/// the CA whose subject CN is the mch_id, as on WeChat's `apiclient_cert.pem`.
pub(crate) fn issue_merchant(pki: &Pki, mch_id: &str) -> std::io::Result<MerchantTls> {
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(other)?;
    let key_pem = rsa_key.to_pkcs8_pem(LineEnding::LF).map_err(other)?;
    let client_key = KeyPair::from_pem(&key_pem).map_err(other)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    let serial: [u8; 20] = rand::random();
    // A positive DER integer: the first bit clear.
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x10;
    client_params.serial_number = Some(SerialNumber::from_slice(&serial));
    client_params
        .distinguished_name
        .push(DnType::CommonName, mch_id);
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "微信商户系统");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &pki.ca)
        .map_err(other)?;
    let serial_no = serial.iter().map(|b| format!("{b:02X}")).collect();
    Ok(MerchantTls {
        ca_pem: pki.ca_pem.clone(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: key_pem.to_string(),
        serial_no,
    })
}

/// Serves `app` over mutual TLS on `listener` in the background.
pub(crate) fn serve(
    listener: std::net::TcpListener,
    server: Arc<rustls::ServerConfig>,
    app: Router,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(server);
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)?;
    tokio::spawn(async move {
        if let Err(err) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %err, "sandbox secapi listener stopped");
        }
    });
    Ok(())
}
