//! The shipped example subscriptions parse (with their secrets supplied), and
//! bad files are refused with a message that says what to fix.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::collections::BTreeMap;
use std::path::Path;

use delivery::{ConfigError, Subscriptions};
use schemas::Tlp;

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn example() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/subscriptions.toml");
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn example_subscriptions_parse_with_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/ncb-ar.whsec"),
        format!("{SECRET}\n"),
    )
    .unwrap();
    let env: BTreeMap<&str, &str> = [
        ("FUSION_PSEUDONYM_KEY", "a-long-enough-pseudonym-key"),
        ("FUSION_SECRET_NCB_FR", SECRET),
        ("FUSION_SECRET_NCB_DE", SECRET),
        ("FUSION_SECRET_DRILL", SECRET),
        ("FUSION_SECRET_PARTNER_X", SECRET),
    ]
    .into_iter()
    .collect();
    let subs = Subscriptions::parse_with_env(&example(), dir.path(), &|v| {
        env.get(v).map(|s| s.to_string())
    })
    .unwrap();
    assert_eq!(subs.bureaus.len(), 4);
    assert_eq!(subs.partners.len(), 1);
    let fr = subs.bureau("ncb-fr").unwrap();
    assert_eq!(fr.recipient.clearance, Tlp::Amber);
    assert!(fr.recipient.personal_data);
    assert_eq!(fr.recipient.interest.countries, ["FR", "BE", "LU"]);
    assert!(subs.bureau("drill-lyon").unwrap().recipient.drill);
    assert_eq!(subs.partners[0].feedback_min_count, 5);

    // A missing secret is named.
    let err = Subscriptions::parse_with_env(&example(), dir.path(), &|v| {
        (v != "FUSION_SECRET_NCB_DE")
            .then(|| env.get(v).map(|s| s.to_string()))
            .flatten()
    })
    .unwrap_err();
    assert!(err.to_string().contains("FUSION_SECRET_NCB_DE"), "{err}");
}

/// A bureau and a partner with valid fields; `{bureau}` and `{partner}` are extra lines.
fn file(bureau: &str, partner: &str) -> String {
    format!(
        "pseudonym_key = {{ secret_env = \"K\" }}\n\
         [[bureau]]\nid = \"b\"\ncountry = \"FR\"\nendpoint = \"https://b.example/hook\"\n\
         clearance = \"GREEN\"\npersonal_data = false\n{bureau}\n\
         [[partner]]\nid = \"p\"\nfeedback_endpoint = \"https://p.example/feedback\"\n\
         feedback_min_count = 1\n{partner}\n"
    )
}

fn load(text: &str) -> Result<Subscriptions, ConfigError> {
    let env = |_: &str| Some(SECRET.to_string());
    Subscriptions::parse_with_env(text, Path::new("."), &env)
}

#[test]
fn unknown_fields_are_refused_and_a_missing_secret_is_named() {
    let ok = file("secret_env = \"S\"", "secret_env = \"S\"");
    load(&ok).unwrap();
    let none = load(&file("", "secret_env = \"S\"")).unwrap_err();
    assert!(
        none.to_string()
            .contains("exactly one of secret_env or secret_file"),
        "{none}"
    );
    let typo = load(&file(
        "secret_env = \"S\"\nclearence = \"RED\"",
        "secret_env = \"S\"",
    ))
    .unwrap_err();
    assert!(matches!(typo, ConfigError::Parse { .. }), "{typo}");
    assert!(typo.to_string().contains("clearence"), "{typo}");
    assert!(typo.to_string().contains("line 9"), "{typo}");
}

/// Secret material that must never appear in an error message.
const LEAK: &str = "c2VjcmV0LW1hdGVyaWFsLXRoYXQtbXVzdC1uZXZlci1sZWFr";

fn assert_no_secret(err: &ConfigError, secret: &str) {
    let text = format!("{err} {err:?}");
    // Not the secret, nor any 8-character piece of it.
    for i in 0..secret.len().saturating_sub(8) {
        let piece = &secret[i..i + 8];
        assert!(
            !text.contains(piece),
            "{piece:?} of the secret leaked: {text}"
        );
    }
}

