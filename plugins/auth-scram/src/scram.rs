//! The server's half of SCRAM-SHA-256 (RFC 5802, RFC 7677) in two pure
//! steps: [`client_first`] reads the client's first message and makes the
//! server's challenge, [`client_final`] checks the client's proof and makes
//! the server's signature. What the server must remember in between is a
//! [`Pending`], which the broker carries as the exchange's state.
//!
//! Not supported, and refused with a reason: channel binding (`p=`), an
//! authorization identity other than the user, the reserved `m=`
//! extension. Names and passwords are used as their UTF-8 bytes, without
//! SASLprep: ASCII passwords (and any the client also sends unnormalized)
//! work; a client that normalizes non-ASCII passwords differently fails.

use moth_plugin_api::enhanced_auth::{decode_base64, encode_base64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credentials::{Credentials, hmac};

/// What the server remembers between the client's two messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The user the client named (`n=`), decoded.
    pub(crate) user: String,
    /// The GS2 header the client sent (`n,,`), which `c=` must repeat.
    pub gs2_header: String,
    pub(crate) client_first_bare: String,
    pub(crate) server_first: String,
    /// The client's nonce followed by the server's, which `r=` must repeat.
    pub(crate) nonce: String,
}

/// Reads the client-first-message and answers the server-first-message.
/// `credentials` gives the user's salt and iterations: for an unknown user
/// pass made-up ones, so the answer does not tell whether the user exists.
pub(crate) fn client_first(
    message: &[u8],
    server_nonce: &str,
    credentials: impl FnOnce(&str) -> Credentials,
) -> Result<(String, Pending, Credentials), String> {
    let message = std::str::from_utf8(message).map_err(|_| "the client-first-message is not UTF-8")?;
    let (gs2_header, bare) = split_gs2(message)?;
    let mut fields = bare.split(',');
    let user = match fields.next() {
        Some(f) if f.starts_with("m=") => return Err("the reserved m= extension is not supported".into()),
        Some(f) => decode_name(f.strip_prefix("n=").ok_or("the client-first-message has no n=")?)?,
        None => return Err("empty client-first-message".into()),
    };
    let client_nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or("the client-first-message has no r=")?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("the client nonce is empty or not printable".into());
    }
    if let Some(authzid) = gs2_header.strip_suffix(',').and_then(|h| h.split_once(",a=")).map(|(_, a)| a)
        && decode_name(authzid)? != user
    {
        return Err("an authorization identity other than the user is not supported".into());
    }
    let creds = credentials(&user);
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={}", encode_base64(&creds.salt), creds.iterations);
    let pending = Pending {
        user,
        gs2_header: gs2_header.to_string(),
        client_first_bare: bare.to_string(),
        server_first: server_first.clone(),
        nonce,
    };
    Ok((server_first, pending, creds))
}

/// Checks the client-final-message against the user's credentials; answers
/// the server-final-message (`v=` and the server's signature) when the
/// proof is right.
pub(crate) fn client_final(message: &[u8], pending: &Pending, creds: &Credentials) -> Result<String, String> {
    let message = std::str::from_utf8(message).map_err(|_| "the client-final-message is not UTF-8")?;
    let (without_proof, proof) = message.rsplit_once(",p=").ok_or("the client-final-message has no p=")?;
    let mut fields = without_proof.split(',');
    let binding = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or("the client-final-message has no c=")?;
    if decode_base64(binding).ok().as_deref() != Some(pending.gs2_header.as_bytes()) {
        return Err("c= does not repeat the GS2 header".into());
    }
    if fields.next().and_then(|f| f.strip_prefix("r=")) != Some(pending.nonce.as_str()) {
        return Err("r= is not the nonce of this exchange".into());
    }
    let proof = decode_base64(proof).map_err(|e| format!("p=: {e}"))?;
    let auth_message = format!("{},{},{without_proof}", pending.client_first_bare, pending.server_first);
    let client_signature = hmac(&creds.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err("invalid proof".into());
    }
    let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
    let stored_key: [u8; 32] = Sha256::digest(&client_key).into();
    if !bool::from(stored_key.ct_eq(&creds.stored_key)) {
        return Err("invalid proof".into());
    }
    Ok(format!("v={}", encode_base64(&hmac(&creds.server_key, auth_message.as_bytes()))))
}

/// Splits `n,,n=user,r=...` after the GS2 header (`n,,`, `y,,` or with
/// `a=authzid`); channel binding (`p=`) is refused.
fn split_gs2(message: &str) -> Result<(&str, &str), String> {
    let flag_end = message.find(',').ok_or("no GS2 header")?;
    match &message[..flag_end] {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("channel binding is not supported".into()),
        _ => return Err("bad GS2 channel binding flag".into()),
    }
    let authzid_end = message[flag_end + 1..].find(',').ok_or("no GS2 header")? + flag_end + 1;
    Ok((&message[..=authzid_end], &message[authzid_end + 1..]))
}

/// A `saslname`: `=2C` stands for `,` and `=3D` for `=`; no other `=`.
fn decode_name(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("bad escape in a SCRAM name".into()),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err("empty SCRAM user name".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3, the whole exchange.
    #[test]
    fn rfc_7677_example_exchange() {
        let salt = decode_base64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = Credentials::derive(b"pencil", &salt, 4096);
        let (server_first, pending, creds) =
            client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", |u| {
                assert_eq!(u, "user");
                creds.clone()
            })
            .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final_message = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let server_final = client_final(client_final_message, &pending, &creds).unwrap();
        assert_eq!(server_final, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn a_wrong_password_a_replayed_nonce_and_a_changed_header_are_refused() {
        let creds = Credentials::derive(b"pencil", b"salt-salt", 4096);
        let (_, pending, creds) = client_first(b"n,,n=user,r=abc", "xyz", |_| creds.clone()).unwrap();
        let bad_proof = b"c=biws,r=abcxyz,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(client_final(bad_proof, &pending, &creds).unwrap_err(), "invalid proof");
        let other_nonce = b"c=biws,r=abcxyZ,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert!(client_final(other_nonce, &pending, &creds).unwrap_err().contains("nonce"));
        let other_header = b"c=eSws,r=abcxyz,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert!(client_final(other_header, &pending, &creds).unwrap_err().contains("GS2"));
        assert!(client_final(b"c=biws,r=abcxyz", &pending, &creds).unwrap_err().contains("p="));
    }

    #[test]
    fn what_is_not_supported_is_refused_with_a_reason() {
        let creds = |_: &str| Credentials::derive(b"pw", b"salt", 4096);
        for (message, needle) in [
            (&b"p=tls-unique,,n=user,r=abc"[..], "channel binding"),
            (b"n,a=admin,n=user,r=abc", "authorization identity"),
            (b"n,,m=ext,n=user,r=abc", "m= extension"),
            (b"n,,n=us=er,r=abc", "escape"),
            (b"n,,n=user", "r="),
            (b"x,,n=user,r=abc", "flag"),
            (b"n,,n=user,r=a\x01c", "printable"),
            (b"n,,n=,r=abc", "empty"),
        ] {
            let e = client_first(message, "s", creds).unwrap_err();
            assert!(e.contains(needle), "{}: {e}", String::from_utf8_lossy(message));
        }
        let (_, p, _) = client_first(b"n,a=a=2Cb,n=a=2Cb,r=abc", "s", creds).unwrap();
        assert_eq!((p.user.as_str(), p.gs2_header.as_str()), ("a,b", "n,a=a=2Cb,"));
    }
}
