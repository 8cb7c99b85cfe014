//! Standard Webhooks 1.0 secrets and signatures: a secret is `whsec_` +
//! base64 of random bytes; a signature is `v1,` + base64 of HMAC-SHA256,
//! keyed with the secret's bytes, over `"{id}.{timestamp}.{body}"`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the standard asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_` secret (None when it is not one).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(PREFIX)?)
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `webhook-signature` header value for one message.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // new_from_slice accepts keys of any length for HMAC
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).map(|k| k.len()), Some(SECRET_BYTES));
        assert_ne!(new_secret(), s);
        assert_eq!(secret_key("nope"), None);
        assert_eq!(secret_key("whsec_!!!"), None);
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_example() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