#[test]
fn an_inline_secret_in_any_field_is_refused_by_name_without_echoing_it() {
    let whsec = format!("whsec_{LEAK}");
    let s = "secret_env = \"S\"";
    // (file, field the error must name, the secret written in it)
    let cases: Vec<(String, &str, &str)> = vec![
        // The bug report: `secret = "whsec_…"` in a bureau.
        (
            file(&format!("{s}\nsecret = \"{whsec}\""), s),
            "bureau[0].secret",
            &whsec,
        ),
        (
            file(s, &format!("{s}\nsecret = \"{whsec}\"")),
            "partner[0].secret",
            &whsec,
        ),
        // The secret pasted into the fields that only say where it is.
        (
            file(&format!("secret_env = \"{whsec}\""), s),
            "bureau[0].secret_env",
            &whsec,
        ),
        (
            file(&format!("secret_file = \"{whsec}\""), s),
            "bureau[0].secret_file",
            &whsec,
        ),
        (
            file(s, &format!("secret_env = \"{whsec}\"")),
            "partner[0].secret_env",
            &whsec,
        ),
        (
            file(s, &format!("secret_file = \"{whsec}\"")),
            "partner[0].secret_file",
            &whsec,
        ),
        // Without its prefix, as raw base64.
        (
            file(&format!("secret_env = \"{LEAK}\""), s),
            "bureau[0].secret_env",
            LEAK,
        ),
        (
            file(s, &format!("secret_env = \"{LEAK}\"")),
            "partner[0].secret_env",
            LEAK,
        ),
        // Other names a secret goes by, strings or not.
        (
            file(&format!("{s}\nwebhook_token = \"{LEAK}\""), s),
            "bureau[0].webhook_token",
            LEAK,
        ),
        (
            file(&format!("{s}\npassword = \"{LEAK}\""), s),
            "bureau[0].password",
            LEAK,
        ),
        (
            file(&format!("{s}\nsecret = [\"{whsec}\"]"), s),
            "bureau[0].secret[0]",
            &whsec,
        ),
        (
            file(&format!("{s}\nsecret = 1234567890123"), s),
            "bureau[0].secret",
            "1234567890123",
        ),
    ];
    for (text, field, secret) in &cases {
        let err = load(text).unwrap_err();
        assert!(
            err.to_string().contains(&format!("`{field}`")),
            "{field}: {err}"
        );
        assert_no_secret(&err, secret);
    }
    // The pseudonym key, inline or as a secret inside its table.
    let base = file(s, s);
    for (text, field) in [
        (
            base.replace("{ secret_env = \"K\" }", &format!("\"{LEAK}\"")),
            "pseudonym_key",
        ),
        (
            base.replace(
                "{ secret_env = \"K\" }",
                &format!("{{ secret = \"{LEAK}\" }}"),
            ),
            "pseudonym_key.secret",
        ),
        (
            base.replace(
                "{ secret_env = \"K\" }",
                &format!("{{ secret_env = \"{LEAK}\" }}"),
            ),
            "pseudonym_key.secret_env",
        ),
    ] {
        let err = load(&text).unwrap_err();
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        assert_no_secret(&err, LEAK);
    }
    // The inline-secret error says what to do instead.
    let err = load(&cases[0].0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("secret_file") && msg.contains("secret_env") && msg.contains("line 9"),
        "{msg}"
    );
}

#[test]
fn a_broken_line_holding_a_secret_is_not_quoted() {
    // An unterminated string and a stray value on a line with secret material.
    for bad in [
        format!("secret_env = \"whsec_{LEAK}"),
        format!("secret_env = whsec_{LEAK}"),
    ] {
        let err = load(&file(&bad, "secret_env = \"S\"")).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("line 8"), "{err}");
        assert_no_secret(&err, LEAK);
    }
}

