//! The identity of a TLS client: the subject common name (CN) of the
//! certificate it presented, read straight from the DER bytes.
//!
//! Pure and small on purpose: the broker needs one field of an already
//! verified certificate (rustls did the verification), so a minimal DER walk
//! is enough and spares an X.509 parsing dependency. Anything unexpected
//! gives `None`, never a panic: the bytes come from the network.

/// OID 2.5.4.3 (id-at-commonName), DER-encoded contents.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` at the start of a v2/v3 `TBSCertificate`.
const CONTEXT_0: u8 = 0xa0;

/// The subject CN of a DER certificate; when the subject holds several, the
/// last one (the most specific, as OpenSSL and Mosquitto pick it).
pub(crate) fn subject_common_name(cert_der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    // TBSCertificate: [0] version?, serial, signature, issuer, validity, subject, ...
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == CONTEXT_0 {
        rest = after;
    }
    for _ in 0..4 {
        let (_, _, after) = element(rest)?;
        rest = after;
    }
    let (tag, subject, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut found = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (tag, rdn, after) = element(rdns)?;
        rdns = after;
        if tag != SET {
            return None;
        }
        let mut attributes = rdn;
        while !attributes.is_empty() {
            let (tag, attribute, after) = element(attributes)?;
            attributes = after;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = element(attribute)?;
            if tag == OID && oid == OID_COMMON_NAME {
                let (_, text, _) = element(value)?;
                found = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    found
}

/// Splits one DER element off `input`: (tag, contents, what follows).
/// Only the single-byte tags and definite lengths DER allows.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with(subject: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_the_common_name() {
        let der = cert_with(&[(DnType::OrganizationName, "Acme"), (DnType::CommonName, "sensor-42")]);
        assert_eq!(subject_common_name(&der).as_deref(), Some("sensor-42"));
    }

    #[test]
    fn no_common_name_is_none() {
        let der = cert_with(&[(DnType::OrganizationName, "Acme")]);
        assert_eq!(subject_common_name(&der), None);
    }

    #[test]
    fn garbage_and_truncated_input_is_none_not_a_panic() {
        let der = cert_with(&[(DnType::CommonName, "x")]);
        for cut in 0..der.len() {
            let _ = subject_common_name(&der[..cut]);
        }
        assert_eq!(subject_common_name(b""), None);
        assert_eq!(subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
