//! The client's half of SCRAM-SHA-256 (RFC 5802, RFC 7677), written from
//! the RFC apart from the `scram` plugin's half, so that the two check each
//! other; and the credentials PostgreSQL (and the plugin) store for a
//! password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn salted(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// What PostgreSQL (and `moth passwd -H scram-sha-256`) stores for a password.
pub fn stored(password: &str, salt: &[u8], iterations: u32) -> String {
    let s = salted(password, salt, iterations);
    let stored_key = Sha256::digest(hmac(&s, b"Client Key"));
    let server_key = hmac(&s, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// The client's half of one SCRAM-SHA-256 exchange.
pub struct Scram {
    password: String,
    bare: String,
    nonce: String,
    /// The server signature a genuine broker answers with.
    expected: Option<String>,
}

impl Scram {
    pub fn new(user: &str, password: &str, nonce: &str) -> Scram {
        Scram { password: password.into(), bare: format!("n={user},r={nonce}"), nonce: nonce.into(), expected: None }
    }

    pub fn client_first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.bare))
    }

    pub fn client_final(&mut self, server_first: &[u8]) -> Bytes {
        let server_first = std::str::from_utf8(server_first).expect("server-first-message is text");
        let attr = |k: &str| {
            server_first.split(',').find_map(|f| f.strip_prefix(k)).unwrap_or_else(|| panic!("{k} in {server_first}"))
        };
        let nonce = attr("r=");
        assert!(nonce.starts_with(&self.nonce) && nonce.len() > self.nonce.len(), "the server extends our nonce");
        let salt = STANDARD.decode(attr("s=")).expect("salt is base64");
        let s = salted(&self.password, &salt, attr("i=").parse().expect("iterations"));
        let client_key = hmac(&s, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = hmac(&Sha256::digest(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        self.expected = Some(format!("v={}", STANDARD.encode(hmac(&hmac(&s, b"Server Key"), auth_message.as_bytes()))));
        Bytes::from(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    pub fn proves_the_server(&self, server_final: Option<&Bytes>) -> bool {
        server_final.map(|d| d.as_ref()) == self.expected.as_ref().map(|e| e.as_bytes())
    }
}
