//! Configuration as a new user meets it: files written by other tools (a byte order
//! mark), misnamed input files, over-broad warning lists, `roster show FILE` like
//! `roster check FILE`, and error messages that never carry secret material.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::Path;
use std::process::{Command, Output};

const BOM: &str = "\u{feff}";

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run fusion")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/config")
            .join(name),
    )
    .unwrap()
}

/// Writes `contents` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

// ---- roster show FILE ----

#[test]
fn roster_show_takes_the_file_as_roster_check_does() {
    let at = ["--at", "2026-06-01T10:00:00Z"];
    for args in [
        vec!["roster", "show", "deploy/config/roster.toml"],
        // The option earlier releases took still works.
        vec!["roster", "show", "--roster", "deploy/config/roster.toml"],
        // And the default file.
        vec!["roster", "show"],
    ] {
        let out = fusion(&[args.as_slice(), &at].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("on duty: Lyon since 2026-06-01T07:00:00Z"),
            "{args:?}: {}",
            text(&out)
        );
    }
    // The file named is the file read.
    let out = fusion(&[
        "roster",
        "show",
        "no/such/roster.toml",
        "--at",
        "2026-06-01T10:00:00Z",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot read the roster no/such/roster.toml"),
        "{}",
        text(&out)
    );
}

// ---- A byte order mark at the start of every configuration file ----

#[test]
fn a_byte_order_mark_is_tolerated_in_every_config_file_fusion_loads() {
    let dir = tempfile::tempdir().unwrap();

    // The roster, through the command that checks it.
    let roster = write(
        dir.path(),
        "roster.toml",
        &format!("{BOM}{}", shipped("roster.toml")),
    );
    let out = fusion(&[
        "roster",
        "check",
        &roster,
        "--from",
        "2026-01-01",
        "--days",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("OK, 3 centers"), "{}", text(&out));

    // The warning lists: the same entries as without the mark.
    let lists = shipped("warning-lists.toml");
    assert_eq!(
        dataflow::views::warning_lists::parse(&format!("{BOM}{lists}")).unwrap(),
        dataflow::views::warning_lists::parse(&lists).unwrap()
    );

    // The criteria rules.
    let rules = shipped("rules.toml");
    assert!(dataflow::views::rules::RuleSet::from_toml(&format!("{BOM}{rules}")).is_ok());

    // The subscriptions, with their secrets supplied.
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    // The secret file too, as an editor may write it.
    write(
        dir.path(),
        "secrets/ncb-ar.whsec",
        &format!("{BOM}{secret}\r\n"),
    );
    let env = |v: &str| {
        Some(if v == "FUSION_PSEUDONYM_KEY" {
            "a-long-enough-pseudonym-key".to_string()
        } else {
            secret.to_string()
        })
    };
    let subs = delivery::Subscriptions::parse_with_env(
        &format!("{BOM}{}", shipped("subscriptions.toml")),
        dir.path(),
        &env,
    )
    .unwrap();
    assert_eq!(subs.bureaus.len(), 4);

    // The officers file, through the command that lists it.
    let officers = write(
        dir.path(),
        "officers.toml",
        &format!(
            "{BOM}[[officer]]\nname = \"alice\"\ncenter = \"Lyon\"\ntoken_sha256 = \"{}\"\n\
             added = \"2026-07-01T08:00:00Z\"\n",
            "0".repeat(64)
        ),
    );
    let out = fusion(&["officer", "list", "--officers", &officers]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("alice"), "{}", text(&out));
}

// ---- Files of an --input directory ----

const EVENT: &str = r#"{"schema_version":1,"event_id":"e1","sensor_id":"fr-ids-1","country":"FR","observed_at":"2026-11-23T10:00:00Z","kind":"dns","domain":"a.evil.example"}"#;

fn run_input(dir: &Path, extra: &[&str]) -> Output {
    let input = dir.join("in");
    fusion(&[&["run", "--input", input.to_str().unwrap()], extra].concat())
}

#[test]
fn a_misnamed_input_file_is_named_in_a_warning_with_the_name_it_should_have() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write(&input, "sensor.events.jsonl", &format!("{EVENT}\n"));
    write(&input, "partner.indicator.jsonl", "{}\n");
    let out = run_input(dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("WARN")
            && all.contains("partner.indicator.jsonl is not a topic file and is not read")
            && all.contains("did you mean partner.indicators.jsonl?"),
        "{all}"
    );
}

#[test]
fn an_input_directory_without_any_topic_file_is_an_error_naming_the_expected_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write(&input, "partner.indicator.jsonl", "{}\n");
    let out = run_input(dir.path(), &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        input.to_str().unwrap(),
        "no topic file",
        "found only partner.indicator.jsonl",
        "sensor.events.jsonl, partner.indicators.jsonl, osint.items.jsonl, desk.actions.jsonl",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
}

// ---- Over-broad warning lists ----

#[test]
fn an_over_broad_warning_list_stops_the_run_with_the_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write(&input, "sensor.events.jsonl", &format!("{EVENT}\n"));
    let broad = "[[list]]\nname = \"oops\"\nvalues = [\n  \"8.8.8.8\",\n  \"0.0.0.0/0\",\n]\n";
    let lists = write(dir.path(), "lists.toml", broad);
    let out = run_input(dir.path(), &["--warning-lists", &lists]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        lists.as_str(),
        "line 5",
        "\"0.0.0.0/0\" is over-broad",
        "covers every IPv4 address",
        "allow_broad = true",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
    // The list that says it means it runs.
    let meant = write(
        dir.path(),
        "meant.toml",
        &broad.replace("name = \"oops\"", "name = \"oops\"\nallow_broad = true"),
    );
    let out = run_input(dir.path(), &["--warning-lists", &meant]);
    assert!(out.status.success(), "{}", text(&out));
}

// ---- Secrets never appear in error messages ----

/// Fails if `all` holds `secret` or any 8-character piece of it.
fn assert_no_secret(all: &str, secret: &str) {
    for i in 0..secret.len().saturating_sub(8) {
        let piece = &secret[i..i + 8];
        assert!(
            !all.contains(piece),
            "{piece:?} of the secret leaked: {all}"
        );
    }
}

#[test]
fn an_officer_token_in_a_broken_officers_file_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    // A token in the form `fusion officer add` prints.
    let token = format!("fdk_{}", "5eC12e7".repeat(9));
    let head =
        "[[officer]]\nname = \"alice\"\ncenter = \"Lyon\"\nadded = \"2026-07-01T08:00:00Z\"\n";
    for (case, body, line) in [
        // The token itself pasted in, under a field the file does not have.
        (
            "unknown field",
            format!(
                "{head}token_sha256 = \"{}\"\ntoken = \"{token}\"\n",
                "0".repeat(64)
            ),
            "line 6",
        ),
        // Pasted where the hash goes, with its quote lost.
        (
            "broken string",
            format!("{head}token_sha256 = \"{token}\n"),
            "line 5",
        ),
        (
            "bare value",
            format!("{head}token_sha256 = {token}\n"),
            "line 5",
        ),
    ] {
        let officers = write(dir.path(), "officers.toml", &body);
        let out = fusion(&["officer", "list", "--officers", &officers]);
        assert!(!out.status.success(), "{case}: {}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("is not valid") && all.contains(line),
            "{case}: {all}"
        );
        assert_no_secret(&all, &token);
    }
}

