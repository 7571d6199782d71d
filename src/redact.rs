//! Secrets out of anything that is printed: one function, [`redact`], masks the password of
//! every form a store URL, a PostgreSQL DSN or a vCenter server setting can carry it in.
//!
//! It sits at the top of the crate and depends on nothing, so every layer may use it: the
//! store (`describe()`, errors), the admin CLI, the provider's diagnostics, and the logger,
//! which runs it over every line as a last net.
//!
//! Forms handled (each leaves the rest of the text readable):
//! - userinfo of a URL: `postgres://ipam:secret@db/ipam` → `postgres://ipam:***@db/ipam`;
//! - secret query parameters: `...?sslmode=require&password=secret` → `password=***`;
//! - key=value DSNs, quoted or not, with libpq's escapes: `host=db password='a b\'c'` →
//!   `host=db password=***`;
//! - a bare `user:secret@host` value (a vCenter server written without `https://`).
//!
//! When in doubt it masks more: a password holding an unencoded `@` or `/` is still masked
//! whole, at the price of part of the host.

/// Parameter names whose value is a secret (compared without case): libpq's `password` and
/// `sslpassword`, and the spellings other tools use.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "pass" | "passwd" | "pwd")
        || key.contains("password")
        || key.contains("secret")
        || key.contains("token")
}

const MASK: &str = "***";

/// `text` with every password it carries replaced by `***`. `text` may be a URL, a DSN, a
/// bare server value, or free text (a log line, an error) that contains them.
pub fn redact(text: &str) -> String {
    let userinfo_done = mask_userinfo(text);
    mask_key_values(&userinfo_done)
}