#[test]
fn a_malformed_secret_from_a_file_or_the_environment_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    // Not base64: the decoder's own message would name the offending byte and offset.
    let bad = format!("whsec_{LEAK}!!%%");
    std::fs::write(dir.path().join("b.whsec"), &bad).unwrap();
    let text = file("secret_file = \"b.whsec\"", "secret_env = \"S\"");
    let env = |_: &str| Some(SECRET.to_string());
    let err = Subscriptions::parse_with_env(&text, dir.path(), &env).unwrap_err();
    assert!(err.to_string().contains("secret of b"), "{err}");
    assert_no_secret(&err, &bad);
    let env = |v: &str| {
        Some(if v == "S" {
            bad.clone()
        } else {
            SECRET.to_string()
        })
    };
    let text = file("secret_env = \"S\"", "secret_env = \"S\"");
    let err = Subscriptions::parse_with_env(&text, dir.path(), &env).unwrap_err();
    assert_no_secret(&err, &bad);
    // Without the prefix at all.
    let env = |v: &str| {
        Some(if v == "S" {
            LEAK.to_string()
        } else {
            SECRET.to_string()
        })
    };
    let err = Subscriptions::parse_with_env(&text, dir.path(), &env).unwrap_err();
    assert!(err.to_string().contains("whsec_"), "{err}");
    assert_no_secret(&err, LEAK);
    // Credentials in an endpoint URL are secret material too.
    let text = file("secret_env = \"S\"", "secret_env = \"S\"").replace(
        "https://b.example/hook",
        &format!("https://ncb:{LEAK}@b.example/hook"),
    );
    let err = load(&text).unwrap_err();
    assert!(err.to_string().contains("bureau[0].endpoint"), "{err}");
    assert_no_secret(&err, LEAK);
}

#[test]
fn endpoints_must_be_https_or_loopback_http_and_are_named_with_their_value() {
    let s = "secret_env = \"S\"";
    let with = |endpoint: &str| file(s, s).replace("https://b.example/hook", endpoint);
    for bad in [
        "not a url at all",
        "file:///etc/passwd",
        "ftp://b.example/hook",
        "http://ncb-fr.example.int/hook",
    ] {
        let err = load(&with(bad)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{bad}: {msg}");
        assert!(msg.contains("`bureau[0].endpoint`"), "{msg}");
        assert!(msg.contains(bad), "the value is named: {msg}");
        assert!(msg.contains("line 5"), "{msg}");
    }
    for good in [
        "https://b.example/hook",
        "http://127.0.0.1:9100/drill",
        "http://localhost:8080/hook",
        "http://[::1]:8080/hook",
    ] {
        load(&with(good)).unwrap();
    }
    let partner = file(s, s).replace("https://p.example/feedback", "file:///etc/passwd");
    let msg = load(&partner).unwrap_err().to_string();
    assert!(
        msg.contains("`partner[0].feedback_endpoint`") && msg.contains("file:///etc/passwd"),
        "{msg}"
    );
}

#[test]
fn countries_must_be_assigned_iso_codes_and_are_named_with_their_value() {
    let s = "secret_env = \"S\"";
    let cases = [
        (
            file(s, s).replace("country = \"FR\"", "country = \"France\""),
            "`bureau[0].country`",
            "\"France\"",
        ),
        (
            file(&format!("{s}\ncountries = [\"ZZ\", \"\"]"), s),
            "`bureau[0].countries[0]`",
            "\"ZZ\"",
        ),
        (
            file(&format!("{s}\ncountries = [\"FR\", \"\"]"), s),
            "`bureau[0].countries[1]`",
            "\"\"",
        ),
        (
            file(&format!("{s}\ncountries = [\"fr\"]"), s),
            "`bureau[0].countries[0]`",
            "\"fr\"",
        ),
    ];
    for (text, field, value) in &cases {
        let msg = load(text).unwrap_err().to_string();
        assert!(msg.contains(field) && msg.contains(value), "{msg}");
        assert!(msg.contains("ISO 3166-1"), "{msg}");
    }
    load(&file(
        &format!("{s}\ncountries = [\"FR\", \"BE\", \"LU\"]"),
        s,
    ))
    .unwrap();
}