/// Every place a subscriptions file names where a secret is, with the secret itself
/// pasted there instead (raw base64, without the `whsec_` that gives it away): the error
/// names the field, never the value.
#[test]
fn a_secret_pasted_where_its_file_or_variable_goes_is_not_quoted() {
    let leak = "c2VjcmV0LW1hdGVyaWFsLXRoYXQtbXVzdC1uZXZlci1sZWFr";
    let ok = "secret_env = \"S\"";
    let file = |bureau: &str, partner: &str, key: &str| {
        format!(
            "pseudonym_key = {key}\n\
             [[bureau]]\nid = \"b\"\ncountry = \"FR\"\nendpoint = \"https://b.example/hook\"\n\
             clearance = \"GREEN\"\npersonal_data = false\n{bureau}\n\
             [[partner]]\nid = \"p\"\nfeedback_endpoint = \"https://p.example/feedback\"\n\
             feedback_min_count = 1\n{partner}\n"
        )
    };
    let key_ok = "{ secret_env = \"K\" }";
    let pasted_file = format!("secret_file = \"{leak}\"");
    let pasted_env = format!("secret_env = \"{leak}\"");
    let key_file = format!("{{ secret_file = \"{leak}\" }}");
    let key_env = format!("{{ secret_env = \"{leak}\" }}");
    let env = |_: &str| Some("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_string());
    let dir = tempfile::tempdir().unwrap();
    for (case, text) in [
        ("bureau secret_file", file(&pasted_file, ok, key_ok)),
        ("partner secret_file", file(ok, &pasted_file, key_ok)),
        ("pseudonym_key secret_file", file(ok, ok, &key_file)),
        ("bureau secret_env", file(&pasted_env, ok, key_ok)),
        ("partner secret_env", file(ok, &pasted_env, key_ok)),
        ("pseudonym_key secret_env", file(ok, ok, &key_env)),
    ] {
        let err = delivery::Subscriptions::parse_with_env(&text, dir.path(), &env)
            .expect_err(case)
            .to_string();
        assert_no_secret(&err, leak);
    }
}
