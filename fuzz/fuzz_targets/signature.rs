//! Signature verification: any header bytes against any body. Only the exact HMAC of the body
//! passes; the form check agrees with `verify` on what is malformed; nothing panics.
#![no_main]

use alphadome::webhook::{check_form, sign, verify, SignatureError};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-app-secret";

fuzz_target!(|data: &[u8]| {
    // The first byte says how long the header is; the rest is the body.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = rest.split_at((n as usize).min(rest.len()));
    let good = sign(SECRET, body);
    let result = verify(SECRET, body, Some(header));
    assert_eq!(result.is_ok(), header == good.as_bytes());
    match check_form(Some(header)) {
        Ok(()) => assert!(!matches!(result, Err(SignatureError::Malformed(_)))),
        Err(e) => assert_eq!(result, Err(e)),
    }
    assert_eq!(verify(SECRET, body, Some(good.as_bytes())), Ok(()));
    assert_eq!(verify(SECRET, body, None), Err(SignatureError::Missing));
});
