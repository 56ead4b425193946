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

#[test]
fn unknown_fields_and_inline_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = |_: &str| Some(SECRET.to_string());
    let base = "pseudonym_key = { secret_env = \"K\" }\n[[bureau]]\nid = \"b\"\ncountry = \"FR\"\nendpoint = \"http://x\"\nclearance = \"GREEN\"\npersonal_data = false\n";
    let inline = format!("{base}secret = \"{SECRET}\"\n");
    assert!(matches!(
        Subscriptions::parse_with_env(&inline, dir.path(), &env),
        Err(ConfigError::Parse { .. })
    ));
    let none = Subscriptions::parse_with_env(base, dir.path(), &env).unwrap_err();
    assert!(
        none.to_string()
            .contains("exactly one of secret_env or secret_file"),
        "{none}"
    );
    let typo = format!("{base}secret_env = \"S\"\nclearence = \"RED\"\n");
    assert!(Subscriptions::parse_with_env(&typo, dir.path(), &env).is_err());
}
