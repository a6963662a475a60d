//! UserSig against the vendor's own vectors (tests/fixtures/usersig-vectors.json,
//! made by the official tls-sig-api-v2 Python package with the clock pinned).

use grattr::api::usersig::{self, SecretKey};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    sdkappid: u64,
    key: String,
    identifier: String,
    expire: u64,
    time: u64,
    userbuf: Option<String>,
    usersig: String,
    tls_sig: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("fixtures/usersig-vectors.json");
    serde_json::from_str::<Vectors>(text).unwrap().vectors
}

fn standard_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn our_tls_sig_equals_the_vendors_for_every_case() {
    let vectors = vectors();
    assert!(vectors.len() >= 6);
    for v in &vectors {
        let key = SecretKey::new(v.key.clone()).unwrap();
        let userbuf = v.userbuf.as_ref().map(|u| standard_base64(u.as_bytes()));
        let ours = usersig::tls_sig(&key, &v.identifier, v.sdkappid, v.time, v.expire, userbuf.as_deref());
        assert_eq!(ours, v.tls_sig, "identifier {}", v.identifier);
    }
}

#[test]
fn every_vendor_usersig_decodes_and_verifies() {
    for v in vectors() {
        let key = SecretKey::new(v.key.clone()).unwrap();
        let claims = usersig::verify(&key, &v.usersig, v.sdkappid, &v.identifier, v.time).unwrap();
        assert_eq!((claims.sdkappid, claims.time, claims.expire), (v.sdkappid, v.time, v.expire));
        assert_eq!(claims.sig, v.tls_sig);
        // The last valid second, and the first invalid one.
        assert!(usersig::verify(&key, &v.usersig, v.sdkappid, &v.identifier, v.time + v.expire).is_ok());
        let expired = usersig::verify(&key, &v.usersig, v.sdkappid, &v.identifier, v.time + v.expire + 1);
        assert_eq!(expired.unwrap_err().code(), 70001);
    }
}

#[test]
fn ours_verify_and_match_the_vendors_signature() {
    for v in vectors().into_iter().filter(|v| v.userbuf.is_none()) {
        let key = SecretKey::new(v.key.clone()).unwrap();
        let ours = usersig::generate(&key, v.sdkappid, &v.identifier, v.expire, v.time);
        let claims = usersig::verify(&key, ours.expose(), v.sdkappid, &v.identifier, v.time).unwrap();
        assert_eq!(claims.sig, v.tls_sig, "the decoded signature is the vendor's");
    }
}

#[test]
fn each_wrong_input_fails_with_its_own_code() {
    let v = &vectors()[0];
    let key = SecretKey::new(v.key.clone()).unwrap();
    let wrong_key = SecretKey::new(v.key.replace('5', "6")).unwrap();
    let check = |key: &SecretKey, sdkappid, identifier: &str, now| {
        usersig::verify(key, &v.usersig, sdkappid, identifier, now).unwrap_err().code()
    };
    assert_eq!(check(&wrong_key, v.sdkappid, &v.identifier, v.time), 70009);
    assert_eq!(check(&key, v.sdkappid, "someone-else", v.time), 70013);
    assert_eq!(check(&key, v.sdkappid + 1, &v.identifier, v.time), 70014);
    assert_eq!(check(&key, v.sdkappid, &v.identifier, v.time + v.expire + 1), 70001);
    let mangled = format!("x{}", &v.usersig[1..]);
    assert_eq!(usersig::verify(&key, &mangled, v.sdkappid, &v.identifier, v.time).unwrap_err().code(), 70003);
}
