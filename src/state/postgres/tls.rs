//! TLS for the PostgreSQL store by rustls (ring), as libpq's `sslmode` asks: encrypted
//! without verification (`prefer`, `require`), a trusted chain (`verify-ca`), or a
//! trusted chain issued for the host (`verify-full`). A small connector on tokio-rustls
//! rather than tokio-postgres-rustls: it offers no channel binding, which SCRAM does not
//! need, and spares the x509 parser that binding would bring.

use super::config::{Config, RootCert, SslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// Makes a TLS connection per connection attempt, with the verification `sslmode` asks.
#[derive(Clone)]
pub(super) struct MakeTls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeTls {
    /// The connector for `config`'s `sslmode` and `sslrootcert`; `Err` is a message for
    /// people (a root file that cannot be read, no roots for a verifying mode).
    pub(super) fn new(config: &Config) -> Result<MakeTls, String> {
        crate::api::client::install_tls_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?;
        let roots = match &config.sslrootcert {
            Some(root) => Some(root.clone()),
            // libpq's default root file, when it is there.
            None => home_root_file().filter(|path| path.is_file()).map(RootCert::File),
        };
        let verify = match (config.sslmode, &roots) {
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Verify::Nothing,
            (SslMode::Require | SslMode::VerifyCa, Some(_)) => Verify::Chain,
            (SslMode::VerifyFull, Some(_)) => Verify::Full,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(format!(
                    "sslmode={} needs trusted roots: name a PEM file with sslrootcert=FILE (or put it at ~/.postgresql/root.crt){}",
                    if config.sslmode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" },
                    if config.sslmode == SslMode::VerifyFull { ", or use sslrootcert=system" } else { "" }
                ));
            }
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (verify, roots) {
            (Verify::Nothing, _) | (_, None) => Arc::new(Unverified { provider }),
            (Verify::Full, Some(RootCert::System)) => Arc::new(
                rustls_platform_verifier::Verifier::new(provider)
                    .map_err(|error| format!("the system's roots: {error}"))?,
            ),
            // Refused when the URL is parsed; a hand-made Config is refused here.
            (_, Some(RootCert::System)) => return Err("sslrootcert=system needs sslmode=verify-full".into()),
            (verify, Some(RootCert::File(path))) => {
                let mut store = rustls::RootCertStore::empty();
                let certificates = CertificateDer::pem_file_iter(&path)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
                let (added, _) = store.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(format!("sslrootcert {}: no certificate in it", path.display()));
                }
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
                match verify {
                    Verify::Full => webpki,
                    _ => Arc::new(AnyName { inner: webpki }),
                }
            }
        };
        let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        Ok(MakeTls { config: Arc::new(config) })
    }
}

/// libpq's default `sslrootcert`.
fn home_root_file() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    Some(std::path::PathBuf::from(home).join(".postgresql").join("root.crt"))
}

#[derive(Clone, Copy)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, io::Error> {
        // Asked for every connection, TLS or not (a unix socket has no name): a name
        // that cannot be verified fails only a handshake that needs it.
        let name = ServerName::try_from(domain.to_string()).map_err(|error| error.to_string());
        Ok(Connect { config: self.config.clone(), name })
    }
}

/// One connection's TLS handshake.
pub(super) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: Result<ServerName<'static>, String>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, io::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let name = self
                .name
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("the host's name: {error}")))?;
            connector.connect(name, stream).await.map(TlsStream)
        })
    }
}

/// A TLS connection to the server.
pub(super) struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `prefer` and `require` (without roots), as libpq: encrypted, the certificate not
/// checked; the handshake's signatures still are.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
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
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name it was issued for is
/// not checked.
#[derive(Debug)]
struct AnyName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