/// Masks the password in `scheme://user:password@host`, and in a bare `user:password@host`
/// value. The whole of `text` is one URL when it starts with a scheme; in free text a URL ends
/// at the first whitespace.
fn mask_userinfo(text: &str) -> String {
    let whole_url = scheme_len(text).is_some();
    if !whole_url && !text.contains("://") {
        return mask_bare_userinfo(text).unwrap_or_else(|| text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        // Where this URL ends: the next URL, the end of a whole-URL input, or whitespace.
        let next_url = rest.find("://").unwrap_or(rest.len());
        let end = if whole_url {
            next_url
        } else {
            rest[..next_url]
                .find(char::is_whitespace)
                .unwrap_or(next_url)
        };
        let token = &rest[..end];
        // The last '@' ends the userinfo: an unencoded '@' in a password then stays masked.
        match token.rfind('@') {
            Some(at) if token[..at].contains(':') => {
                let user = token[..at].split(':').next().unwrap_or("");
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
                out.push_str(&token[at..]);
            }
            _ => out.push_str(token),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Length of `scheme://` when `text` starts with one.
fn scheme_len(text: &str) -> Option<usize> {
    let at = text.find("://")?;
    let scheme = &text[..at];
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(at + 3)
}

/// `user:password@host` as a whole value (no whitespace, no scheme).
fn mask_bare_userinfo(text: &str) -> Option<String> {
    if text.is_empty() || text.contains(char::is_whitespace) || text.contains('=') {
        return None;
    }
    let at = text.rfind('@')?;
    let (user, _) = text[..at].split_once(':')?;
    Some(format!("{user}:{MASK}{}", &text[at..]))
}

/// Masks the value of every secret `key=value` pair: URL query parameters (ended by `&`, `#`
/// or whitespace) and DSN pairs (ended by whitespace; `'quoted values'` and backslash escapes
/// as libpq reads them).
fn mask_key_values(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0
            || matches!(
                bytes[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'?' | b'&' | b';' | b',' | b'(' | b'"' | b'{'
            );
        if !at_boundary || !is_key_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let key_start = i;
        let mut j = i;
        while j < bytes.len() && is_key_byte(bytes[j]) {
            j += 1;
        }
        let key = &text[key_start..j];
        let mut k = j;
        while k < bytes.len() && bytes[k] == b' ' {
            k += 1;
        }
        if k >= bytes.len() || bytes[k] != b'=' || !is_secret_key(key) {
            i = j.max(i + 1);
            continue;
        }
        k += 1;
        while k < bytes.len() && bytes[k] == b' ' {
            k += 1;
        }
        let in_query = key_start > 0 && matches!(bytes[key_start - 1], b'?' | b'&');
        let value_end = value_end(text, k, in_query);
        out.push_str(&text[copied..k]);
        out.push_str(MASK);
        copied = value_end;
        i = value_end.max(k);
    }
    out.push_str(&text[copied..]);
    out
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where a value starting at `start` ends (always a char boundary of `text`).
fn value_end(text: &str, start: usize, in_query: bool) -> usize {
    let mut chars = text[start..].char_indices().map(|(i, c)| (start + i, c));
    let quoted = text[start..].starts_with('\'');
    if quoted {
        chars.next();
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            c if !quoted && c.is_whitespace() => return i,
            '&' | '#' if !quoted && in_query => return i,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of secret, each checked for the secret being gone and the rest kept.
    #[test]
    fn masks_every_form() {
        let cases = [
            (
                "postgres://ipam:s3cret@db.example/ipam",
                "postgres://ipam:***@db.example/ipam",
            ),
            (
                "postgresql://ipam:s3cret@db:5432,db2:5432/ipam?sslmode=require",
                "postgresql://ipam:***@db:5432,db2:5432/ipam?sslmode=require",
            ),
            (
                "postgres://ipam@db/ipam?sslmode=disable&password=s3cret&application_name=x",
                "postgres://ipam@db/ipam?sslmode=disable&password=***&application_name=x",
            ),
            (
                "postgres://db/ipam?PassWord=s3cret",
                "postgres://db/ipam?PassWord=***",
            ),
            (
                "host=db port=5432 user=ipam password=s3cret dbname=ipam",
                "host=db port=5432 user=ipam password=*** dbname=ipam",
            ),
            (
                r"host=db password = 's3 cret\'s' dbname=ipam",
                "host=db password = *** dbname=ipam",
            ),
            (
                r"host=db password=s3\ cret sslpassword='k e y' dbname=ipam",
                "host=db password=*** sslpassword=*** dbname=ipam",
            ),
            (
                "https://administrator:s3cret@vc.example:443/sdk",
                "https://administrator:***@vc.example:443/sdk",
            ),
            ("administrator:s3cret@vc.example", "administrator:***@vc.example"),
            // A password with unencoded '@', '/' and '?' is masked whole.
            (
                "postgres://ipam:s3@c/r?et@db/ipam",
                "postgres://ipam:***@db/ipam",
            ),
            // Free text with URLs and DSNs inside.
            (
                "cannot open \"postgres://ipam:s3cret@db/ipam\": refused; dsn host=db password=s3cret",
                "cannot open \"postgres://ipam:***@db/ipam\": refused; dsn host=db password=***",
            ),
        ];
        for (input, want) in cases {
            let got = redact(input);
            assert_eq!(got, want, "redact({input:?})");
            assert!(!got.contains("s3"), "{got}");
        }
    }

    #[test]
    fn leaves_text_without_secrets_alone() {
        for text in [
            "sqlite:///var/lib/vsphereipam/ipam.db",
            "postgres://ipam@db/ipam?sslmode=disable",
            "vc.example:443",
            "https://vc.example/sdk",
            "host=db user=ipam dbname=ipam",
            "logged in as administrator@vsphere.local",
            "10.0.0.1 is already held by vsphereipam_vm \"web\"",
            "",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "password=",
            "password='unterminated",
            "password=trailing\\",
            "://",
            "a://:@",
            "x://u:p@",
            "é password=é ü://ä:ö@ß",
            "?password=&password=",
        ] {
            let out = redact(text);
            assert!(!out.contains("unterminated") && !out.contains("trailing"));
        }
    }
}
